"""Secure rounds recomputed without any secret: the sums, and every opening re-checked.

An auditor holds no Paillier private key and no mask secret, yet a whole secure round is
public arithmetic on blobs the ledger pins by digest, done here with the audit's own code
(``audit.recompute``, from gmpy2, numpy and the crypto primitives; never ``blockfedml.fl``):

* every committed ciphertext (or masked vector) is re-hashed against its commitment (by the
  caller, ``checks.check_aggregates``);
* the sum of exactly the contributors named in each authorized request (``GetDecryptions``)
  is recomputed — the product of the ciphertexts under the round's pinned key, or the
  wrapping sum of the masked vectors — and its SHA-256 must be the request's ``digest``;
  the request's ``weight`` must be the contributors' committed sample counts; a Paillier
  sum must use the slot layout the round's public facts give;
* every opening is redone: Paillier — the key holder published each plaintext m with its
  randomness r, and (1 + m*n) * r^n mod n^2 must be the product ciphertext, slot by slot
  (a complete proof of decryption without the key); masking — the aggregator published
  the rebuilt self-mask seeds (each must hash to its owner's commitment in its share
  bundle) and the dropped members' mask keys (each must be the key it advertised), and
  the audit removes the masks itself. The recorded ``sum-result`` must hold exactly the
  values so obtained; the caller rebuilds the model from them and compares digests;
* masking: every share bundle and reveal is re-hashed against its ledger record and its
  header must agree with the ledger (round, sender, advertised mask key, contributor set)
  and with the round's masking graph, which the audit derives itself from the ledger
  (``crypto.graph``: recipients are the sender's neighbours and itself, the threshold and
  seed are the graph's), from at least ``mask_threshold`` participants.

An opening is PASS or FAIL: one that is missing or does not re-check is a finding naming
the round, the request and, for Paillier, the slot.
"""

from __future__ import annotations

import json

from collections.abc import Mapping
from typing import Any

import numpy as np

from blockfedml.audit import recompute
from blockfedml.audit.evidence import Record, phase_tx
from blockfedml.audit.findings import Check
from blockfedml.crypto import secagg
from blockfedml.crypto.encoding import FixedPoint
from blockfedml.crypto.graph import graph_of_round
from blockfedml.crypto.packing import SlotLayout
from blockfedml.crypto.paillier import PaillierPublicKey
from blockfedml.errors import BlockFedMLError, NotFoundError
from blockfedml.store.model_store import sha256_hex

BLOB_ERRORS = (BlockFedMLError, KeyError, ValueError, TypeError)  # a malformed blob, whatever it breaks
SECURE_MODES = ("paillier", "masking")
Opened = tuple[np.ndarray, dict[str, Any], int]  # (weighted fixed-point sum, codec, total weight)


def opened_sums(check: Check, ctx: Any, record: Record, blobs: Mapping[str, bytes]) -> dict[int, Opened] | None:
    """Recompute and check every authorized sum of a secure round and its opening; return the
    opened sums by request index, or None when a finding means the round's aggregate cannot be
    recomputed."""
    number = record["round"]
    requests = ctx.state.decryptions.get(number, [])
    weights = {u["msp_id"]: u["num_samples"] for u in ctx.state.updates.get(number, [])}
    key = None
    if record.get("mode") == "paillier":
        key = _public_key(check, ctx, record)
        if key is None:
            return None
    elif not _check_masking_records(check, ctx, record, requests):
        return None
    failures, opened, complete = len(check.findings), {}, True
    for request in sorted(requests, key=lambda r: r["index"]):
        result = _check_request(check, ctx, record, key, request, blobs, weights)
        if result is None:
            complete = False
        else:
            opened[request["index"]] = result
    return opened if complete and len(check.findings) == failures else None


def aggregate_of(record: Record, requests: list[Record], opened: Mapping[int, Opened],
                 contributors: list[str]) -> np.ndarray:
    """The parameters made of the opened sums that cover ``contributors``: one sum's average,
    or, with attribution, the weighted average of the accepted groups' sums."""
    chosen = [r for r in requests if set(r["contributors"]) <= set(contributors)]
    if record.get("attribution") is None and len(chosen) == 1:
        return recompute.average(*opened[chosen[0]["index"]])
    return recompute.average_of_sums([opened[r["index"]] for r in chosen])


