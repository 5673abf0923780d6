"""The audit's own arithmetic: sums and openings recomputed from the primitives.

Nothing here imports ``blockfedml.fl``: if the audit checked the aggregation code's output
with that same code, a bug there would be invisible to it. So it reads the blob container
itself, multiplies Paillier ciphertexts with gmpy2, adds masked vectors and unpacks slots
with numpy, re-encrypts every published Paillier plaintext with its randomness r, and
removes masks with the masking primitives (``crypto.masking``: seed derivation and
expansion). Every mismatch raises ``IntegrityError`` with a message that names it; a
Paillier slot that does not re-encrypt raises ``SlotMismatch`` naming the slot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from blockfedml.crypto import masking
from blockfedml.crypto.encoding import FixedPoint
from blockfedml.crypto.paillier import parallel
from blockfedml.errors import IntegrityError
from blockfedml.ml.serialization import params_from_bytes

MAGIC = b"BLOCKFEDML-SECAGG/1\n"  # the container of docs/secure-aggregation.md, read independently


class SlotMismatch(IntegrityError):
    """A published Paillier plaintext that does not re-encrypt to its ciphertext."""

    def __init__(self, slot: int, message: str) -> None:
        super().__init__(message)
        self.slot = slot


def parse(data: bytes, kind: str) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a secure-aggregation blob of ``kind``."""
    end = data.find(b"\n", len(MAGIC)) if data.startswith(MAGIC) else -1
    try:
        header = json.loads(data[len(MAGIC):end]) if end > 0 else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise IntegrityError(f"not a {kind} blob")
    return header, data[end + 1:]


def _build(kind: str, header: Mapping[str, Any], payload: bytes) -> bytes:
    text = json.dumps({**header, "kind": kind}, sort_keys=True, separators=(",", ":"))
    return MAGIC + text.encode() + b"\n" + payload


def expect(header: Mapping[str, Any], what: str, **facts: Any) -> None:
    for key, value in facts.items():
        if header.get(key) != value:
            raise IntegrityError(f"{what} says {key}={header.get(key)!r}, the ledger says {value!r}")


# -- Paillier ---------------------------------------------------------------------------

def paillier_sum(blobs: Mapping[str, bytes], n: int, fingerprint: str, round_number: int,
                 weights: Mapping[str, int]) -> tuple[bytes, list[int]]:
    """The sum blob of these committed updates and its product ciphertexts (c_1 * ... * c_k mod n^2)."""
    nsquare = gmpy2.mpz(n) * n
    width = (int(nsquare).bit_length() + 7) // 8
    product: list[Any] | None = None
    shape = None
    for org in sorted(blobs):
        header, payload = parse(blobs[org], "paillier-update")
        expect(header, f"the update of {org}", round=round_number, org=org, key=fingerprint, weight=weights[org])
        this = (header["layout"], header["length"], header["count"])
        if shape is not None and this != shape:
            raise IntegrityError(f"the update of {org} was packed differently from the others")
        shape = this
        if len(payload) != width * header["count"]:
            raise IntegrityError(f"the update of {org} holds {len(payload)} bytes, not {header['count']} ciphertexts")
        values = [gmpy2.mpz(int.from_bytes(payload[i:i + width], "big")) for i in range(0, len(payload), width)]
        product = values if product is None else [a * b % nsquare for a, b in zip(product, values)]
    if shape is None or product is None:
        raise IntegrityError("an opened sum has no contributors")
    layout, length, count = shape
    header = {"round": round_number, "contributors": sorted(blobs), "weight": sum(weights[o] for o in blobs),
              "length": length, "key": fingerprint, "layout": layout, "count": count}
    body = b"".join(int(c).to_bytes(width, "big") for c in product)
    return _build("paillier-sum", header, body), [int(c) for c in product]


