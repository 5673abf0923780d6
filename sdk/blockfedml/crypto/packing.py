"""Many fixed-point values in one Paillier plaintext (BatchCrypt-style packing).

A Paillier plaintext has about 2,047 usable bits but one parameter needs
fewer than 50, and encryption costs the same whatever the plaintext, so
packing k values per plaintext divides every cost by k. Each value sits in a
slot of whole bytes; homomorphic addition adds slot by slot, and a slot holds
its sum only if nothing carries into its neighbour. So the slot width is the
value width plus **headroom for the sum**: a member's slot holds
``n_i * (q_i + offset)`` (its weight n_i times its offset fixed-point value),
which is below ``n_i * 2**value_bits``; the sum over members is below
``W * 2**value_bits`` with W the total weight, so a slot needs
``value_bits + bits(W_max)`` bits. The layout is computed from the round's
public facts (key size, participants, the weight cap), so every member and
the decryptor derive the same one, and the decryptor refuses a sum whose
total weight exceeds what the layout was built for.

Negative values need the offset; removing it needs the exact total weight
of the sum (``W * offset`` per slot), which the decryptor reads from the
ledger, never from the aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blockfedml.crypto.encoding import EncodedVector, EncodingOverflowError, FixedPoint, Quantization
from blockfedml.errors import InvalidInputError

DEFAULT_WEIGHT_BITS = 16
"""A member's weight (its sample count) must be below 2**16 unless the layout says otherwise."""


