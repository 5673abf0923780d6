"""The vertical contract: sessions of the paper's A/B/C protocol (Fig. 3).

Called as ``vertical:<Function>`` on the same chaincode as the federation
contract (which stays the default). Parties A and B hold different features of
the same entities (B also the labels); collaborator C holds a Paillier key
pair. The ledger never sees an ID, a feature or a ciphertext: it records who
plays which part, what A and B agreed the private set intersection was (its
size and the digest of its transcript), C's key fingerprint, per iteration the
digest of every message each party sent or received and the loss (fixed
point), and the digests of the two final model parts.

A session moves ``alignment`` -> ``training`` -> ``finished`` (or ``aborted``
from either of the first two). Keys written by one party carry its letter
(``vfl~iter~<session>~000007~A``), so parties never conflict under MVCC; the
transactions that change the session record (PublishKey, FinishSession,
AbortSession) read the parties' keys and check that they agree. As everywhere
in the chaincode: integers only, every check before the first write.
See docs/vertical.md.
"""

from __future__ import annotations

import re
from typing import Any

from . import rules
from .state import (
    canonical, caller_of, get_consortium, get_json, get_required, get_writer, list_prefix, put_json,
    require_absent, tx_of,
)
from .errors import EXISTS, INVALID, PHASE, UNAUTHORIZED, ContractError
from .shim import Contract, TransactionContextInterface

PARTIES = ("A", "B", "C")
MODELS = ("linear", "logistic")
ENCRYPTIONS = ("paillier", "plain")
ALIGNMENT, TRAINING, FINISHED, ABORTED = "alignment", "training", "finished", "aborted"

SETTING_LIMITS: dict[str, tuple[int, int]] = {
    "lr_ppm": (1, 10_000_000),          # learning rate x 1e6
    "l2_ppm": (0, 10_000_000),          # L2 penalty x 1e6
    "tol_ppm": (0, 1_000_000),          # relative loss change that counts as converged, x 1e6
    "max_iterations": (1, 100_000),
    "frac_bits": (4, 30),               # fixed point of predictions and residuals
    "feature_frac_bits": (2, 30),       # fixed point of features
    "int_bits": (1, 30),                # |prediction| < 2**int_bits
    "key_bits": (256, 8192),            # Paillier modulus (ignored with encryption "plain")
}
SETTING_CHOICES = {"model": MODELS, "encryption": ENCRYPTIONS}

QUERIES = ["GetSession", "ListSessions", "GetApprovals", "GetIterations", "GetModels"]

_SESSION_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MESSAGE_KEY = re.compile(r"([ABC])>([ABC]):([a-z][a-z0-9._-]{0,31})")
_REASON_TEXT = re.compile(r"[ -~]{1,300}")  # printable ASCII


# --------------------------------------------------------------------------
# Keys and argument parsers (pure)
# --------------------------------------------------------------------------

def session_key(session: str) -> str:
    return f"vfl~session~{session}"


def party_key(kind: str, session: str, party: str) -> str:
    return f"vfl~{kind}~{session}~{party}"


def iteration_key(session: str, iteration: int, party: str) -> str:
    return f"vfl~iter~{session}~{iteration:06d}~{party}"


def parse_session_id(text: str) -> str:
    """Session IDs become part of keys: letters, digits, '.', '_', '-', at most 64."""
    if not isinstance(text, str) or not _SESSION_TEXT.fullmatch(text):
        raise ContractError(INVALID, f"session must be 1-64 letters, digits, '.', '_' or '-' "
                                     f"(starting with a letter or digit), got {_show(text)}")
    return text


def parse_parties(text: str) -> dict[str, str]:
    """``{"A": msp, "B": msp, "C": msp}``: three distinct MSP IDs."""
    parties = rules.parse_json_object("parties_json", text)
    if sorted(parties) != list(PARTIES):
        raise ContractError(INVALID, f"parties_json must name exactly the parties {list(PARTIES)}, "
                                     f"got {sorted(parties)}")
    for party in PARTIES:
        rules.check_msp_id(f"parties_json {party}", parties[party])
    if len(set(parties.values())) != len(PARTIES):
        raise ContractError(INVALID, f"parties_json must name three different organizations, got {parties}")
    return {party: parties[party] for party in PARTIES}


