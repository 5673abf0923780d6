"""How the three parties' messages travel: the ``Endpoint`` seam.

The protocol only sends bytes to a party and receives the next bytes from a
party (per sender, in order: the protocol always knows who speaks next). Two
endpoints implement it:

- ``LocalHub``: in-process queues, for tests and the in-process driver;
- ``ExchangeEndpoint``: the consortium's exchange (mutual-TLS gRPC,
  ``blockfedml.exchange``), for parties running as separate processes. The
  exchange stores blobs by (number, sender); here the number is the message's
  position in its sender->receiver stream, so messages are read in order and a
  retried send lands on the same slot.

``Link`` sits on top: it encodes and checks messages (session, kind,
iteration), remembers the digest of every message sent or received since the
last ``take_digests`` (what a party records on the ledger per iteration), and
turns a peer's ``abort`` message into an error naming the peer's reason.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from blockfedml.errors import ExchangeError, InvalidInputError, NotAuthorizedError, PhaseError
from blockfedml.vertical.wire import Message, digest

PARTIES = ("A", "B", "C")
ROLE_NAMES = {"A": "party A", "B": "party B", "C": "collaborator C"}
DEFAULT_TIMEOUT = 120.0


class SessionAborted(PhaseError):
    """A peer gave up on the session and said why."""


class Endpoint(ABC):
    """One party's end of the message streams."""

    party: str

    @abstractmethod
    def send(self, to: str, data: bytes) -> None: ...

    @abstractmethod
    def recv(self, sender: str, timeout: float) -> bytes:
        """The next message from ``sender``; ``ExchangeError`` when none arrives within ``timeout``."""

    def close(self) -> None:
        """Release servers and channels."""


class LocalHub:
    """In-process queues between the three parties."""

    def __init__(self) -> None:
        self._queues = {(s, r): queue.Queue() for s in PARTIES for r in PARTIES if s != r}

    def endpoint(self, party: str) -> "LocalEndpoint":
        return LocalEndpoint(self, party)


class LocalEndpoint(Endpoint):
    def __init__(self, hub: LocalHub, party: str) -> None:
        self.hub, self.party = hub, party

    def send(self, to: str, data: bytes) -> None:
        self.hub._queues[(self.party, to)].put(bytes(data))

    def recv(self, sender: str, timeout: float) -> bytes:
        try:
            return self.hub._queues[(sender, self.party)].get(timeout=timeout)
        except queue.Empty:
            raise ExchangeError(f"{ROLE_NAMES[self.party]} received nothing from {ROLE_NAMES[sender]} "
                                f"within {timeout:g} s") from None


class ExchangeEndpoint(Endpoint):
    """Messages over the consortium's mutual-TLS exchange; ``msp_ids`` maps A/B/C to organizations."""

    def __init__(self, party: str, msp_ids: Mapping[str, str], tls: Any, peers: Mapping[str, Any],
                 options: Any = None) -> None:
        from blockfedml.exchange import ExchangeClient, ExchangeOptions, ExchangeServer, TrustStore

        self.party, self.msp_ids = party, dict(msp_ids)
        self._party_of = {msp: p for p, msp in self.msp_ids.items()}
        missing = [f"{p} ({m})" for p, m in self.msp_ids.items() if m not in peers]
        if missing:
            raise InvalidInputError(f"no exchange endpoint for {', '.join(missing)} in this consortium")
        # peers start in any order: retry an unreachable one for ~6 s (0.1 s doubling) before giving up
        self.options = options or ExchangeOptions(send_timeout=60.0, retries=6, retry_backoff=0.1)
        own = peers[self.msp_ids[party]]
        trust = TrustStore({m: peers[m].tls_ca_pem for m in self.msp_ids.values()})
        self.server = ExchangeServer(tls, trust, own.address, admit=self._admit, options=self.options).start()
        self._clients = {p: ExchangeClient(tls, peers[m], self.options)
                         for p, m in self.msp_ids.items() if p != party}
        self._sent = {p: 0 for p in self._clients}
        self._received = {p: 0 for p in self._clients}
        self._lock = threading.Lock()

    def _admit(self, number: int, sender: str) -> None:
        if sender not in self._party_of or self._party_of[sender] == self.party:
            raise NotAuthorizedError(f"{sender} is not a party of this vertical session")

    def send(self, to: str, data: bytes) -> None:
        with self._lock:
            self._sent[to] += 1
            number = self._sent[to]
        try:
            self._clients[to].send(number, data)
        except ExchangeError as exc:
            peer = self._clients[to].peer
            raise ExchangeError(f"{peer.msp_id} at {peer.address} is unreachable; is its "
                                f"`blockfedml vertical party {to}` running? ({exc})") from None

    def recv(self, sender: str, timeout: float) -> bytes:
        number, msp = self._received[sender] + 1, self.msp_ids[sender]
        try:
            blob = self.server.inbox.wait(number, [msp], timeout)[msp]
        except ExchangeError:
            raise ExchangeError(f"{ROLE_NAMES[self.party]} received nothing from {ROLE_NAMES[sender]} ({msp}) "
                                f"within {timeout:g} s; is its process running?") from None
        self.server.inbox.discard(number, msp)
        self._received[sender] = number
        return blob

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self.server.stop()