def verify_paillier_opening(opening: bytes, product: Sequence[int], n: int) -> list[int]:
    """The plaintexts of ``product``, each proven by re-encryption: (1 + m*n) * r^n mod n^2 == c.

    Without the private key: for Paillier, (m, r) -> c is a bijection, so a pair that
    re-encrypts to c is its one true plaintext."""
    header, payload = parse(opening, "paillier-opening")
    count, width = int(header["count"]), int(header["width"])
    if count != len(product) or len(payload) != 2 * count * width:
        raise IntegrityError(f"the opening holds {count} plaintexts in {len(payload)} bytes; the sum has "
                             f"{len(product)} ciphertexts")
    values = [int.from_bytes(payload[i:i + width], "big") for i in range(0, len(payload), width)]
    plaintexts, randomness = values[:count], values[count:]
    big_n = gmpy2.mpz(n)
    nsquare = big_n * big_n

    def false_slots(slots: Sequence[int]) -> list[int]:
        return [slot for slot in slots
                if not (0 <= plaintexts[slot] < n and 0 < randomness[slot] < n)
                or (1 + plaintexts[slot] * big_n) * gmpy2.powmod(randomness[slot], big_n, nsquare) % nsquare
                != product[slot]]

    wrong = parallel(false_slots, range(count))  # one r^n mod n^2 per slot, on every core
    if wrong:
        slot = wrong[0]
        raise SlotMismatch(slot, f"slot {slot}: the published plaintext and r do not re-encrypt to the "
                                 "product ciphertext; the key holder's opening of this slot is false")
    return plaintexts


def unpack_slots(plaintexts: Sequence[int], layout: Mapping[str, Any], length: int, weight: int) -> np.ndarray:
    """The weighted fixed-point sums in the packed plaintexts: each slot minus ``weight * offset``."""
    slot_bytes, slots = int(layout["slot_bytes"]), int(layout["slots"])
    offset = FixedPoint.from_dict(layout["codec"]).offset
    values = []
    for plaintext in plaintexts:
        if plaintext >> (8 * slot_bytes * slots):
            raise IntegrityError("a plaintext is wider than its slots: the sum overflowed or was packed otherwise")
        for k in range(slots):
            values.append((plaintext >> (8 * slot_bytes * k)) & ((1 << (8 * slot_bytes)) - 1))
    if len(values) < length:
        raise IntegrityError(f"{len(plaintexts)} plaintexts hold {len(values)} values, the sum has {length}")
    return np.array(values[:length], dtype=np.int64) - np.int64(weight) * np.int64(offset)


# -- masking ----------------------------------------------------------------------------

def masked_sum(blobs: Mapping[str, bytes], round_number: int, weights: Mapping[str, int],
               participants: Sequence[str]) -> bytes:
    """The masked-sum blob of these committed masked updates (sum modulo 2^64)."""
    total, shape = None, None
    for org in sorted(blobs):
        header, payload = parse(blobs[org], "masked-update")
        expect(header, f"the update of {org}", round=round_number, org=org, weight=weights[org],
                participants=sorted(participants))
        if shape is not None and (header["codec"], header["length"]) != shape:
            raise IntegrityError(f"the update of {org} was encoded differently from the others")
        shape = (header["codec"], header["length"])
        if len(payload) != 8 * header["length"]:
            raise IntegrityError(f"the masked update of {org} is truncated")
        vector = np.frombuffer(payload, "<u8")
        total = vector.copy() if total is None else total + vector
    if shape is None or total is None:
        raise IntegrityError("an opened sum has no contributors")
    header = {"round": round_number, "contributors": sorted(blobs), "weight": sum(weights[o] for o in blobs),
              "codec": shape[0], "length": shape[1]}
    return _build("masked-sum", header, total.astype("<u8").tobytes())


def mask_opening(opening: bytes) -> tuple[dict[str, Any], dict[str, bytes], dict[str, bytes]]:
    """(header, self-mask seeds by contributor, mask keys by dropped member) of a mask-opening."""
    header, payload = parse(opening, "mask-opening")
    try:
        body = json.loads(payload)
        return (header, {o: bytes.fromhex(v) for o, v in body["self_seeds"].items()},
                {o: bytes.fromhex(v) for o, v in body["mask_keys"].items()})
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError("the mask-opening is malformed") from None


