"""Shamir secret sharing of 32-byte secrets over the prime field of 2^521 - 1.

Masking needs each member's 32-byte secrets (its X25519 mask key and its
self-mask seed) recoverable by any ``threshold`` of the other members and by
no fewer. A polynomial of degree ``threshold - 1`` over GF(p), p = 2^521 - 1
(a Mersenne prime, larger than any 32-byte secret, so a secret is one field
element and needs no splitting into halves), has the secret as constant
term; share i is its value at x = i. Reconstruction uses exactly
``threshold`` shares (Lagrange interpolation at 0): fewer raise, extra ones
are not needed and are ignored.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from blockfedml.errors import CryptoError, InvalidInputError

PRIME = (1 << 521) - 1
SECRET_BYTES = 32
SHARE_BYTES = 66  # a field element (521 bits) in big-endian bytes

Share = tuple[int, int]  # (x, y): x in 1..count, y in GF(PRIME)


def split(secret: bytes, threshold: int, count: int) -> list[Share]:
    """``count`` shares of a 32-byte secret, any ``threshold`` of which rebuild it."""
    if len(secret) != SECRET_BYTES:
        raise InvalidInputError(f"a shared secret has {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= count:
        raise InvalidInputError(f"threshold must be in 1..{count} (the number of shares), got {threshold}")
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = []
    for x in range(1, count + 1):
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % PRIME
        shares.append((x, y))
    return shares


def reconstruct(shares: Sequence[Share], threshold: int) -> bytes:
    """The secret, from exactly ``threshold`` of the given shares (the lowest x first)."""
    distinct = {x: y for x, y in shares}
    if len(distinct) != len(shares):
        raise CryptoError("two shares with the same index: a share was duplicated or forged")
    if len(distinct) < threshold:
        raise CryptoError(f"{len(distinct)} share(s) cannot rebuild a secret shared with threshold "
                          f"{threshold}: {threshold - len(distinct)} more are needed")
    points = sorted(distinct.items())[:threshold]
    secret = 0
    for i, (xi, yi) in enumerate(points):
        numerator, denominator = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                numerator = numerator * -xj % PRIME
                denominator = denominator * (xi - xj) % PRIME
        secret = (secret + yi * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >> (8 * SECRET_BYTES):
        raise CryptoError("the shares do not rebuild a 32-byte secret: a share is wrong")
    return secret.to_bytes(SECRET_BYTES, "big")


def share_to_bytes(share: Share) -> bytes:
    x, y = share
    return x.to_bytes(2, "big") + y.to_bytes(SHARE_BYTES, "big")


def share_from_bytes(data: bytes) -> Share:
    if len(data) != 2 + SHARE_BYTES:
        raise CryptoError(f"a share has {2 + SHARE_BYTES} bytes, got {len(data)}")
    x, y = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
    if not (x >= 1 and y < PRIME):
        raise CryptoError("a share is outside the field")
    return x, y
