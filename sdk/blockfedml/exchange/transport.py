"""How a member's sealed update reaches the round's aggregator: the ``Transport`` seam.

``Member`` hands its sealed blob to ``send`` and commits the digest on the
ledger; the aggregator calls ``collect`` with the round's commitments
(``GetUpdates``) and gets back only blobs that match them. Two transports:

- ``StoreTransport``: the member keeps its blob in its own store and the
  aggregator fetches it by digest (``store/blobs.py``): in-process on the quick
  path, over the member's exchange server otherwise.
- ``GrpcTransport``: the blob is streamed over mutual TLS to the round's
  aggregator only (its own exchange server); no other organization receives
  it, and nothing is written to the shared store.

Whatever the transport, ``collect`` checks every blob against its sender's
commitment on the ledger before returning it: a mismatch is an
``IntegrityError`` naming sender, round, expected and actual digest, and the
blob is discarded, never used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blockfedml.errors import (
    BlockFedMLError,
    ExchangeError,
    IntegrityError,
    InvalidInputError,
    NotAuthorizedError,
    NotFoundError,
    PhaseError,
)
from blockfedml.exchange.client import ExchangeClient
from blockfedml.exchange.credentials import ExchangePeer, TLSMaterial, TrustStore
from blockfedml.exchange.server import Admission, ExchangeServer, Inbox
from blockfedml.exchange.wire import ExchangeOptions
from blockfedml.ledger.base import Contract
from blockfedml.store import BlobStore, ModelStore, sha256_hex
from blockfedml.store.blobs import BlobUnavailable

if TYPE_CHECKING:
    from blockfedml.consortium import Consortium

TRANSPORTS = ("auto", "store", "grpc")


def commitment_problem(round_number: int, commitment: Mapping[str, Any], blob: bytes) -> str | None:
    """Why ``blob`` is not the update its sender committed on the ledger, or None if it is."""
    sender, expected = commitment["msp_id"], commitment["digest"]
    actual = sha256_hex(blob)
    if actual != expected:
        return (f"round {round_number}: the blob received from {sender} hashes to {actual}, "
                f"but {sender} committed {expected} on the ledger")
    if len(blob) != commitment["size"]:
        return (f"round {round_number}: the blob of {sender} has {len(blob)} bytes, "
                f"its commitment on the ledger says {commitment['size']}")
    return None


class Transport(ABC):
    """Deliver sealed blobs to the round's aggregator; hand the aggregator verified blobs."""

    name: str

    @abstractmethod
    def send(self, round_: Mapping[str, Any], blob: bytes) -> str:
        """Deliver this member's sealed blob for ``round_`` (a ``GetRound`` record) to its
        aggregator; return the blob's digest, the one to commit on the ledger."""

    def collect(self, round_number: int, commitments: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
        """The blobs of the round by MSP ID, each checked against its commitment.

        ``IntegrityError`` (listing every mismatch) if any blob is not what its
        sender committed; those blobs are discarded and nothing is returned.
        """
        blobs, problems = self.collect_checked(round_number, commitments)
        if problems:
            raise IntegrityError("; ".join(problems.values()) + " — the blob was discarded and not used")
        return blobs

    def collect_checked(self, round_number: int, commitments: Sequence[Mapping[str, Any]]
                        ) -> tuple[dict[str, bytes], dict[str, str]]:
        """The blobs that match their commitments by MSP ID, and what is wrong with each other one
        (those are discarded): the aggregator excludes their senders, not the round."""
        blobs = self._receive(round_number, commitments)
        good, problems = {}, {}
        for commitment in commitments:
            sender = commitment["msp_id"]
            blob = blobs.get(sender)
            if not isinstance(blob, bytes):  # withheld: its producer did not serve it
                why = blob.summary if isinstance(blob, BlobUnavailable) else str(blob)
                problems[sender] = (f"round {round_number}: the update {commitment['digest'][:12]} committed by "
                                    f"{sender} could not be fetched: {why}")
                continue
            problem = commitment_problem(round_number, commitment, blob)
            if problem:
                problems[sender] = problem
                self._discard(round_number, sender)
            else:
                good[sender] = blobs[sender]
        return good, problems

    @abstractmethod
    def _receive(self, round_number: int, commitments: Sequence[Mapping[str, Any]]
                 ) -> Mapping[str, bytes | BlockFedMLError]:
        """The unchecked blob of every committed sender (or why it could not be had)."""

    def _discard(self, round_number: int, sender: str) -> None:
        """Forget a blob that failed its check (default: nothing kept)."""

    def close(self) -> None:
        """Release servers and channels; the default holds none."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StoreTransport(Transport):
    """Blobs through the shared model store (the behaviour of a single-machine consortium)."""

    name = "store"

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def send(self, round_: Mapping[str, Any], blob: bytes) -> str:
        return self.store.put(blob)

    def _receive(self, round_number: int, commitments: Sequence[Mapping[str, Any]]
                 ) -> dict[str, bytes | BlockFedMLError]:
        received: dict[str, bytes | BlockFedMLError] = {}
        for c in commitments:  # each fetched from its sender, the producer the ledger names; re-hashed
            try:
                received[c["msp_id"]] = (self.store.get(c["digest"], c["msp_id"]) if isinstance(self.store, BlobStore)
                                         else self.store.get(c["digest"]))
            except NotFoundError as exc:
                received[c["msp_id"]] = exc
        return received


class GrpcTransport(Transport):
    """Blobs over mutual-TLS gRPC, to the round's aggregator only.

    Runs this organization's exchange server (where blobs arrive when it is
    the aggregator) and opens a client channel to each aggregator it sends to.
    """

    name = "grpc"

    def __init__(
        self,
        tls: TLSMaterial,
        peers: Mapping[str, ExchangePeer],
        *,
        listen: str | None = None,
        admit: Admission | None = None,
        options: ExchangeOptions | None = None,
        keep: Path | None = None,
        blobs: ModelStore | None = None,
        trust: TrustStore | None = None,
    ) -> None:
        self.msp_id = tls.msp_id
        self.tls = tls
        self.peers = dict(peers)
        self.options = options or ExchangeOptions()
        if listen is None:
            if self.msp_id not in self.peers:
                raise InvalidInputError(f"{self.msp_id} has no exchange endpoint; give one to listen on")
            listen = self.peers[self.msp_id].address
        self.server = ExchangeServer(tls, trust or TrustStore.from_peers(self.peers), listen, admit=admit,
                                     options=self.options, inbox=Inbox(keep),
                                     blobs=blobs).start()
        self._clients: dict[str, ExchangeClient] = {}

    def send(self, round_: Mapping[str, Any], blob: bytes) -> str:
        number, aggregator = round_["round"], round_.get("aggregator")
        if not aggregator:
            raise PhaseError(f"round {number} has no aggregator yet (phase {round_.get('phase')}): "
                             "updates are sent after Allocate")
        if aggregator == self.msp_id:  # our own update: it never leaves this process
            self.server.inbox.put(number, self.msp_id, bytes(blob))
            return sha256_hex(blob)
        return self.client(aggregator).send(number, blob)["digest"]

    def client(self, msp_id: str) -> ExchangeClient:
        """The (reused) client of another organization's exchange server."""
        if msp_id not in self._clients:
            peer = self.peers.get(msp_id)
            if peer is None:
                raise ExchangeError(f"{msp_id} has no exchange endpoint in this consortium; "
                                    f"known: {', '.join(sorted(self.peers))}")
            self._clients[msp_id] = ExchangeClient(self.tls, peer, self.options)
        return self._clients[msp_id]

    def _receive(self, round_number: int, commitments: Sequence[Mapping[str, Any]]
                 ) -> dict[str, bytes | BlockFedMLError]:
        self.server.inbox.forget_before(round_number)
        senders = [c["msp_id"] for c in commitments]
        return self.server.inbox.wait(round_number, senders, self.options.collect_timeout)

    def _discard(self, round_number: int, sender: str) -> None:
        self.server.inbox.discard(round_number, sender)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.server.stop()