def _public_key(check: Check, ctx: Any, record: Record) -> PaillierPublicKey | None:
    """The key pinned at Allocate, read back from the store under its fingerprint (so re-hashed),
    with the size and epoch the ledger gives."""
    number = record["round"]
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
        check.fail("the pinned public key is not available, so neither the sums nor their openings can be "
                   "re-checked", **where)
        return None
    except BLOB_ERRORS as exc:
        check.fail(f"the pinned public key cannot be read: {exc}", **where)
        return None
    if key.bits != pinned.get("bits"):
        check.fail(f"the pinned key has {key.bits} bits, the ledger says {pinned.get('bits')}", **where)
        return None
    return key


def _check_request(check: Check, ctx: Any, record: Record, key: PaillierPublicKey | None, request: Record,
                   blobs: Mapping[str, bytes], weights: dict[str, int]) -> Opened | None:
    """One authorized sum: weight, recomputed sum and its digest, stored sum, then the opening."""
    number, index = record["round"], request["index"]
    contributors = request["contributors"]
    where = dict(round=number, tx=request.get("tx"), object=f"sum {request['digest']} (request {index})")
    expected_weight = sum(weights.get(m, 0) for m in contributors)
    if request.get("weight") != expected_weight:
        check.fail(f"records weight {request.get('weight')}, the contributors committed {expected_weight} samples",
                   **where)
        return None
    chosen = {m: blobs[m] for m in contributors if m in blobs}
    product: list[int] = []
    if key is None and len(chosen) < len(contributors):  # masked updates not kept: the stored masked sum
        return _opening_of_stored_masked_sum(check, ctx, record, request, where)
    try:
        if key is not None:
            summed, product = recompute.paillier_sum(chosen, int(key.n), key.fingerprint, number, weights)
        else:
            summed = recompute.masked_sum(chosen, number, weights, _mask_scope(record, contributors))
    except BLOB_ERRORS as exc:
        check.fail(f"the committed updates of {', '.join(contributors)} cannot be summed: {exc}", **where)
        return None
    check.checked += 1
    digest = sha256_hex(summed)
    if digest != request["digest"]:
        check.fail(f"the {record.get('mode')} sum of the committed updates of {', '.join(contributors)} hashes to "
                   f"{digest}, but the aggregator asked to open {request['digest']}", **where)
        return None
    if ctx.store.available(digest):  # the stored copy: re-hashed by the store
        try:
            ctx.store.get(digest)
        except BLOB_ERRORS as exc:
            check.fail(f"the stored sum blob is corrupt: {exc}", **{**where, "object": f"sum blob {digest}"})
            return None
    header = recompute.parse(summed, "paillier-sum" if key is not None else "masked-sum")[0]
    if key is not None:
        layout = SlotLayout.for_round(FixedPoint(), key.bits, len(record.get("participants") or []))
        if header.get("layout") != layout.to_dict():
            check.fail("the ciphertexts are packed with another slot layout than the round's key size and "
                       "participant count give", **where)
            return None
    return _check_opening(check, ctx, record, key, request, header, summed, product)


def _opening_of_stored_masked_sum(check: Check, ctx: Any, record: Record, request: Record,
                                  where: dict[str, Any]) -> Opened | None:
    """The masked sum the request names, re-hashed by the store and checked against the ledger's
    facts, then its opening redone (the caller noted that it was not re-summed)."""
    summed = _stored(check, ctx, request["digest"], "masked sum", {**where, "object": f"sum blob {request['digest']}"})
    if summed is None:
        return None
    try:
        header = recompute.parse(summed, "masked-sum")[0]
        recompute.expect(header, "the masked sum", round=record["round"], contributors=sorted(request["contributors"]),
                         weight=request["weight"])
    except BLOB_ERRORS as exc:
        check.fail(f"the stored masked sum is not the one authorized: {exc}", **where)
        return None
    return _check_opening(check, ctx, record, None, request, header, summed, [])