@dataclass(frozen=True)
class SlotLayout:
    """Slots of ``slot_bytes`` bytes, ``slots`` per plaintext, for sums of total weight ≤ ``max_weight``."""

    codec: FixedPoint
    slot_bytes: int
    slots: int
    max_weight: int

    @classmethod
    def for_round(cls, codec: FixedPoint, key_bits: int, participants: int,
                  weight_bits: int = DEFAULT_WEIGHT_BITS) -> "SlotLayout":
        """The layout for ``participants`` members, each weighing less than ``2**weight_bits``."""
        if participants < 1 or not 1 <= weight_bits <= 24:
            raise InvalidInputError(
                f"a layout needs participants >= 1 and weight_bits in 1..24, got {participants}, {weight_bits}")
        max_weight = participants * ((1 << weight_bits) - 1)
        slot_bits = codec.value_bits + max_weight.bit_length()
        slot_bytes = -(-slot_bits // 8)
        if slot_bits > 63:
            raise InvalidInputError(f"slots of {slot_bits} bits do not fit an int64; lower the precision")
        slots = (key_bits - 1) // (8 * slot_bytes)  # a packed plaintext stays below 2**(bits-1) <= n
        if slots < 1:
            raise InvalidInputError(f"a {key_bits}-bit key cannot hold one {slot_bits}-bit slot")
        return cls(codec=codec, slot_bytes=slot_bytes, slots=slots, max_weight=max_weight)

    @property
    def plaintext_bytes(self) -> int:
        return self.slot_bytes * self.slots

    def count(self, length: int) -> int:
        """How many plaintexts hold ``length`` values."""
        return -(-length // self.slots)

    def pack(self, encoded: EncodedVector) -> list[int]:
        """One member's weighted values, offset to be non-negative, as packed plaintexts."""
        self._check_weight(encoded.weight)
        shifted = encoded.ints + np.int64(encoded.weight) * np.int64(self.codec.offset)
        return self._pack_unsigned(shifted.astype(np.uint64))

    def unpack(self, plaintexts: list[int], length: int, weight: int) -> EncodedVector:
        """Undo :meth:`pack` for a sum of total weight ``weight``: slots minus ``weight * offset``.

        ``weight`` must be the exact total weight of the summands (from the
        ledger): any other value gives wrong numbers, so it is never guessed.
        """
        self._check_weight(weight)
        if len(plaintexts) != self.count(length):
            raise InvalidInputError(f"{length} values need {self.count(length)} plaintexts, got {len(plaintexts)}")
        width = self.plaintext_bytes
        try:
            raw = b"".join(int(p).to_bytes(width, "little") for p in plaintexts)
        except OverflowError:
            raise EncodingOverflowError(
                "a decrypted plaintext is wider than its slots: the sum overflowed its headroom "
                "or was not produced with this layout") from None
        columns = np.frombuffer(raw, dtype=np.uint8).reshape(-1, self.slot_bytes)[:length]
        padded = np.zeros((length, 8), dtype=np.uint8)
        padded[:, :self.slot_bytes] = columns
        slots = padded.view("<u8").reshape(length).astype(np.int64)
        return EncodedVector(self.codec, slots - np.int64(weight) * np.int64(self.codec.offset), weight)

    def _pack_unsigned(self, values: np.ndarray) -> list[int]:
        if values.size and int(values.max()) >> (8 * self.slot_bytes):
            raise EncodingOverflowError("a weighted value does not fit its slot; the layout is too narrow")
        count = self.count(values.size)
        columns = np.zeros((count * self.slots, self.slot_bytes), dtype=np.uint8)
        columns[:values.size] = values.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :self.slot_bytes]
        rows = columns.reshape(count, self.plaintext_bytes)
        return [int.from_bytes(row.tobytes(), "little") for row in rows]

    def _check_weight(self, weight: int) -> None:
        if not 1 <= weight <= self.max_weight:
            raise EncodingOverflowError(
                f"total weight {weight} exceeds the {self.max_weight} this layout has headroom for "
                f"(slots of {8 * self.slot_bytes} bits): the sum would overflow into neighbouring slots")

    def to_dict(self) -> dict[str, Any]:
        return {"codec": self.codec.to_dict(), "slot_bytes": self.slot_bytes, "slots": self.slots,
                "max_weight": self.max_weight}

    @classmethod
    def from_dict(cls, data: Any) -> "SlotLayout":
        try:
            layout = cls(codec=FixedPoint.from_dict(data["codec"]), slot_bytes=int(data["slot_bytes"]),
                         slots=int(data["slots"]), max_weight=int(data["max_weight"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(f"not a slot layout: {data!r}") from None
        if not 1 <= layout.slot_bytes <= 8 or layout.slots < 1 or layout.max_weight < 1:
            raise InvalidInputError(f"slot layout out of range: {data!r}")
        needed = layout.codec.value_bits + layout.max_weight.bit_length()
        if needed > min(63, 8 * layout.slot_bytes):
            raise InvalidInputError(f"slot layout without enough headroom: {data!r}")
        return layout


@dataclass(frozen=True)
class QuantizedLayout:
    """Quantized values packed bit by bit, with headroom for exactly ``summands`` members.

    A member's value q lies in [-L, L] (``L = quantization.levels``); the slot holds
    ``q + L`` in [0, 2L], and the sum of ``summands`` such values is at most
    ``2L * summands``, so a slot needs ``bits(2L * summands)`` bits: the quantization's bits
    plus ``bits(summands)``, not a byte more (slots are not byte-aligned). With 12-bit values
    and 10 members a slot is 16 bits: 127 per 2048-bit plaintext, against 42 for the exact
    fixed-point layout (28-bit values, 16-bit weights). The decryptor removes ``count * L``
    per slot with the exact number of summands in the sum, read from the ledger.
    """

    quantization: Quantization
    summands: int
    slot_bits: int
    slots: int

    @classmethod
    def for_round(cls, quantization: Quantization, key_bits: int, summands: int) -> "QuantizedLayout":
        """The layout for sums of at most ``summands`` members' values under a ``key_bits`` key."""
        if isinstance(summands, bool) or not isinstance(summands, int) or summands < 1:
            raise InvalidInputError(f"a quantized layout needs summands >= 1 (the members in a sum), got {summands!r}")
        slot_bits = (2 * quantization.levels * summands).bit_length()
        if slot_bits > 63:
            raise InvalidInputError(f"{summands} summands of {quantization.bits}-bit values need {slot_bits}-bit "
                                    "slots, more than 63: quantize to fewer bits")
        slots = (key_bits - 1) // slot_bits  # a packed plaintext stays below 2**(bits-1) <= n
        if slots < 1:
            raise InvalidInputError(f"a {key_bits}-bit key cannot hold one {slot_bits}-bit slot")
        return cls(quantization=quantization, summands=summands, slot_bits=slot_bits, slots=slots)

    def count(self, length: int) -> int:
        """How many plaintexts hold ``length`` values."""
        return -(-length // self.slots)

    def pack(self, quantized: np.ndarray) -> list[int]:
        """One member's quantized values (int64 in [-L, L]) as packed plaintexts."""
        levels = self.quantization.levels
        q = np.asarray(quantized, dtype=np.int64)
        if q.ndim != 1 or (q.size and int(np.abs(q).max()) > levels):
            raise EncodingOverflowError(f"quantized values must be a flat vector in [-{levels}, {levels}]")
        shifted = (q + levels).astype(np.uint64)
        count, width = self.count(q.size), self.slot_bits
        bits = np.zeros((count * self.slots, width), dtype=np.uint8)
        bits[:q.size] = (shifted[:, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)
        rows = np.packbits(bits.reshape(count, self.slots * width), axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in rows]

    def unpack(self, plaintexts: list[int], length: int, summands: int) -> np.ndarray:
        """The exact sum of ``summands`` members' quantized values (int64), undoing :meth:`pack`.

        ``summands`` must be the exact number of members in the sum (from the ledger), at most
        the ``summands`` this layout has headroom for."""
        if isinstance(summands, bool) or not isinstance(summands, int) or not 1 <= summands <= self.summands:
            raise EncodingOverflowError(
                f"a sum of {summands!r} members: this layout has headroom for 1..{self.summands} "
                f"({self.slot_bits}-bit slots); more would overflow into neighbouring slots")
        if len(plaintexts) != self.count(length):
            raise InvalidInputError(f"{length} values need {self.count(length)} plaintexts, got {len(plaintexts)}")
        width, row_bits = self.slot_bits, self.slots * self.slot_bits
        row_bytes = -(-row_bits // 8)
        try:
            raw = b"".join(int(p).to_bytes(row_bytes, "little") for p in plaintexts)
        except OverflowError:
            raise EncodingOverflowError("a decrypted plaintext is wider than its slots: the sum overflowed its "
                                        "headroom or was not produced with this layout") from None
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(len(plaintexts), row_bytes), axis=1,
                             bitorder="little")[:, :row_bits].reshape(-1, width)[:length]
        slots = bits.astype(np.uint64) @ (np.uint64(1) << np.arange(width, dtype=np.uint64))
        return slots.astype(np.int64) - np.int64(summands * self.quantization.levels)

    def to_dict(self) -> dict[str, Any]:
        return {"quantization": self.quantization.to_dict(), "summands": self.summands,
                "slot_bits": self.slot_bits, "slots": self.slots}
