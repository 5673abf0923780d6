"""The blobs of a secure round and the operations on them, for both secure modes.

Everything here is pure: bytes in, bytes out, no ledger and no store. The
facts that decide what may be opened — the round, the contributor set, the
total weight, the threshold — are arguments that the caller reads from the
ledger; each function checks that the blob it opens says the same and
refuses otherwise.

One container for every blob (like the model format)::

    BLOCKFEDML-SECAGG/1\\n<canonical JSON header, with "kind">\\n<payload>

Kinds: ``paillier-update`` / ``paillier-sum`` (fixed-width ciphertexts),
``masked-update`` / ``masked-sum`` (uint64), ``share-bundle`` (a member's
encrypted Shamir shares, one per recipient), ``share-reveal`` (the shares a
member releases for one contributor set, sealed to the aggregator) and
``sum-result`` (int64: the exact weighted fixed-point sum, what a secure
round opens), ``paillier-opening`` (every decrypted plaintext with its
randomness r, so anyone can re-encrypt it) and ``mask-opening`` (the
rebuilt self-mask seeds and dropped mask keys, so anyone can unmask again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from blockfedml.crypto import masking, shamir
from blockfedml.crypto.encoding import EncodedVector, FixedPoint
from blockfedml.crypto.graph import MaskingGraph
from blockfedml.crypto.masking import MaskSecrets
from blockfedml.crypto.packing import SlotLayout
from blockfedml.crypto.paillier import PaillierPrivateKey, PaillierPublicKey
from blockfedml.crypto.randomness import RandomSource
from blockfedml.errors import CryptoError, IntegrityError
from blockfedml.ledger.base import canonical_json

MAGIC = b"BLOCKFEDML-SECAGG/1\n"
_SHARE_PLAINTEXT = 2 * (2 + shamir.SHARE_BYTES)


# -- the container --------------------------------------------------------------------

def pack(kind: str, header: Mapping[str, Any], payload: bytes = b"") -> bytes:
    return MAGIC + canonical_json({**header, "kind": kind}).encode() + b"\n" + payload


def unpack(data: bytes, kind: str) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a blob of this kind; anything else is a CryptoError."""
    end = data.find(b"\n", len(MAGIC)) if data.startswith(MAGIC) else -1
    if end < 0:
        raise CryptoError(f"not a secure-aggregation blob (expected a {kind})")
    try:
        header = json.loads(data[len(MAGIC):end])
    except ValueError:
        raise CryptoError(f"the header of a {kind} blob is not JSON") from None
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise CryptoError(f"expected a {kind} blob, got {header.get('kind') if isinstance(header, dict) else '?'}")
    return header, data[end + 1:]


def expect(header: Mapping[str, Any], **facts: Any) -> None:
    """Refuse a blob whose header disagrees with what the ledger says."""
    for key, value in facts.items():
        if header.get(key) != value:
            raise IntegrityError(f"the {header.get('kind')} blob says {key}={header.get(key)!r}, "
                                 f"the ledger says {value!r}: refusing it")


# -- the opened sum ---------------------------------------------------------------------

def result_to_bytes(total: EncodedVector, round_number: int, contributors: Sequence[str]) -> bytes:
    header = {"round": round_number, "contributors": sorted(contributors), "weight": total.weight,
              "length": int(total.ints.size), "codec": total.codec.to_dict()}
    return pack("sum-result", header, total.ints.astype("<i8").tobytes())


def result_from_bytes(data: bytes, round_number: int, contributors: Sequence[str], weight: int) -> EncodedVector:
    """The opened weighted sum, checked against the authorized contributors and weight."""
    header, payload = unpack(data, "sum-result")
    expect(header, round=round_number, contributors=sorted(contributors), weight=weight)
    if len(payload) != 8 * header["length"]:
        raise IntegrityError("a sum-result blob is truncated")
    return EncodedVector(FixedPoint.from_dict(header["codec"]), np.frombuffer(payload, "<i8").astype(np.int64),
                         weight)


# -- Paillier -------------------------------------------------------------------------