def _check_opening(check: Check, ctx: Any, record: Record, key: PaillierPublicKey | None, request: Record,
                   header: Record, summed: bytes, product: list[int]) -> Opened | None:
    """The recorded opening, redone: the sum-result must hold what the published opening proves."""
    number, index, result = record["round"], request["index"], request.get("result")
    if result is None:
        if record.get("proposal"):
            check.fail("the round proposed an aggregate, but this sum was never opened", round=number,
                       tx=request.get("tx"), object=f"sum {request['digest']} (request {index})")
        return None
    where = dict(round=number, tx=result.get("tx"), object=f"sum-result blob {result['digest']} (request {index})")
    blob = _stored(check, ctx, result["digest"], "decryption result", where)
    if blob is None:
        return None
    try:
        ints, codec = recompute.result_values(blob, number, request["contributors"], request["weight"])
    except BLOB_ERRORS as exc:
        check.fail(f"the recorded decryption result cannot be decoded with the round's facts: {exc}", **where)
        return None
    if ints.size != header.get("length"):
        check.fail(f"the recorded decryption result has {ints.size} values, the sum has {header.get('length')}",
                   **where)
        return None
    opening_where = {**where, "object": f"opening {result.get('opening')} of sum {index} of round {number}"}
    if not result.get("opening"):
        check.fail("the opening was recorded without what re-checks it (no opening digest)", **opening_where)
        return None
    opening = _stored(check, ctx, result["opening"], "opening", opening_where)
    if opening is None:
        return None
    try:
        if key is not None:
            plaintexts = recompute.verify_paillier_opening(opening, product, int(key.n))
            expected = recompute.unpack_slots(plaintexts, header["layout"], int(header["length"]), request["weight"])
        else:
            expected = _redo_unmasking(ctx, record, request, opening, summed)
    except recompute.SlotMismatch as exc:
        check.fail(f"round {number}, sum {index}, {exc}", **opening_where)
        return None
    except BLOB_ERRORS as exc:
        check.fail(f"round {number}, sum {index}: the opening does not re-check: {exc}", **opening_where)
        return None
    check.checked += 1
    if not np.array_equal(expected, ints):
        first = int(np.flatnonzero(expected != ints)[0])
        slot = f"slot {first // header['layout']['slots']}, " if key is not None else ""
        check.fail(f"round {number}, sum {index}: the recorded result differs from the re-checked opening at "
                   f"{slot}value {first}", **where)
        return None
    return ints, codec, request["weight"]


def _redo_unmasking(ctx: Any, record: Record, request: Record, opening: bytes, summed: bytes) -> np.ndarray:
    """The masked sum unmasked with the published seeds and keys, each checked against its commitment."""
    number = record["round"]
    rows = ctx.state.mask_records.get(number, {})
    advertised = {k["msp_id"]: bytes.fromhex(k["mask_key"]) for k in rows.get("keys", [])}
    commitments = {}
    for share in rows.get("shares", []):
        if share["msp_id"] in request["contributors"]:
            commitments[share["msp_id"]] = recompute.parse(ctx.store.get(share["digest"]),
                                                           "share-bundle")[0]["self_seed_sha256"]
    header, seeds, keys = recompute.mask_opening(opening)
    if header.get("round") != number or header.get("sum") != request["digest"]:
        raise ValueError(f"the opening is of round {header.get('round')}, sum {header.get('sum')}")
    recompute.check_mask_secrets(seeds, keys, request["contributors"], _mask_scope(record, request["contributors"]),
                                 commitments, advertised)
    if record.get("attribution"):  # each group masked within itself: the complete graph of its sum
        return recompute.unmask(summed, seeds, keys, advertised, number)
    graph = graph_of_round(record, {k["msp_id"]: k for k in rows.get("keys", [])})
    return recompute.unmask(summed, seeds, keys, advertised, number,
                            neighbours={m: graph.neighbours(m) for m in graph.members})


