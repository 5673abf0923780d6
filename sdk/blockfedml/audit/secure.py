"""Secure rounds recomputed without any secret: the sums, and what their openings became.

An auditor holds no Paillier private key and no mask secret, yet most of a
secure round is public arithmetic on blobs the ledger pins by digest:

* every committed ciphertext (or masked vector) is re-hashed against its
  commitment (by the caller, ``checks.check_aggregates``);
* the sum of exactly the contributors named in each authorized request
  (``GetDecryptions``) is recomputed with the mode's own ``sum`` — the
  homomorphic product of the ciphertexts under the round's pinned public key,
  or the wrapping sum of the masked vectors — and its SHA-256 must be the
  request's ``digest``; the request's ``weight`` must be the contributors'
  committed sample counts; a Paillier sum must use the slot layout the
  round's public facts give (what the key holder checks before decrypting);
* the recorded opening (a ``sum-result`` blob, re-hashed by the store) is
  decoded with the round's public facts (contributors, total weight) by the
  mode's own ``finish`` / ``finish_sums``, exactly as the aggregator did, and
  the caller compares the resulting model's digest with the proposal;
* masking: every share bundle and reveal is re-hashed against its ledger
  record and its header must agree with the ledger (round, sender, threshold,
  advertised mask key, recipients, contributor set), from at least
  ``mask_threshold`` participants.

What stays with the party that holds the secret: the Paillier decryption of
the sum (the key holder's private key) and the unmasking (the reveals are
sealed to the aggregator). The audit shows that the opened sum is the one the
model was built from and that the sum it opens is the sum of the committed
updates; whether one decrypts to the other needs the key (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from blockfedml.audit.evidence import Record, phase_tx
from blockfedml.audit.findings import Check
from blockfedml.crypto import secagg
from blockfedml.crypto.paillier import PaillierPublicKey
from blockfedml.errors import BlockFedMLError, NotFoundError
from blockfedml.fl.aggregation import MaskingAggregation, PaillierAggregation, RoundContext, SecureAggregation
from blockfedml.store.model_store import sha256_hex

BLOB_ERRORS = (BlockFedMLError, KeyError, ValueError, TypeError)  # a malformed blob, whatever it breaks


def opened_sums(check: Check, ctx: Any, record: Record, mode: SecureAggregation,
                blobs: Mapping[str, bytes]) -> dict[int, bytes] | None:
    """Recompute and check every authorized sum of a secure round; return the opened
    ``sum-result`` blobs by request index (decodable with the round's facts), or None when
    a finding or a skip means the round's aggregate cannot be recomputed."""
    number = record["round"]
    requests = ctx.state.decryptions.get(number, [])
    weights = {u["msp_id"]: u["num_samples"] for u in ctx.state.updates.get(number, [])}
    context = _context(check, ctx, record, mode, weights)
    if context is None:
        return None
    if isinstance(mode, MaskingAggregation) and not _check_masking_records(check, ctx, record, requests):
        return None
    failures, opened, complete = len(check.findings), {}, True
    for request in sorted(requests, key=lambda r: r["index"]):
        result = _check_request(check, ctx, record, mode, context, request, blobs, weights)
        if result is None:
            complete = False
        else:
            opened[request["index"]] = result
    return opened if complete and len(check.findings) == failures else None


def aggregate_of(mode: SecureAggregation, record: Record, requests: list[Record],
                 opened: Mapping[int, bytes], contributors: list[str]) -> np.ndarray:
    """The parameters the aggregator made of the opened sums that cover ``contributors``: one
    sum finished (``finish``), or, with attribution, the accepted groups' sums (``finish_sums``)."""
    number = record["round"]
    chosen = [r for r in requests if set(r["contributors"]) <= set(contributors)]
    if record.get("attribution") is None and len(chosen) == 1:
        (request,) = chosen
        return mode.finish(opened[request["index"]], number, request["contributors"], request["weight"])
    return mode.finish_sums([(opened[r["index"]], r["contributors"], r["weight"]) for r in chosen], number)


def _context(check: Check, ctx: Any, record: Record, mode: SecureAggregation,
             weights: dict[str, int]) -> RoundContext | None:
    """The round's public facts; for Paillier the key pinned at Allocate, read back from the store
    under its fingerprint (so re-hashed), with the size and epoch the ledger gives."""
    number = record["round"]
    participants = tuple(record.get("participants") or [])
    if not isinstance(mode, PaillierAggregation):
        return RoundContext(number, participants, weights)
    pinned = record.get("key") or {}
    where = dict(round=number, tx=phase_tx(record, "allocation"), object=f"public key {pinned.get('fingerprint')}")
    published = ctx.state.public_keys.get(record.get("keyholder") or "")
    if published is None:
        check.fail(f"the key holder {record.get('keyholder')} has no published key on the ledger", **where)
        return None
    if published.get("epoch") == pinned.get("epoch") and published.get("fingerprint") != pinned.get("fingerprint"):
        check.fail(f"the round pins key {pinned.get('fingerprint')}, but {record.get('keyholder')} published "
                   f"{published.get('fingerprint')} for epoch {pinned.get('epoch')}", **where)
        return None
    try:
        key = PaillierPublicKey.from_bytes(ctx.store.get(pinned["fingerprint"]))
    except NotFoundError:
        check.skip(f"round {number}: the public key {pinned.get('fingerprint')} is not kept in the store, "
                   "so the ciphertexts cannot be summed")
        return None
    except BLOB_ERRORS as exc:
        check.fail(f"the pinned public key cannot be read: {exc}", **where)
        return None
    if key.bits != pinned.get("bits"):
        check.fail(f"the pinned key has {key.bits} bits, the ledger says {pinned.get('bits')}", **where)
        return None
    return RoundContext(number, participants, weights, public_key=key)


def _check_request(check: Check, ctx: Any, record: Record, mode: SecureAggregation, context: RoundContext,
                   request: Record, blobs: Mapping[str, bytes], weights: dict[str, int]) -> bytes | None:
    """One authorized sum: weight, recomputed sum and its digest, stored sum, then the opening."""
    number, index = record["round"], request["index"]
    contributors = request["contributors"]
    where = dict(round=number, tx=request.get("tx"), object=f"sum {request['digest']} (request {index})")
    expected_weight = sum(weights.get(m, 0) for m in contributors)
    if request.get("weight") != expected_weight:
        check.fail(f"records weight {request.get('weight')}, the contributors committed {expected_weight} samples",
                   **where)
        return None
    try:
        summed = mode.sum({m: blobs[m] for m in contributors}, context)
    except BLOB_ERRORS as exc:
        check.fail(f"the committed updates of {', '.join(contributors)} cannot be summed: {exc}", **where)
        return None
    check.checked += 1
    digest = sha256_hex(summed)
    if digest != request["digest"]:
        check.fail(f"the {mode.name} sum of the committed updates of {', '.join(contributors)} hashes to {digest}, "
                   f"but the aggregator asked to open {request['digest']}", **where)
        return None
    if ctx.store.has(digest):  # the stored copy the key holder read: re-hashed by the store
        try:
            ctx.store.get(digest)
        except BLOB_ERRORS as exc:
            check.fail(f"the stored sum blob is corrupt: {exc}", **{**where, "object": f"sum blob {digest}"})
            return None
    header = secagg.unpack(summed, f"{'paillier' if isinstance(mode, PaillierAggregation) else 'masked'}-sum")[0]
    if isinstance(mode, PaillierAggregation) and header.get("layout") != mode.layout(context).to_dict():
        check.fail("the ciphertexts are packed with another slot layout than the round's key size and "
                   "participant count give", **where)
        return None
    return _check_opening(check, ctx, record, mode, request, header)


def _check_opening(check: Check, ctx: Any, record: Record, mode: SecureAggregation, request: Record,
                   header: Record) -> bytes | None:
    """The recorded opening: re-hashed, and decodable with the round's contributors and weight."""
    number, result = record["round"], request.get("result")
    if result is None:
        if record.get("proposal"):
            check.fail("the round proposed an aggregate, but this sum was never opened", round=number,
                       tx=request.get("tx"), object=f"sum {request['digest']} (request {request['index']})")
        return None
    where = dict(round=number, tx=result.get("tx"),
                 object=f"sum-result blob {result['digest']} (request {request['index']})")
    try:
        blob = ctx.store.get(result["digest"])
    except NotFoundError:
        check.skip(f"round {number}: the opened sum {result['digest']} is not kept in the store")
        return None
    except BLOB_ERRORS as exc:
        check.fail(f"the recorded decryption result does not match its digest: {exc}", **where)
        return None
    try:
        params = mode.finish(blob, number, request["contributors"], request["weight"])
    except BLOB_ERRORS as exc:
        check.fail(f"the recorded decryption result cannot be decoded with the round's facts: {exc}", **where)
        return None
    if params.size != header.get("length"):
        check.fail(f"the recorded decryption result has {params.size} values, the sum has {header.get('length')}",
                   **where)
        return None
    return blob


def _check_masking_records(check: Check, ctx: Any, record: Record, requests: list[Record]) -> bool:
    """Share bundles and reveals re-hashed and their headers checked against the ledger."""
    number, failures, skips = record["round"], len(check.findings), len(check.skipped)
    rows = ctx.state.mask_records.get(number, {})
    advertised = {k["msp_id"]: k for k in rows.get("keys", [])}
    threshold, participants = record.get("mask_threshold"), record.get("participants") or []
    for share in rows.get("shares", []):
        msp = share["msp_id"]
        blob = _fetch(check, ctx, share, number, "ShareMaskKeys", f"share bundle {share['digest']} of {msp}")
        if blob is None:
            continue
        facts = dict(round=number, org=msp, threshold=threshold, recipients=sorted(record.get("selected") or []),
                     mask_key=(advertised.get(msp) or {}).get("mask_key"))
        _expect(check, blob, "share-bundle", facts, number, ctx.writer("ShareMaskKeys", number, msp),
                f"share bundle {share['digest']} of {msp}")
    if requests:
        contributors = sorted(requests[0]["contributors"])
        reveals = rows.get("reveals", [])
        for reveal in reveals:
            msp = reveal["msp_id"]
            what = f"share reveal {reveal['digest']} of {msp}"
            if msp not in participants:
                check.fail(f"{msp} revealed shares without being a participant", round=number,
                           tx=ctx.writer("RevealMaskShares", number, msp), object=what)
            blob = _fetch(check, ctx, reveal, number, "RevealMaskShares", what)
            if blob is not None:
                _expect(check, blob, "share-reveal", dict(round=number, org=msp, contributors=contributors),
                        number, ctx.writer("RevealMaskShares", number, msp), what)
        opened = requests[0].get("result")
        if opened is not None and len(reveals) < (threshold or 0):
            check.fail(f"unmasked with {len(reveals)} reveals, the threshold is {threshold}", round=number,
                       tx=opened.get("tx"), object=f"round~{number:08d}")
    return (len(check.findings), len(check.skipped)) == (failures, skips)


def _fetch(check: Check, ctx: Any, row: Record, number: int, function: str, what: str) -> bytes | None:
    """A blob a ledger record names, re-hashed, with the recorded size; None (and a finding or skip) if not."""
    where = dict(round=number, tx=ctx.writer(function, number, row["msp_id"]), object=what)
    try:
        blob = ctx.store.get(row["digest"])
    except NotFoundError:
        check.skip(f"round {number}: the {what} is not kept in the store")
        return None
    except BLOB_ERRORS as exc:
        check.fail(f"does not match its ledger record: {exc}", **where)
        return None
    if len(blob) != row.get("size"):
        check.fail(f"has {len(blob)} bytes, the ledger says {row.get('size')}", **where)
        return None
    return blob


def _expect(check: Check, blob: bytes, kind: str, facts: dict[str, Any], number: int, tx: str | None,
            what: str) -> None:
    try:
        secagg.expect(secagg.unpack(blob, kind)[0], **facts)
    except BLOB_ERRORS as exc:
        check.fail(str(exc), round=number, tx=tx, object=what)