def seal_paillier(params: np.ndarray, weight: int, *, round_number: int, org: str,
                  public_key: PaillierPublicKey, layout: SlotLayout, randomness: RandomSource) -> bytes:
    """Encode, weight, offset, pack and encrypt one member's parameters."""
    plaintexts = layout.pack(layout.codec.encode(params, weight=weight))
    ciphertexts = public_key.encrypt(plaintexts, randomness.take(len(plaintexts)))
    header = {"round": round_number, "org": org, "weight": weight, "length": int(np.asarray(params).size),
              "key": public_key.fingerprint, "layout": layout.to_dict(), "count": len(ciphertexts)}
    return pack("paillier-update", header, public_key.ciphertexts_to_bytes(ciphertexts))


def _ciphertexts(header: Mapping[str, Any], payload: bytes, public_key: PaillierPublicKey) -> list:
    return public_key.ciphertexts_from_bytes(payload, int(header["count"]))


def sum_paillier(blobs: Mapping[str, bytes], *, round_number: int, public_key: PaillierPublicKey,
                 weights: Mapping[str, int]) -> bytes:
    """The homomorphic sum of the members' ciphertexts (no key needed, nothing learned)."""
    vectors, shape = [], None
    for org in sorted(blobs):
        header, payload = unpack(blobs[org], "paillier-update")
        expect(header, round=round_number, org=org, key=public_key.fingerprint, weight=weights[org])
        this = (header["layout"], header["length"], header["count"])
        if shape is not None and this != shape:
            raise IntegrityError(f"the update of {org} was packed differently from the others")
        shape = this
        vectors.append(_ciphertexts(header, payload, public_key))
    layout, length, count = shape
    header = {"round": round_number, "contributors": sorted(blobs), "weight": sum(weights[o] for o in blobs),
              "length": length, "key": public_key.fingerprint, "layout": layout, "count": count}
    return pack("paillier-sum", header, public_key.ciphertexts_to_bytes(public_key.add(vectors)))


def open_paillier(blobs: Mapping[str, bytes], private_key: PaillierPrivateKey, *, round_number: int,
                  weights: Mapping[str, int], layout: SlotLayout) -> tuple[bytes, bytes, bytes]:
    """The key holder's opening of an authorized sum, from the committed ciphertexts themselves.

    ``blobs`` are the contributors' committed updates (checked against their commitments
    by the caller), ``weights`` their committed sample counts. The key holder multiplies
    them itself — the sum blob it rebuilds must hash to the digest the ledger authorized,
    so an aggregator's blob is only a hint — decrypts only that product, and recovers the
    randomness r of each product ciphertext. Returns ``(sum_blob, sum_result, opening)``:
    the opening (kind ``paillier-opening``) holds every plaintext m and its r, so anyone
    can re-encrypt and compare with the product (docs/secure-aggregation.md).
    """
    public_key = private_key.public_key
    sum_blob = sum_paillier(blobs, round_number=round_number, public_key=public_key, weights=weights)
    header, payload = unpack(sum_blob, "paillier-sum")
    expect(header, layout=layout.to_dict())
    ciphertexts = _ciphertexts(header, payload, public_key)
    plaintexts = private_key.decrypt(ciphertexts)
    randomness = private_key.randomness(ciphertexts)
    contributors = sorted(blobs)
    result = result_to_bytes(layout.unpack(plaintexts, int(header["length"]), header["weight"]), round_number,
                             contributors)
    width = (int(public_key.n).bit_length() + 7) // 8
    opening_header = {"round": round_number, "contributors": contributors, "weight": header["weight"],
                      "key": public_key.fingerprint, "count": len(ciphertexts), "width": width,
                      "sum": hashlib.sha256(sum_blob).hexdigest(), "result": hashlib.sha256(result).hexdigest()}
    body = b"".join(int(v).to_bytes(width, "big") for v in [*plaintexts, *randomness])
    return sum_blob, result, pack("paillier-opening", opening_header, body)


def opening_from_bytes(data: bytes) -> tuple[dict[str, Any], list[int], list[int]]:
    """(header, plaintexts, randomness) of a ``paillier-opening`` blob."""
    header, payload = unpack(data, "paillier-opening")
    count, width = int(header["count"]), int(header["width"])
    if len(payload) != 2 * count * width:
        raise IntegrityError(f"a paillier-opening of {count} ciphertexts takes {2 * count * width} bytes, "
                             f"got {len(payload)}")
    values = [int.from_bytes(payload[i:i + width], "big") for i in range(0, len(payload), width)]
    return header, values[:count], values[count:]