def _stored(check: Check, ctx: Any, digest: str, what: str, where: dict[str, Any]) -> bytes | None:
    """A blob the ledger names, re-hashed; missing or corrupt is a finding (an opening is never skipped)."""
    try:
        return ctx.store.get(digest)
    except NotFoundError:
        check.fail(f"the {what} is not available, so the opening cannot be re-checked", **where)
    except BLOB_ERRORS as exc:
        check.fail(f"the recorded {what} does not match its digest: {exc}", **where)
    return None


def _check_masking_records(check: Check, ctx: Any, record: Record, requests: list[Record]) -> bool:
    """Share bundles and reveals re-hashed and their headers checked against the ledger."""
    number, failures, skips = record["round"], len(check.findings), len(check.skipped)
    rows = ctx.state.mask_records.get(number, {})
    advertised = {k["msp_id"]: k for k in rows.get("keys", [])}
    threshold, participants = record.get("mask_threshold"), record.get("participants") or []
    try:  # a round stopped before anyone shared has no graph to check against
        graph = graph_of_round(record, advertised) if rows.get("shares") else None
    except BLOB_ERRORS as exc:
        check.fail(f"the round's masking graph cannot be derived from the ledger: {exc}", round=number,
                   object=f"round~{number:08d}")
        return False
    for share in rows.get("shares", []):
        msp = share["msp_id"]
        blob = _fetch(check, ctx, share, number, "ShareMaskKeys", f"share bundle {share['digest']} of {msp}")
        if blob is None:
            continue
        facts = dict(round=number, org=msp, threshold=graph.threshold, recipients=list(graph.holders(msp)),
                     graph=graph.to_dict(), mask_key=(advertised.get(msp) or {}).get("mask_key"))
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
            if blob is not None and record.get("attribution"):  # one reveal per group sum, in one blob
                _expect_group_reveals(check, blob, requests, number, msp, ctx.writer("RevealMaskShares", number, msp),
                                      what)
            elif blob is not None:
                _expect(check, blob, "share-reveal", dict(round=number, org=msp, contributors=contributors),
                        number, ctx.writer("RevealMaskShares", number, msp), what)
        for request in requests:
            opened = request.get("result")
            if opened is not None and len(reveals) < (threshold or 0):
                check.fail(f"unmasked with {len(reveals)} reveals, the threshold is {threshold}", round=number,
                           tx=opened.get("tx"), object=f"round~{number:08d}")
        opened = requests[0].get("result") if requests else None
        # With attribution each group masks within itself (complete), not over the round's graph.
        short = secagg.short_of_shares(graph, [r["msp_id"] for r in reveals], participants) \
            if opened is not None and graph is not None and not record.get("attribution") else []
        if short:
            check.fail(f"unmasked although {', '.join(short)} had fewer than {graph.threshold} revealing share "
                       "holders in the masking graph", round=number, tx=opened.get("tx"),
                       object=f"round~{number:08d}")
    return (len(check.findings), len(check.skipped)) == (failures, skips)


def _mask_scope(record: Record, contributors: list[str]) -> list[str]:
    """Whom a sum's contributors masked against: every participant, or with attribution only their
    own allocation group, the sum's contributors (fl.attribution.masking_group)."""
    return list(contributors) if record.get("attribution") else list(record.get("participants") or [])


def _expect_group_reveals(check: Check, blob: bytes, requests: list[Record], number: int, msp: str,
                          tx: str | None, what: str) -> None:
    """A masking round with attribution (one sum per group): the member's reveal holds, per request,
    a share reveal for exactly that request's contributors (fl.attribution.reveal_group_shares)."""
    try:
        header, payload = secagg.unpack(blob, "group-share-reveals")
        secagg.expect(header, round=number, org=msp)
        inner = json.loads(payload)
        for request in requests:
            secagg.expect(secagg.unpack(bytes.fromhex(inner[str(request["index"])]), "share-reveal")[0],
                          round=number, org=msp, contributors=sorted(request["contributors"]))
    except (KeyError, ValueError, TypeError, AttributeError, *BLOB_ERRORS) as exc:
        check.fail(f"is not a reveal of the round's group sums: {exc}", round=number, tx=tx, object=what)


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