def parse_settings(text: str) -> dict[str, Any]:
    """Every setting present, integers within ``SETTING_LIMITS``, choices within ``SETTING_CHOICES``."""
    raw = rules.parse_json_object("settings_json", text)
    expected = sorted([*SETTING_LIMITS, *SETTING_CHOICES])
    if sorted(raw) != expected:
        missing = sorted(set(expected) - set(raw))
        unknown = sorted(set(raw) - set(expected))
        raise ContractError(INVALID, f"settings_json must have exactly the keys {expected} "
                                     f"(missing {missing}, unknown {unknown})")
    for key, (low, high) in SETTING_LIMITS.items():
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ContractError(INVALID, f"setting {key} must be an integer in {low}..{high}, got {_show(value)}")
    for key, choices in SETTING_CHOICES.items():
        if raw[key] not in choices:
            raise ContractError(INVALID, f"setting {key} must be one of {list(choices)}, got {_show(raw[key])}")
    return {key: raw[key] for key in expected}


def parse_messages(text: str, party: str) -> dict[str, str]:
    """Digests of the messages ``party`` sent or received in one iteration.

    Keys are ``"<from>><to>:<kind>"`` (``"A>B:u"``); ``party`` must be the sender
    or the receiver of each; values are SHA-256 digests.
    """
    messages = rules.parse_json_object("messages_json", text)
    if not messages:
        raise ContractError(INVALID, "messages_json must list at least one message")
    for key, digest in messages.items():
        match = _MESSAGE_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None or match.group(1) == match.group(2):
            raise ContractError(INVALID, f"messages_json key {_show(key)} is not '<from>><to>:<kind>' "
                                         "with two different parties among A, B, C")
        if party not in (match.group(1), match.group(2)):
            raise ContractError(INVALID, f"messages_json key {key}: party {party} neither sent nor received it")
        rules.parse_digest(f"messages_json {key}", digest)
    return dict(sorted(messages.items()))


def transcript_problem(records: list[dict[str, Any]]) -> str | None:
    """Why the parties' iteration records disagree, or None when they agree.

    ``records`` holds ``{"iteration", "party", "loss", "messages"}`` entries.
    Every party must have recorded iterations 1..T for the same T >= 1; a
    message must carry the same digest in its sender's and its receiver's
    record; all three must report the same loss.
    """
    by_party: dict[str, dict[int, dict[str, Any]]] = {p: {} for p in PARTIES}
    for record in records:
        by_party[record["party"]][record["iteration"]] = record
    counts = {p: len(by_party[p]) for p in PARTIES}
    if len(set(counts.values())) != 1 or counts["A"] == 0:
        return f"the parties recorded different numbers of iterations: {counts}"
    total = counts["A"]
    for iteration in range(1, total + 1):
        if any(iteration not in by_party[p] for p in PARTIES):
            return f"iteration {iteration} is missing from a party's records"
        losses = {p: by_party[p][iteration]["loss"] for p in PARTIES}
        if len(set(losses.values())) != 1:
            return f"iteration {iteration}: the parties recorded different losses {losses}"
        seen: dict[str, dict[str, str]] = {}
        for party in PARTIES:
            for key, digest in by_party[party][iteration]["messages"].items():
                seen.setdefault(key, {})[party] = digest
        for key in sorted(seen):
            sender, receiver = key[0], key[2]
            views = seen[key]
            if sender not in views or receiver not in views:
                absent = receiver if sender in views else sender
                return f"iteration {iteration}: message {key} is missing from the record of {absent}"
            if views[sender] != views[receiver]:
                return (f"iteration {iteration}: message {key} has digest {views[sender]} in the record of "
                        f"{sender} but {views[receiver]} in the record of {receiver}")
    return None


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


# --------------------------------------------------------------------------
# State helpers
# --------------------------------------------------------------------------

async def get_session(stub: Any, text: str) -> dict[str, Any]:
    session = parse_session_id(text)
    return await get_required(stub, session_key(session), f"vertical session {session}")


async def party_of(stub: Any, session: dict[str, Any], msp_id: str, allowed: tuple[str, ...] = PARTIES) -> str:
    """The caller's letter in the session (it must be one of ``allowed``); refused if banned."""
    await get_writer(stub, msp_id)
    for party in allowed:
        if session["parties"][party] == msp_id:
            return party
    names = " or ".join(f"{p} ({session['parties'][p]})" for p in allowed)
    raise ContractError(UNAUTHORIZED, f"{msp_id} is not party {names} of vertical session {session['session']}")


def require_session_phase(session: dict[str, Any], *phases: str) -> None:
    if session["phase"] not in phases:
        raise ContractError(PHASE, f"vertical session {session['session']} is in phase {session['phase']}, "
                                   f"not {' or '.join(phases)}")