# -- masking ----------------------------------------------------------------------------

def share_bundle(secrets_: MaskSecrets, *, round_number: int, org: str, share_keys: Mapping[str, bytes],
                 threshold: int, graph: MaskingGraph | None = None) -> bytes:
    """Shares of this member's mask key and self-mask seed, one sealed pair per share holder.

    ``share_keys`` maps the round's selected members to their share public keys. The
    holders are this member and its neighbours in ``graph`` (everyone in ``share_keys``
    when there is no graph: the complete graph); holder k (sorted) gets the shares at
    x = k + 1, any ``threshold`` of them rebuild a secret.
    """
    recipients = sorted(graph.holders(org)) if graph is not None else sorted(share_keys)
    key_shares = shamir.split(masking.private_bytes(secrets_.mask_key), threshold, len(recipients))
    seed_shares = shamir.split(secrets_.self_seed, threshold, len(recipients))
    sealed = [
        masking.seal_share(secrets_.share_key, share_keys[r], round_number, org, r,
                           shamir.share_to_bytes(k) + shamir.share_to_bytes(s))
        for r, k, s in zip(recipients, key_shares, seed_shares)
    ]
    header = {"round": round_number, "org": org, "threshold": threshold, "recipients": recipients,
              "mask_key": secrets_.mask_public.hex(), "sizes": [len(s) for s in sealed],
              "self_seed_sha256": hashlib.sha256(secrets_.self_seed).hexdigest()}
    if graph is not None:
        header["graph"] = graph.to_dict()
    return pack("share-bundle", header, b"".join(sealed))


def _neighbours(graph: MaskingGraph | None, org: str, among: Sequence[str]) -> list[str]:
    """``org``'s mask partners among ``among``: its graph neighbours, or all of them (complete graph)."""
    if graph is None:
        return sorted(set(among) - {org})
    return sorted(set(graph.neighbours(org)) & set(among))


def _bundle_entry(bundle: bytes, recipient: str) -> tuple[dict[str, Any], bytes]:
    header, payload = unpack(bundle, "share-bundle")
    recipients, sizes = header["recipients"], header["sizes"]
    if recipient not in recipients:
        raise CryptoError(f"the share bundle of {header['org']} has nothing for {recipient}")
    index = recipients.index(recipient)
    start = sum(sizes[:index])
    return header, payload[start:start + sizes[index]]


def seal_masked(params: np.ndarray, weight: int, *, round_number: int, org: str, secrets_: MaskSecrets,
                mask_keys: Mapping[str, bytes], codec: FixedPoint, graph: MaskingGraph | None = None) -> bytes:
    """Encode and weight one member's parameters and add its masks (modulo 2^64): its self-mask
    and one pairwise mask per neighbour in ``graph`` among the participants (``mask_keys``)."""
    encoded = codec.encode(params, weight=weight)
    peers = {p: mask_keys[p] for p in _neighbours(graph, org, list(mask_keys))}
    masked = encoded.ints.view(np.uint64) + masking.total_mask(org, secrets_, peers, round_number,
                                                               encoded.ints.size)
    header = {"round": round_number, "org": org, "weight": weight, "length": int(encoded.ints.size),
              "codec": codec.to_dict(), "participants": sorted(mask_keys)}
    return pack("masked-update", header, masked.astype("<u8").tobytes())


def sum_masked(blobs: Mapping[str, bytes], *, round_number: int, weights: Mapping[str, int],
               participants: Sequence[str]) -> bytes:
    """The sum of the masked vectors (wrapping): still masked by the contributors' self-masks."""
    total, shape = None, None
    for org in sorted(blobs):
        header, payload = unpack(blobs[org], "masked-update")
        expect(header, round=round_number, org=org, weight=weights[org], participants=sorted(participants))
        if shape is not None and (header["codec"], header["length"]) != shape:
            raise IntegrityError(f"the update of {org} was encoded differently from the others")
        shape = (header["codec"], header["length"])
        if len(payload) != 8 * header["length"]:
            raise IntegrityError(f"the masked update of {org} is truncated")
        vector = np.frombuffer(payload, "<u8")
        total = vector.copy() if total is None else total + vector
    header = {"round": round_number, "contributors": sorted(blobs), "weight": sum(weights[o] for o in blobs),
              "codec": shape[0], "length": shape[1]}
    return pack("masked-sum", header, total.astype("<u8").tobytes())