def check_mask_secrets(seeds: Mapping[str, bytes], keys: Mapping[str, bytes], contributors: Sequence[str],
                       participants: Sequence[str], seed_commitments: Mapping[str, str],
                       advertised: Mapping[str, bytes]) -> None:
    """Each seed hashes to its owner's commitment (share bundle), each dropped key is the one advertised."""
    dropped = sorted(set(participants) - set(contributors))
    if sorted(seeds) != sorted(contributors) or sorted(keys) != dropped:
        raise IntegrityError(f"the opening gives seeds of {sorted(seeds)} and keys of {sorted(keys)}; the round "
                             f"needs the seeds of {sorted(contributors)} and the keys of {dropped}")
    for org, seed in seeds.items():
        if hashlib.sha256(seed).hexdigest() != seed_commitments.get(org):
            raise IntegrityError(f"the published self-mask seed of {org} does not match its commitment")
    for org, key in keys.items():
        try:
            public = masking.public_bytes(X25519PrivateKey.from_private_bytes(key))
        except ValueError:
            raise IntegrityError(f"the published mask key of {org} is not an X25519 key") from None
        if public != advertised.get(org):
            raise IntegrityError(f"the published mask key of {org} is not the key it advertised")


def unmask(masked: bytes, seeds: Mapping[str, bytes], keys: Mapping[str, bytes],
           advertised: Mapping[str, bytes], round_number: int,
           neighbours: Mapping[str, Sequence[str]] | None = None) -> np.ndarray:
    """The weighted fixed-point sum: the masked sum minus every self-mask, with the pairwise
    masks each contributor shared with a dropped member undone — only the contributors that
    are the dropped member's ``neighbours`` in the round's masking graph (all, if None)."""
    header, payload = parse(masked, "masked-sum")
    length = int(header["length"])
    contributors = sorted(header["contributors"])
    total = np.frombuffer(payload, "<u8").copy()
    for org in contributors:
        total -= masking.expand(masking.self_mask_seed(seeds[org], round_number, org), length)
    for org in sorted(keys):
        key = X25519PrivateKey.from_private_bytes(keys[org])
        partners = contributors if neighbours is None else sorted(set(contributors) & set(neighbours[org]))
        for peer in partners:
            stream = masking.expand(masking.pair_seed(key, advertised[peer], round_number, org, peer), length)
            # the contributor added sign(peer, org) * stream; the dropped member's opposite never came
            total = total - stream if masking.pair_sign(peer, org) > 0 else total + stream
    return total.view(np.int64)


# -- results and models -----------------------------------------------------------------

def result_values(result: bytes, round_number: int, contributors: Sequence[str],
                  weight: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(ints, codec) of a sum-result blob whose header agrees with the ledger."""
    header, payload = parse(result, "sum-result")
    expect(header, "the sum-result", round=round_number, contributors=sorted(contributors), weight=weight)
    if len(payload) != 8 * int(header["length"]):
        raise IntegrityError("the sum-result is truncated")
    return np.frombuffer(payload, "<i8").astype(np.int64), header["codec"]


def average(ints: np.ndarray, codec: Mapping[str, Any], weight: int) -> np.ndarray:
    """The FedAvg parameters of a weighted fixed-point sum: ints / (weight * 2^frac_bits)."""
    return ints.astype(np.float64) / (float(weight) * FixedPoint.from_dict(codec).scale)


def average_of_sums(opened: Sequence[tuple[np.ndarray, Mapping[str, Any], int]]) -> np.ndarray:
    """FedAvg of the union of several opened sums, each weighted by its total weight."""
    total = sum(weight for _, _, weight in opened)
    return sum(weight * average(ints, codec, weight) for ints, codec, weight in opened) / total


def fedavg(blobs: Mapping[str, bytes]) -> np.ndarray:
    """FedAvg of plaintext updates: sum_i (n_i / n) * x_i, members in sorted order."""
    rows, counts = [], []
    for org in sorted(blobs):
        params, meta = params_from_bytes(blobs[org])
        if meta.get("org") != org:
            raise IntegrityError(f"the update committed by {org} is labelled as {meta.get('org')!r}")
        rows.append(np.asarray(params, dtype=np.float64))
        counts.append(int(meta["num_samples"]))
    weights = np.array(counts, dtype=np.float64)
    return (weights / weights.sum()) @ np.stack(rows)
