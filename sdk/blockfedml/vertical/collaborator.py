"""Collaborator C: holds the Paillier key pair; decrypts the loss and masked values, nothing else.

C creates a key pair per session (of the size in B's settings), publishes its
fingerprint on the ledger once A and B approved the alignment, and sends the
public key to both. Each iteration it receives B's [[loss]] and the two
packed, masked gradients, decrypts them (CRT, on every core), records the
iteration on the ledger *before* the results leave, and returns each party
its own masked values and the loss. After training it decrypts B's masked
prediction scores. With ``encryption="plain"`` it does the same on the plain
ring (the baseline). See ``parties.py`` for the message flow.
"""

from __future__ import annotations

import time

from blockfedml.errors import InvalidInputError
from blockfedml.vertical import protocol as P
from blockfedml.vertical.he import PaillierKeyPair, PaillierScheme, PlainScheme, Scheme
from blockfedml.vertical.ledger import VerticalLedger
from blockfedml.vertical.parties import PartyResult, _Party
from blockfedml.vertical.transport import DEFAULT_TIMEOUT, ROLE_NAMES, Endpoint
from blockfedml.vertical.wire import Message

MAX_GRADIENT_CIPHERTEXTS = 4096

__all__ = ["Collaborator"]


class Collaborator(_Party):
    """Collaborator C: holds the key pair, decrypts only the loss and masked values."""

    role = "C"

    def __init__(self, endpoint: Endpoint, ledger: VerticalLedger | None = None, msp_id: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, keys: PaillierKeyPair | None = None) -> None:
        super().__init__(endpoint, ledger, msp_id, timeout)
        self.keys = keys  # a fresh key pair per session unless one is given

    def run(self) -> PartyResult:
        return self._guarded(self._run)

    def _run(self) -> None:
        hello = self.link.recv("B", "hello")
        self._check_parties(hello.meta.get("parties"))
        self.settings = s = P.VerticalSettings.from_dict(hello.meta.get("settings"))
        self.link.send("B", "ready")
        if s.encryption == "paillier":
            keys = self.keys if self.keys is not None and self.keys.public.bits == s.key_bits \
                else PaillierKeyPair(s.key_bits)
            scheme: Scheme = PaillierScheme(keys.public)
            key, decrypt = keys.public.to_bytes(), keys.decrypt
        else:
            scheme = PlainScheme()
            key, decrypt = b"plain", scheme.decrypt  # type: ignore[attr-defined]
        self.scheme, self._decrypt = scheme, decrypt
        self.link.recv("A", "approved")
        n = self.link.recv("B", "approved").int_meta("entities", "party B", minimum=1)
        self._ledger("publish_key", self.link.session, scheme.fingerprint)
        self.link.send("A", "key", blobs={"key": key})
        self.link.send("B", "key", blobs={"key": key})
        self.link.take_digests()
        self._train(n)
        self.link.recv("B", "finished")
        self._serve()

    def _values(self, sender: str, kind: str, iteration: int, count: int | None = None) -> list[int]:
        message = self.link.recv(sender, kind, iteration)
        cipher = self.scheme.from_bytes(message.blob("cipher", ROLE_NAMES[sender]), count,
                                        f"the {kind} ciphertexts of {ROLE_NAMES[sender]}")
        if not 1 <= self.scheme.length(cipher) <= MAX_GRADIENT_CIPHERTEXTS:
            raise InvalidInputError(f"{ROLE_NAMES[sender]} sent {self.scheme.length(cipher)} {kind} ciphertexts")
        return self._decrypt(cipher, f"the {kind} ciphertexts of {ROLE_NAMES[sender]}")

    def _encode(self, values: list[int]) -> bytes:
        width, modulus = self.scheme.plain_width(), self.scheme.modulus
        return b"".join((v % modulus).to_bytes(width, "big") for v in values)

    def _train(self, n: int) -> None:
        s, previous, iteration = self.settings, None, 0
        assert s is not None
        while True:
            iteration += 1
            started = time.perf_counter()
            loss = self._values("B", "loss", iteration, 1)[0]
            masked = {p: self._values(p, "grad", iteration) for p in ("A", "B")}
            outgoing = {p: self.link.prepare(p, Message("result", self.link.session or "", iteration,
                                                        {"loss": str(loss)}, {"values": self._encode(masked[p])}))
                        for p in ("A", "B")}
            self._commit(iteration, loss, n)  # before the results leave: the record is on the ledger first
            for party, data in outgoing.items():
                self.link.deliver(party, data)
            self.result.iterations = iteration
            self.result.losses.append(loss / float(1 << (2 * s.frac_bits)) / n)
            self.result.seconds.append(time.perf_counter() - started)
            if s.converged(iteration, loss, previous):
                return
            previous = loss

    def _serve(self) -> None:
        request = 0
        while True:
            message = self.link.recv("B", ("predict.z", "bye"), request + 1)
            if message.kind == "bye":
                return
            request += 1
            cipher = self.scheme.from_bytes(message.blob("cipher", "party B"), None, "the masked scores of party B")
            values = self._decrypt(cipher, "the masked scores of party B")
            self.link.send("B", "predict.result", request, blobs={"values": self._encode(values)})