def advance(session: dict[str, Any], phase: str, tx: str, time: int) -> dict[str, Any]:
    history = list(session["history"]) + [{"phase": phase, "tx": tx, "time": time}]
    return {**session, "phase": phase, "history": history}


async def iteration_records(stub: Any, session: str) -> list[dict[str, Any]]:
    prefix = f"vfl~iter~{session}~"
    records = []
    for key, value in await list_prefix(stub, prefix):
        number, party = key[len(prefix):].split("~")
        records.append({**value, "iteration": int(number), "party": party})
    return records


# --------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------

class VerticalContract(Contract):
    """Transactions and queries of docs/vertical.md; every return value is canonical JSON."""

    Name = "vertical"

    def get_evaluate_transactions(self) -> list[str]:
        return list(QUERIES)

    async def OpenSession(self, ctx: TransactionContextInterface, session: str, parties_json: str,
                          settings_json: str) -> str:
        """Party B opens a session: who plays A, B and C, and the training settings everyone follows."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        session = parse_session_id(session)
        parties = parse_parties(parties_json)
        settings = parse_settings(settings_json)
        await get_consortium(stub)
        if caller != parties["B"]:
            raise ContractError(UNAUTHORIZED, f"{caller} cannot open a session as party B ({parties['B']}); "
                                              "party B, the label holder, opens it")
        for party, needed in (("A", "member"), ("B", "member"), ("C", "keyholder")):
            org = await get_json(stub, f"org~{parties[party]}")
            if org is None or org["status"] != rules.ACTIVE or not rules.has_role(org, needed):
                state = "not registered" if org is None else f"status {org['status']}, roles {org['roles']}"
                raise ContractError(UNAUTHORIZED, f"party {party} ({parties[party]}) must be an active "
                                                  f"organization with role {needed} ({state})")
        await require_absent(stub, session_key(session), f"vertical session {session} already exists")
        tx, now = tx_of(ctx)
        record = {
            "session": session, "parties": parties, "settings": settings, "phase": ALIGNMENT,
            "alignment": None, "key_fingerprint": None, "iterations": 0, "final_loss": None,
            "models": {}, "abort": None, "opened_by": caller,
            "history": [{"phase": ALIGNMENT, "tx": tx, "time": now}],
        }
        await put_json(stub, session_key(session), record)
        return canonical(record)

    async def ApproveAlignment(self, ctx: TransactionContextInterface, session: str, size: str,
                               transcript: str) -> str:
        """A or B approves the intersection it computed: its size and the digest of the PSI transcript."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        approval = {"size": rules.parse_int("size", size, minimum=1),
                    "transcript": rules.parse_digest("transcript", transcript)}
        record = await get_session(stub, session)
        party = await party_of(stub, record, caller, ("A", "B"))
        require_session_phase(record, ALIGNMENT)
        key = party_key("psi", record["session"], party)
        await require_absent(stub, key, f"party {party} already approved the alignment of {record['session']}")
        await put_json(stub, key, approval)
        return canonical(approval)

    async def PublishKey(self, ctx: TransactionContextInterface, session: str, fingerprint: str) -> str:
        """C records its public key's fingerprint; A's and B's approvals must agree; training starts."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        fingerprint = rules.parse_digest("fingerprint", fingerprint)
        record = await get_session(stub, session)
        await party_of(stub, record, caller, ("C",))
        require_session_phase(record, ALIGNMENT)
        approvals = {p: await get_json(stub, party_key("psi", record["session"], p)) for p in ("A", "B")}
        missing = [p for p, a in approvals.items() if a is None]
        if missing:
            raise ContractError(PHASE, f"vertical session {record['session']} lacks the alignment approval "
                                       f"of {', '.join(missing)}")
        if approvals["A"] != approvals["B"]:
            raise ContractError(INVALID, f"A and B approved different alignments of {record['session']}: "
                                         f"A {approvals['A']}, B {approvals['B']}")
        tx, now = tx_of(ctx)
        record = {**advance(record, TRAINING, tx, now), "alignment": approvals["A"], "key_fingerprint": fingerprint}
        await put_json(stub, session_key(record["session"]), record)
        return canonical(record)

    async def CommitIteration(self, ctx: TransactionContextInterface, session: str, iteration: str,
                              loss: str, messages_json: str) -> str:
        """A party records one iteration: the loss (x 1e6) and the digests of the messages it sent or received."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        number = rules.parse_int("iteration", iteration, minimum=1)
        loss_value = rules.parse_int("loss", loss, minimum=0)
        record = await get_session(stub, session)
        party = await party_of(stub, record, caller)
        messages = parse_messages(messages_json, party)
        require_session_phase(record, TRAINING)
        name = record["session"]
        if number > record["settings"]["max_iterations"]:
            raise ContractError(INVALID, f"iteration {number} exceeds max_iterations "
                                         f"{record['settings']['max_iterations']} of {name}")
        key = iteration_key(name, number, party)
        await require_absent(stub, key, f"party {party} already recorded iteration {number} of {name}")
        if number > 1 and await get_json(stub, iteration_key(name, number - 1, party)) is None:
            raise ContractError(PHASE, f"party {party} has not recorded iteration {number - 1} of {name}")
        entry = {"loss": loss_value, "messages": messages}
        await put_json(stub, key, entry)
        return canonical(entry)

    async def CommitModel(self, ctx: TransactionContextInterface, session: str, digest: str) -> str:
        """A or B records the digest of its final model part (the part itself never leaves it)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        model = {"digest": rules.parse_digest("digest", digest)}
        record = await get_session(stub, session)
        party = await party_of(stub, record, caller, ("A", "B"))
        require_session_phase(record, TRAINING)
        key = party_key("model", record["session"], party)
        await require_absent(stub, key, f"party {party} already recorded its model of {record['session']}")
        await put_json(stub, key, model)
        return canonical(model)

    async def FinishSession(self, ctx: TransactionContextInterface, session: str) -> str:
        """Close a trained session once both model parts are recorded and the transcripts agree."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        record = await get_session(stub, session)
        await party_of(stub, record, caller)
        require_session_phase(record, TRAINING)
        name = record["session"]
        models = {p: await get_json(stub, party_key("model", name, p)) for p in ("A", "B")}
        missing = [p for p, m in models.items() if m is None]
        if missing:
            raise ContractError(PHASE, f"vertical session {name} lacks the model digest of {', '.join(missing)}")
        records = await iteration_records(stub, name)
        problem = transcript_problem(records)
        if problem is not None:
            raise ContractError(INVALID, f"vertical session {name}: {problem}")
        last = max(r["iteration"] for r in records)
        final_loss = next(r["loss"] for r in records if r["iteration"] == last and r["party"] == "C")
        tx, now = tx_of(ctx)
        record = {**advance(record, FINISHED, tx, now), "iterations": last, "final_loss": final_loss,
                  "models": {p: models[p]["digest"] for p in ("A", "B")}}
        await put_json(stub, session_key(name), record)
        return canonical(record)

    async def AbortSession(self, ctx: TransactionContextInterface, session: str, reason: str) -> str:
        """A party ends a session that cannot go on (a peer unreachable, a malformed message), saying why."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        if not isinstance(reason, str) or not _REASON_TEXT.fullmatch(reason):
            raise ContractError(INVALID, "reason must be 1-300 printable ASCII characters")
        record = await get_session(stub, session)
        party = await party_of(stub, record, caller)
        if record["phase"] in (FINISHED, ABORTED):
            raise ContractError(EXISTS, f"vertical session {record['session']} is already {record['phase']}")
        tx, now = tx_of(ctx)
        record = {**advance(record, ABORTED, tx, now), "abort": {"party": party, "reason": reason}}
        await put_json(stub, session_key(record["session"]), record)
        return canonical(record)

    # ---- queries --------------------------------------------------------

    async def GetSession(self, ctx: TransactionContextInterface, session: str) -> str:
        return canonical(await get_session(ctx.get_stub(), session))

    async def ListSessions(self, ctx: TransactionContextInterface) -> str:
        return canonical([s for _, s in await list_prefix(ctx.get_stub(), "vfl~session~")])

    async def GetApprovals(self, ctx: TransactionContextInterface, session: str) -> str:
        stub = ctx.get_stub()
        record = await get_session(stub, session)
        approvals = {p: await get_json(stub, party_key("psi", record["session"], p)) for p in ("A", "B")}
        return canonical({p: a for p, a in approvals.items() if a is not None})

    async def GetIterations(self, ctx: TransactionContextInterface, session: str) -> str:
        """Every party's iteration records, by iteration then party."""
        stub = ctx.get_stub()
        record = await get_session(stub, session)
        return canonical(await iteration_records(stub, record["session"]))

    async def GetModels(self, ctx: TransactionContextInterface, session: str) -> str:
        stub = ctx.get_stub()
        record = await get_session(stub, session)
        models = {p: await get_json(stub, party_key("model", record["session"], p)) for p in ("A", "B")}
        return canonical({p: m["digest"] for p, m in models.items() if m is not None})
