"""Paillier keys and vector operations on ``phe`` keys and ``gmpy2`` arithmetic.

``phe`` (python-paillier) generates the keys and is the per-number baseline;
the operations here work on whole vectors of packed plaintexts with gmpy2
integers, because one round encrypts thousands of plaintexts:

- encryption with g = n + 1: ``c = (1 + m*n) * r^n mod n^2``. The expensive
  factor r^n does not depend on m, so it comes from a :mod:`randomness`
  source: precomputed off the critical path, or from a fixed-base table;
- addition is multiplication mod n^2, done per position over the members;
- decryption uses the CRT (two half-size exponentiations, as ``phe`` does)
  and runs on every core: large batches (a round's thousands of ciphertexts)
  in a pool of worker processes kept by the private key for its lifetime
  (:class:`CrtPool`; started once, ~0.1 s; plain subprocesses on pipes),
  small ones on threads (gmpy2 releases the GIL when asked to).

Key sizes are 2048 bits (default) or 3072; smaller keys are refused. A key's
fingerprint is the SHA-256 of its canonical public form (what goes on the
ledger; the bytes themselves live in the content-addressed store under that
digest). The private key never leaves its holder's work directory.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import gmpy2
from phe import paillier as phe_paillier

from blockfedml.errors import CryptoError, InvalidInputError, NotFoundError
from blockfedml.ledger.base import canonical_json
from blockfedml.store import sha256_hex

KEY_SIZES = (2048, 3072)
DEFAULT_KEY_BITS = 2048
PUBLIC_MAGIC = b"BLOCKFEDML-PAILLIER-PUBLIC-KEY/1\n"
WORKERS = max(1, min(4, os.cpu_count() or 1))
_SDK_PATH = os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")] if p)
PROCESS_BATCH = 256
"""Batches of at least this many ciphertexts are decrypted in worker processes (when WORKERS > 1)."""

T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[Sequence[T]], list[R]], items: Sequence[T], workers: int = WORKERS) -> list[R]:
    """``fn`` over contiguous chunks of ``items`` on ``workers`` threads, results in order.

    Each chunk runs with gmpy2's ``allow_release_gil``, so big-integer work
    really runs on several cores (1.9x on two).
    """
    def run(chunk: Sequence[T]) -> list[R]:
        with gmpy2.context(gmpy2.get_context(), allow_release_gil=True):
            return fn(chunk)

    if workers <= 1 or len(items) < 2 * workers:
        return run(items)
    size = -(-len(items) // workers)
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="paillier") as pool:
        return [value for part in pool.map(run, chunks) for value in part]


def check_key_bits(bits: int) -> int:
    if bits not in KEY_SIZES:
        raise CryptoError(f"Paillier keys must have {' or '.join(map(str, KEY_SIZES))} bits, got {bits}: "
                          "smaller keys are refused (under 112-bit security)")
    return bits


class PaillierPublicKey:
    """n (g is n + 1); encrypts and adds vectors of packed plaintexts."""

    def __init__(self, n: int) -> None:
        n = int(n)
        self.bits = check_key_bits(n.bit_length())
        if n % 2 == 0:
            raise CryptoError("a Paillier modulus is odd")
        self.n = gmpy2.mpz(n)
        self.nsquare = self.n * self.n
        self.ciphertext_bytes = (int(self.nsquare).bit_length() + 7) // 8

    # -- identity -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The canonical public form; its SHA-256 is the fingerprint."""
        return PUBLIC_MAGIC + canonical_json({"bits": self.bits, "n": format(int(self.n), "x")}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PaillierPublicKey":
        if not data.startswith(PUBLIC_MAGIC):
            raise CryptoError("not a BlockFedML Paillier public key")
        try:
            fields = json.loads(data[len(PUBLIC_MAGIC):])
            key = cls(int(fields["n"], 16))
        except (ValueError, KeyError, TypeError):
            raise CryptoError("malformed Paillier public key") from None
        if key.to_bytes() != data or fields.get("bits") != key.bits:
            raise CryptoError("Paillier public key is not in canonical form")
        return key

    @property
    def fingerprint(self) -> str:
        return sha256_hex(self.to_bytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaillierPublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(int(self.n))

    def __repr__(self) -> str:
        return f"PaillierPublicKey({self.bits} bits, {self.fingerprint[:12]})"

    def to_phe(self) -> phe_paillier.PaillierPublicKey:
        return phe_paillier.PaillierPublicKey(int(self.n))

    # -- vector operations ----------------------------------------------------------
    def encrypt(self, plaintexts: Sequence[int], random_factors: Sequence[gmpy2.mpz]) -> list[gmpy2.mpz]:
        """Encrypt each plaintext (0 <= m < n) with its own r^n (used once, never again)."""
        if len(random_factors) != len(plaintexts):
            raise InvalidInputError(f"{len(plaintexts)} plaintexts need as many random factors, "
                                    f"got {len(random_factors)}")
        n, nsquare = self.n, self.nsquare
        out = []
        for m, rn in zip(plaintexts, random_factors):
            if not 0 <= m < n:
                raise CryptoError("a Paillier plaintext must lie in [0, n)")
            out.append((1 + gmpy2.mpz(m) * n) * rn % nsquare)
        return out

    def add(self, vectors: Sequence[Sequence[gmpy2.mpz]]) -> list[gmpy2.mpz]:
        """The position-wise homomorphic sum of several ciphertext vectors."""
        if not vectors:
            raise InvalidInputError("nothing to add")
        length = len(vectors[0])
        if any(len(v) != length for v in vectors):
            raise InvalidInputError("ciphertext vectors of different lengths cannot be added")
        nsquare = self.nsquare

        def add_range(indices: Sequence[int]) -> list[gmpy2.mpz]:
            out = []
            for i in indices:
                acc = vectors[0][i]
                for vector in vectors[1:]:
                    acc = acc * vector[i] % nsquare
                out.append(acc)
            return out

        return parallel(add_range, range(length))

    def ciphertexts_to_bytes(self, ciphertexts: Sequence[gmpy2.mpz]) -> bytes:
        width = self.ciphertext_bytes
        return b"".join(int(c).to_bytes(width, "big") for c in ciphertexts)

    def ciphertexts_from_bytes(self, data: bytes, count: int) -> list[gmpy2.mpz]:
        width = self.ciphertext_bytes
        if len(data) != width * count:
            raise CryptoError(f"{count} ciphertexts take {width * count} bytes, got {len(data)}")
        out = [gmpy2.mpz(int.from_bytes(data[i:i + width], "big")) for i in range(0, len(data), width)]
        if any(not 0 < c < self.nsquare for c in out):
            raise CryptoError("a ciphertext is outside (0, n^2): not produced with this key")
        return out


class CrtPool:
    """Worker processes that hold one private key's CRT constants and decrypt batches of ciphertexts.

    Threads with the GIL released already share the big exponentiations, but the
    per-ciphertext Python around them (divisions, the CRT join, conversions) holds the GIL;
    separate processes run all of it in parallel. Each worker is ``python -m
    blockfedml._crt_worker`` on pipes (no fork next to gRPC threads, no re-run of the
    caller's ``__main__``); the key reaches it once, on stdin."""

    def __init__(self, key: "PaillierPrivateKey", workers: int) -> None:
        self.workers = workers
        self.width = key.public_key.ciphertext_bytes
        constants = {name: format(int(getattr(key, name)), "x")
                     for name in ("p", "q", "hp", "hq", "p_inverse", "root_p", "root_q")}
        line = json.dumps(constants).encode() + b"\n"
        self.processes = []
        for _ in range(workers):
            process = subprocess.Popen([sys.executable, "-m", "blockfedml._crt_worker"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": _SDK_PATH})
            process.stdin.write(line)
            process.stdin.flush()
            self.processes.append(process)
        self.lock = threading.Lock()  # one batch at a time through the pipes

    def map(self, op: bytes, ciphertexts: Sequence[gmpy2.mpz]) -> list[int]:
        """``op`` (b"d" decrypt, b"r" randomness) over the ciphertexts, split evenly over the workers."""
        width, half = self.width, self.width // 2
        size = -(-len(ciphertexts) // self.workers)
        chunks = [ciphertexts[i:i + size] for i in range(0, len(ciphertexts), size)]

        def run(job: tuple[subprocess.Popen, Sequence[gmpy2.mpz]]) -> list[int]:
            process, chunk = job
            body = b"".join(int(c).to_bytes(width, "big") for c in chunk)
            process.stdin.write(op + len(chunk).to_bytes(4, "big") + width.to_bytes(2, "big") + body)
            process.stdin.flush()
            answer = process.stdout.read(len(chunk) * half)
            if len(answer) != len(chunk) * half:
                raise CryptoError("a Paillier decryption worker stopped before answering")
            return [int.from_bytes(answer[i:i + half], "big") for i in range(0, len(answer), half)]

        with self.lock, ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="crt") as threads:
            return [value for part in threads.map(run, zip(self.processes, chunks)) for value in part]

    def close(self) -> None:
        for process in self.processes:
            if process.stdin and not process.stdin.closed:
                process.stdin.close()
            process.wait(timeout=10)
            if process.stdout:
                process.stdout.close()
        self.processes = []


def _close_pool(attributes: dict) -> None:
    """A key's worker processes end with the key (finalizer: it must not hold the key itself)."""
    pool = attributes.get("_pool")
    if pool is not None:
        pool.close()


class PaillierPrivateKey:
    """p and q; decrypts with the CRT on every core (worker processes for large batches)."""

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        p, q = gmpy2.mpz(p), gmpy2.mpz(q)
        if p * q != public_key.n or p == q:
            raise CryptoError("the private key's primes do not match the public key")
        if q < p:
            p, q = q, p
        self.public_key = public_key
        self.p, self.q = p, q
        self.psquare, self.qsquare = p * p, q * q
        self.p_inverse = gmpy2.invert(p, q)
        g = public_key.n + 1
        self.hp = gmpy2.invert((gmpy2.powmod(g, p - 1, self.psquare) - 1) // p, p)
        self.hq = gmpy2.invert((gmpy2.powmod(g, q - 1, self.qsquare) - 1) // q, q)
        # n^-1 mod (p-1) and mod (q-1): the n-th root mod p and mod q (gcd(n, phi) = 1 for equal-size primes)
        self.root_p = gmpy2.invert(public_key.n, p - 1)
        self.root_q = gmpy2.invert(public_key.n, q - 1)
        self._pool: CrtPool | None = None
        self._pool_lock = threading.Lock()
        weakref.finalize(self, _close_pool, self.__dict__)

    def _processes(self, count: int, workers: int) -> CrtPool | None:
        """The key's worker pool, started on first use, when a batch is worth it."""
        if workers <= 1 or count < PROCESS_BATCH:
            return None
        with self._pool_lock:
            if self._pool is None or self._pool.workers != workers:
                if self._pool is not None:
                    self._pool.close()
                self._pool = CrtPool(self, workers)
            return self._pool

    def close(self) -> None:
        """Stop the worker processes (they also stop when the interpreter exits)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def decrypt(self, ciphertexts: Sequence[gmpy2.mpz], workers: int = WORKERS) -> list[int]:
        """The plaintexts of these ciphertexts, in order."""
        pool = self._processes(len(ciphertexts), workers)
        if pool is not None:
            return pool.map(b"d", ciphertexts)
        p, q, psquare, qsquare = self.p, self.q, self.psquare, self.qsquare
        hp, hq, p_inverse = self.hp, self.hq, self.p_inverse

        def decrypt_chunk(chunk: Sequence[gmpy2.mpz]) -> list[int]:
            out = []
            for c in chunk:
                mp = (gmpy2.powmod(c, p - 1, psquare) - 1) // p * hp % p
                mq = (gmpy2.powmod(c, q - 1, qsquare) - 1) // q * hq % q
                out.append(int(mp + ((mq - mp) * p_inverse % q) * p))
            return out

        return parallel(decrypt_chunk, list(ciphertexts), workers)

    def randomness(self, ciphertexts: Sequence[gmpy2.mpz], workers: int = WORKERS) -> list[int]:
        """The r of each ciphertext: c = (1 + n)^m * r^n mod n^2, so c = r^n mod n and
        r = (c mod n)^(n^-1 mod phi(n)) mod n, taken mod p and mod q and joined (CRT).

        Published next to m, r lets anyone re-encrypt m and compare with c without the
        private key: for Paillier that is a complete proof that m is c's plaintext
        (Paillier 1999, sec. 5: the map (m, r) -> c is a bijection)."""
        pool = self._processes(len(ciphertexts), workers)
        if pool is not None:
            return pool.map(b"r", ciphertexts)
        p, q, root_p, root_q, p_inverse = self.p, self.q, self.root_p, self.root_q, self.p_inverse

        def roots(chunk: Sequence[gmpy2.mpz]) -> list[int]:
            out = []
            for c in chunk:
                rp = gmpy2.powmod(c % p, root_p, p)
                rq = gmpy2.powmod(c % q, root_q, q)
                out.append(int(rp + ((rq - rp) * p_inverse % q) * p))
            return out

        return parallel(roots, list(ciphertexts), workers)

    def to_bytes(self) -> bytes:
        """Secret: the primes, for the key holder's own file (mode 0600)."""
        return canonical_json({"bits": self.public_key.bits, "p": format(int(self.p), "x"),
                               "q": format(int(self.q), "x")}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PaillierPrivateKey":
        try:
            fields = json.loads(data)
            p, q = int(fields["p"], 16), int(fields["q"], 16)
        except (ValueError, KeyError, TypeError):
            raise CryptoError("malformed Paillier private key file") from None
        return cls(PaillierPublicKey(p * q), p, q)


def generate_keypair(bits: int = DEFAULT_KEY_BITS) -> PaillierPrivateKey:
    """A fresh key pair of ``bits`` bits (phe's prime generation, on gmpy2)."""
    check_key_bits(bits)
    public, private = phe_paillier.generate_paillier_keypair(n_length=bits)
    return PaillierPrivateKey(PaillierPublicKey(public.n), private.p, private.q)


def save_private_key(path: Path | str, key: PaillierPrivateKey) -> Path:
    """Write the private key readable by its owner only, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.to_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_private_key(path: Path | str) -> PaillierPrivateKey:
    path = Path(path)
    try:
        return PaillierPrivateKey.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise NotFoundError(f"no Paillier private key at {path}") from None


def load_or_create_private_key(path: Path | str, bits: int = DEFAULT_KEY_BITS) -> PaillierPrivateKey:
    """The key holder's key in ``path``; a new one (mode 0600) if there is none yet."""
    path = Path(path)
    if path.exists():
        return load_private_key(path)
    key = generate_keypair(bits)
    save_private_key(path, key)
    return key
