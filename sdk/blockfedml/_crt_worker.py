"""CRT work for Paillier decryption in a worker process (see ``crypto.paillier.CrtPool``).

Run as ``python -m blockfedml._crt_worker``: a plain subprocess talking over its pipes, so
that neither ``fork`` (unsafe next to gRPC threads) nor ``spawn`` (which re-runs the
caller's ``__main__``) is involved. Kept outside ``blockfedml.crypto`` on purpose: a worker
imports only this module and gmpy2 (about 50 ms). The private key's CRT constants arrive
once, on stdin, never on the command line; the worker exits when its stdin closes.

Protocol, all integers big-endian: the key as one line of JSON (hex strings); then
requests ``op (1 byte: d = decrypt, r = randomness) | count (4) | width (2) | count
fixed-width ciphertexts``, each answered by ``count`` values of ``width // 2`` bytes.
"""

from __future__ import annotations

import json
import sys

import gmpy2


def _constants(line: bytes) -> dict[str, gmpy2.mpz]:
    key = {name: gmpy2.mpz(int(value, 16)) for name, value in json.loads(line).items()}
    key["psquare"], key["qsquare"] = key["p"] ** 2, key["q"] ** 2
    return key


def decrypt(key: dict[str, gmpy2.mpz], ciphertexts: list[gmpy2.mpz]) -> list[gmpy2.mpz]:
    """m of each ciphertext: two half-size exponentiations joined by the CRT (as ``phe`` does)."""
    p, q, psquare, qsquare = key["p"], key["q"], key["psquare"], key["qsquare"]
    hp, hq, p_inverse = key["hp"], key["hq"], key["p_inverse"]
    out = []
    for c in ciphertexts:
        mp = (gmpy2.powmod(c, p - 1, psquare) - 1) // p * hp % p
        mq = (gmpy2.powmod(c, q - 1, qsquare) - 1) // q * hq % q
        out.append(mp + ((mq - mp) * p_inverse % q) * p)
    return out


def roots(key: dict[str, gmpy2.mpz], ciphertexts: list[gmpy2.mpz]) -> list[gmpy2.mpz]:
    """r of each ciphertext (c = (1 + n)^m r^n mod n^2): the n-th root of c mod n, by the CRT."""
    p, q, root_p, root_q, p_inverse = key["p"], key["q"], key["root_p"], key["root_q"], key["p_inverse"]
    out = []
    for c in ciphertexts:
        rp = gmpy2.powmod(c % p, root_p, p)
        rq = gmpy2.powmod(c % q, root_q, q)
        out.append(rp + ((rq - rp) * p_inverse % q) * p)
    return out


def main() -> None:
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    key = _constants(source.readline())
    operations = {b"d": decrypt, b"r": roots}
    while True:
        head = source.read(7)
        if len(head) < 7:
            return  # the parent closed the pipe: done
        op, count, width = head[:1], int.from_bytes(head[1:5], "big"), int.from_bytes(head[5:7], "big")
        body = source.read(count * width)
        values = [gmpy2.mpz(int.from_bytes(body[i:i + width], "big")) for i in range(0, len(body), width)]
        half = width // 2
        sink.write(b"".join(int(v).to_bytes(half, "big") for v in operations[op](key, values)))
        sink.flush()


if __name__ == "__main__":
    main()