class Link:
    """A party's typed, recorded view of its endpoint for one session."""

    def __init__(self, endpoint: Endpoint, session: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint, self.party, self.session, self.timeout = endpoint, endpoint.party, session, timeout
        self._digests: dict[str, str] = {}

    def send(self, to: str, kind: str, iteration: int = 0, meta: dict[str, Any] | None = None,
             blobs: dict[str, bytes] | None = None) -> Message:
        message = Message(kind, self.session or "", iteration, meta or {}, blobs or {})
        self.deliver(to, self.prepare(to, message))
        return message

    def prepare(self, to: str, message: Message) -> bytes:
        """Encode ``message`` for ``to`` and record its digest (to commit it before it leaves)."""
        data = message.to_bytes()
        self._digests[f"{self.party}>{to}:{message.kind}"] = digest(data)
        return data

    def deliver(self, to: str, data: bytes) -> None:
        try:
            self.endpoint.send(to, data)
        except ExchangeError as exc:
            raise ExchangeError(f"{ROLE_NAMES[self.party]} cannot reach {ROLE_NAMES[to]}: {exc}") from None

    def recv(self, sender: str, kind: str | tuple[str, ...], iteration: int = 0) -> Message:
        """The next message from ``sender``; it must be ``kind`` (or one of them) for this session and iteration.

        A link made without a session takes the session of its first message.
        """
        data = self.endpoint.recv(sender, self.timeout)
        who = ROLE_NAMES[sender]
        message = Message.from_bytes(data, who)
        if message.kind == "abort":
            raise SessionAborted(f"{who} aborted session {message.session}: {message.meta.get('reason', '?')}")
        if self.session is None:
            self.session = message.session
        if message.session != self.session:
            raise InvalidInputError(f"{who} sent a message of session {message.session!r}, "
                                    f"this is session {self.session!r}")
        kinds = (kind,) if isinstance(kind, str) else kind
        if message.kind not in kinds or message.iteration != iteration:
            raise InvalidInputError(f"{who} sent {message.kind!r} (iteration {message.iteration}) where "
                                    f"{' or '.join(map(repr, kinds))} (iteration {iteration}) was expected")
        self._digests[f"{sender}>{self.party}:{message.kind}"] = digest(data)
        return message

    def take_digests(self) -> dict[str, str]:
        """Digests of the messages sent and received since the last call, by ``"A>B:kind"``."""
        taken, self._digests = self._digests, {}
        return taken

    def abort(self, reason: str) -> None:
        """Tell every peer (best effort) that this party gives up, and why."""
        data = Message("abort", self.session or "", 0, {"reason": reason[:300]}).to_bytes()
        for peer in PARTIES:
            if peer != self.party:
                try:
                    self.endpoint.send(peer, data)
                except Exception:  # the peer may be the one that is gone
                    pass