def round_admission(contract: Contract, msp_id: str) -> Admission:
    """The ledger's rule for who may send a blob to ``msp_id``'s server: in round r,
    only a participant of r, and only if ``msp_id`` is r's aggregator."""

    def admit(round_number: int, sender: str) -> None:
        round_ = contract.evaluate_json("GetRound", round_number)  # NotFoundError for an unknown round
        if round_.get("aggregator") != msp_id:
            raise NotAuthorizedError(f"{msp_id} is not the aggregator of round {round_number} "
                                     f"(the ledger names {round_.get('aggregator')}); send updates there")
        if sender not in round_.get("participants", []):
            raise NotAuthorizedError(f"{sender} is not a participant of round {round_number}")
        if round_["phase"] != "update":
            raise PhaseError(f"round {round_number} is in phase {round_['phase']}, not update")

    return admit


def open_transport(consortium: "Consortium", org: str, kind: str = "auto", *,
                   contract: Contract | None = None, options: ExchangeOptions | None = None) -> Transport:
    """The transport of organization ``org`` of a consortium.

    ``store``: the shared model store. ``grpc``: start ``org``'s exchange
    server on its endpoint in ``consortium.json`` (admitting only what the
    ledger allows). ``auto``: ``grpc`` when ``org`` has an endpoint, else ``store``.
    """
    if kind not in TRANSPORTS:
        raise InvalidInputError(f"unknown transport {kind!r}; choose one of {', '.join(TRANSPORTS)}")
    profile = consortium.org(org)
    peers = consortium.exchange_peers()
    if kind == "auto":
        kind = "grpc" if profile.msp_id in peers else "store"
    if kind == "store":
        return StoreTransport(consortium.blobs(profile.name))
    from blockfedml.org_host import hand_over

    contract = contract or consortium.contract(profile.name)
    for attempt in (1, 2):
        handed = hand_over(consortium, profile.name)  # the standing server (`org start`) steps aside
        try:
            return GrpcTransport(consortium.tls_material(profile.name), peers,
                                 admit=round_admission(contract, profile.msp_id), options=options,
                                 keep=consortium.private_folder(profile.name) / "inbox",  # survives a restart
                                 blobs=consortium.blobs(profile.name),  # served to the consortium (Fetch)
                                 trust=consortium.trust_store())
        except ExchangeError:
            if attempt == 2 or (not handed and not hand_over(consortium, profile.name)):
                raise
    raise AssertionError("unreachable")