def reveal_shares(secrets_: MaskSecrets, *, round_number: int, org: str, bundles: Mapping[str, bytes],
                  share_keys: Mapping[str, bytes], contributors: Sequence[str], aggregator: str,
                  graph: MaskingGraph | None = None) -> bytes:
    """The shares this member releases for the recorded contributor set, sealed to the aggregator.

    For a contributor: its self-mask seed share (its pairwise masks stay
    secret); for any other participant (dropped): its mask-key share (its
    self-mask never entered the sum). Never both for one member. With a
    ``graph``, only the bundles of the members whose shares it holds (its
    neighbours and itself) are opened; others in ``bundles`` are ignored.
    """
    contributing = set(contributors)
    seeds, keys = {}, {}
    senders = sorted(bundles) if graph is None else sorted(set(bundles) & set(graph.holders(org)))
    for sender in senders:
        header, sealed = _bundle_entry(bundles[sender], org)
        expect(header, round=round_number, org=sender)
        plain = masking.open_share(secrets_.share_key, share_keys[sender], round_number, sender, org, sealed)
        if len(plain) != _SHARE_PLAINTEXT:
            raise CryptoError(f"the shares sent by {sender} have the wrong size")
        key_share, seed_share = plain[:_SHARE_PLAINTEXT // 2], plain[_SHARE_PLAINTEXT // 2:]
        if sender in contributing:
            seeds[sender] = seed_share.hex()
        else:
            keys[sender] = key_share.hex()
    body = canonical_json({"self_seeds": seeds, "mask_keys": keys}).encode()
    sealed = masking.seal_share(secrets_.share_key, share_keys[aggregator], round_number, org, aggregator, body)
    return pack("share-reveal", {"round": round_number, "org": org, "contributors": sorted(contributors)}, sealed)


def unmask(masked_sum: bytes, reveals: Mapping[str, bytes], *, round_number: int, aggregator: str,
           secrets_: MaskSecrets, bundles: Mapping[str, bytes], share_keys: Mapping[str, bytes],
           mask_keys: Mapping[str, bytes], contributors: Sequence[str], weight: int,
           threshold: int, graph: MaskingGraph | None = None) -> tuple[bytes, bytes]:
    """Rebuild the contributors' self-mask seeds and the dropped members' mask keys from
    exactly ``threshold`` revealed shares each, remove every mask; return the sum-result and
    the opening (kind ``mask-opening``: those seeds and keys, each checked against its
    commitment, so anyone can remove the masks again — ``remove_masks``).

    Publishing them shows nobody more than the aggregator already sees: the contributors'
    pairwise masks stay secret (their mask keys are never revealed), and a dropped member's
    self-mask never entered any sum."""
    header, payload = unpack(masked_sum, "masked-sum")
    expect(header, round=round_number, contributors=sorted(contributors), weight=weight)
    contributing = set(contributors)
    dropped = sorted(set(mask_keys) - contributing)
    for org in sorted(mask_keys):
        facts = {} if graph is None else {"graph": graph.to_dict(), "recipients": list(graph.holders(org))}
        expect(unpack(bundles[org], "share-bundle")[0], round=round_number, org=org, threshold=threshold, **facts)
    seed_shares: dict[str, list] = {org: [] for org in contributing}
    key_shares: dict[str, list] = {org: [] for org in dropped}
    for revealer in sorted(reveals):
        reveal_header, sealed = unpack(reveals[revealer], "share-reveal")
        expect(reveal_header, round=round_number, org=revealer, contributors=sorted(contributors))
        body = json.loads(masking.open_share(secrets_.share_key, share_keys[revealer], round_number, revealer,
                                             aggregator, sealed))
        if set(body["self_seeds"]) - contributing or set(body["mask_keys"]) & contributing:
            raise IntegrityError(f"{revealer} revealed shares that do not match the contributor set")
        for org, share in body["self_seeds"].items():
            seed_shares[org].append(shamir.share_from_bytes(bytes.fromhex(share)))
        for org, share in body["mask_keys"].items():
            if org in key_shares:
                key_shares[org].append(shamir.share_from_bytes(bytes.fromhex(share)))

    seeds, keys = {}, {}
    for org in sorted(contributing):
        bundle_header, _ = unpack(bundles[org], "share-bundle")
        seed = _rebuild(seed_shares[org], threshold, f"the self-mask seed of {org}")
        if hashlib.sha256(seed).hexdigest() != bundle_header["self_seed_sha256"]:
            raise IntegrityError(f"the rebuilt self-mask seed of {org} does not match its commitment: "
                                 "a revealed share is wrong")
        seeds[org] = seed
    for org in dropped:
        key = _rebuild(key_shares[org], threshold, f"the mask key of dropped member {org}")
        if masking.public_bytes(X25519PrivateKey.from_private_bytes(key)) != mask_keys[org]:
            raise IntegrityError(f"the rebuilt mask key of {org} does not match the key it advertised")
        keys[org] = key
    result = remove_masks(masked_sum, seeds, keys, mask_keys, round_number=round_number, weight=weight,
                          graph=graph)
    opening_header = {"round": round_number, "contributors": sorted(contributors), "weight": weight,
                      "sum": hashlib.sha256(masked_sum).hexdigest(), "result": hashlib.sha256(result).hexdigest()}
    body = canonical_json({"self_seeds": {o: v.hex() for o, v in seeds.items()},
                           "mask_keys": {o: v.hex() for o, v in keys.items()}}).encode()
    return result, pack("mask-opening", opening_header, body)


def remove_masks(masked_sum: bytes, seeds: Mapping[str, bytes], keys: Mapping[str, bytes],
                 mask_keys: Mapping[str, bytes], *, round_number: int, weight: int,
                 graph: MaskingGraph | None = None) -> bytes:
    """The sum-result of a masked sum, given every contributor's self-mask seed and every
    dropped member's mask key (private bytes); ``mask_keys`` are the advertised public keys.
    A dropped member's pairwise masks are undone with its ``graph`` neighbours only."""
    header, payload = unpack(masked_sum, "masked-sum")
    length = int(header["length"])
    masks = np.zeros(length, dtype=np.uint64)
    contributors = sorted(header["contributors"])
    for org in contributors:
        masks += masking.expand(masking.self_mask_seed(seeds[org], round_number, org), length)
    for org in sorted(keys):
        key = X25519PrivateKey.from_private_bytes(keys[org])
        for peer in _neighbours(graph, org, contributors):  # undo the mask each contributor shared with org
            stream = masking.expand(masking.pair_seed(key, mask_keys[peer], round_number, org, peer), length)
            if masking.pair_sign(peer, org) > 0:
                masks += stream
            else:
                masks -= stream
    ints = (np.frombuffer(payload, "<u8") - masks).view(np.int64)
    total = EncodedVector(FixedPoint.from_dict(header["codec"]), ints, weight)
    return result_to_bytes(total, round_number, contributors)


def mask_opening_from_bytes(data: bytes) -> tuple[dict[str, Any], dict[str, bytes], dict[str, bytes]]:
    """(header, self-mask seeds, dropped mask keys) of a ``mask-opening`` blob."""
    header, payload = unpack(data, "mask-opening")
    try:
        body = json.loads(payload)
        return (header, {o: bytes.fromhex(v) for o, v in body["self_seeds"].items()},
                {o: bytes.fromhex(v) for o, v in body["mask_keys"].items()})
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError("a mask-opening blob is malformed") from None


def short_of_shares(graph: MaskingGraph, revealers: Sequence[str], participants: Sequence[str]) -> list[str]:
    """The participants whose secret cannot be rebuilt yet: fewer than ``graph.threshold`` of its
    share holders (its neighbours and itself) among ``revealers``. Empty once unmasking can work."""
    revealed = set(revealers)
    return [org for org in sorted(participants) if len(revealed & set(graph.holders(org))) < graph.threshold]


def _rebuild(shares: list, threshold: int, what: str) -> bytes:
    if len(shares) < threshold:
        raise CryptoError(f"{what} needs {threshold} revealed shares, only {len(shares)} arrived: "
                          "too few survivors to unmask this round")
    return shamir.reconstruct(shares, threshold)
