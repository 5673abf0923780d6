"""Which received contributions an aggregator can use, and why not the others.

A member may send garbage: a blob that is not what it committed, an update of
the wrong shape, a Paillier ciphertext under another key, a forged header. The
aggregator checks each blob on its own before summing; a bad one is excluded
on the ledger with the reason (``ExcludeContribution``), its sender named and
penalized, and the round goes on with the others (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from blockfedml.crypto import secagg
from blockfedml.errors import BlockFedMLError
from blockfedml.fl.aggregation import AggregationMode, MaskingAggregation, RoundContext, SecureAggregation
from blockfedml.ml.serialization import params_from_bytes

_KINDS = {"paillier": "paillier-update", "masking": "masked-update"}


def contribution_problem(mode: AggregationMode, org: str, blob: bytes, context: RoundContext,
                         n_params: int) -> str | None:
    """What makes ``org``'s sealed update unusable in this round, or None when it is fine."""
    try:
        if isinstance(mode, SecureAggregation):
            header, _ = secagg.unpack(blob, "masked-update" if isinstance(mode, MaskingAggregation)
                                      else "paillier-update")
            length = header.get("length")
            mode.sum({org: blob}, context)  # round, sender, weight, key, size: each checked on its own
        else:
            params, meta = params_from_bytes(blob)
            if meta.get("org") != org:
                return f"the update sent by {org} is labelled as {meta.get('org')!r}"
            length = int(params.size)
    except (BlockFedMLError, ValueError, KeyError, TypeError) as exc:
        return f"unusable update: {exc}"
    if length != n_params:
        return f"the update has {length} parameters, the model {n_params}"
    return None


def contribution_problems(mode: AggregationMode, sealed: Mapping[str, bytes], context: RoundContext,
                          n_params: int) -> dict[str, str]:
    """``contribution_problem`` of every blob, for those that have one."""
    problems = {org: contribution_problem(mode, org, blob, context, n_params) for org, blob in sorted(sealed.items())}
    return {org: problem for org, problem in problems.items() if problem}


def ledger_reason(problem: str) -> str:
    """A problem as the contract takes a reason: one line of at most 200 printable characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in problem).split())
    return text[:200] or "unusable update"
