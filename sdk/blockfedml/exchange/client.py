"""A client of one other organization's exchange server.

The channel trusts *only* that organization's TLS CA, so a server that
presents any other certificate (a third organization listening at the address,
a self-signed impostor) fails the handshake and never sees a byte; the client
presents its own organization's client certificate and names its MSP ID.
Blobs stream in chunks; calls have deadlines; idempotent calls (all of the
exchange's, see ``wire``) are retried with exponential back-off when the peer
is unreachable or too slow. One channel per peer, reused across calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from blockfedml.errors import IntegrityError, InvalidInputError, NotFoundError
from blockfedml.exchange import wire
from blockfedml.exchange.credentials import ExchangePeer, TLSMaterial
from blockfedml.store import sha256_hex

T = TypeVar("T")


class ExchangeClient:
    """Talk to ``peer`` as the organization of ``tls``."""

    def __init__(self, tls: TLSMaterial, peer: ExchangePeer, options: wire.ExchangeOptions | None = None) -> None:
        self.msp_id = tls.msp_id
        self.peer = peer
        self.options = options or wire.ExchangeOptions()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=peer.tls_ca_pem,
            private_key=tls.read(tls.client_key),
            certificate_chain=tls.read(tls.client_cert),
        )
        channel_options: list[tuple[str, Any]] = list(self.options.channel_options())
        # gRPC waits 1 s, then longer, before reconnecting to a peer that was down; our
        # own retries (and a member started before its aggregator) want it sooner. (Not
        # min_reconnect_backoff_ms: it is also the connect timeout, a slow handshake needs it.)
        backoff_ms = max(1, int(self.options.retry_backoff * 1000))
        channel_options += [("grpc.initial_reconnect_backoff_ms", backoff_ms),
                            ("grpc.max_reconnect_backoff_ms", max(1000, 4 * backoff_ms))]
        if peer.server_name:
            channel_options.append(("grpc.ssl_target_name_override", peer.server_name))
        self._channel = grpc.secure_channel(peer.address, credentials, options=channel_options)
        self._ping = self._channel.unary_unary(wire.PING)
        self._send = self._channel.stream_unary(wire.SEND)
        self._fetch = self._channel.unary_stream(wire.FETCH)

    @property
    def name(self) -> str:
        return f"{self.peer.msp_id} at {self.peer.address}"

    def ping(self, payload: bytes = b"") -> dict[str, Any]:
        """A round trip through the authenticated channel; the server says who it saw."""
        timeout = self.options.ping_timeout
        response = self._call(wire.PING, f"ping from {self.msp_id}", timeout,
                              lambda: self._ping(payload, timeout=timeout, metadata=self._metadata()))
        return json.loads(response)

    def send(self, round_number: int, blob: bytes) -> dict[str, Any]:
        """Stream ``blob`` as this organization's sealed update for the round; return the receipt.

        The receipt names the digest the server computed, checked here against ours.
        """
        blob = bytes(blob)
        if len(blob) > self.options.max_blob_bytes:
            raise InvalidInputError(
                f"the blob for round {round_number} has {len(blob)} bytes; the exchange sends at most "
                f"{self.options.max_blob_bytes} (ExchangeOptions.max_blob_bytes)"
            )
        digest = sha256_hex(blob)
        metadata = self._metadata() + (
            (wire.ROUND_KEY, str(round_number)), (wire.DIGEST_KEY, digest), (wire.SIZE_KEY, str(len(blob))),
        )
        timeout = self.options.send_timeout
        what = f"sending the round {round_number} blob of {self.msp_id}"
        response = self._call(wire.SEND, what, timeout,
                              lambda: self._send(self._chunks(blob), timeout=timeout, metadata=metadata))
        receipt = json.loads(response)
        if receipt.get("digest") != digest or receipt.get("receiver") != self.peer.msp_id:
            raise IntegrityError(f"{what}: the receipt of {self.name} does not match the blob sent: {receipt}")
        return receipt

    def fetch(self, digest: str) -> bytes | None:
        """The blob ``digest`` from this peer's store, re-hashed here; None when the peer does not hold it."""
        timeout = self.options.fetch_timeout
        limit = self.options.max_blob_bytes

        def receive() -> bytes:
            received = bytearray()
            for chunk in self._fetch(digest.encode("ascii"), timeout=timeout, metadata=self._metadata()):
                received += chunk
                if len(received) > limit:
                    raise IntegrityError(f"{self.name} streamed more than {limit} bytes for blob {digest}")
            return bytes(received)

        try:
            blob = self._call(wire.FETCH, f"fetching blob {digest[:12]} for {self.msp_id}", timeout, receive)
        except NotFoundError:
            return None
        if sha256_hex(blob) != digest:
            raise IntegrityError(f"{self.name} served bytes hashing to {sha256_hex(blob)} for blob {digest}; "
                                 "they were discarded")
        return blob

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ExchangeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return ((wire.MSP_KEY, self.msp_id),)

    def _chunks(self, blob: bytes) -> Iterator[bytes]:
        view, step = memoryview(blob), self.options.chunk_bytes
        for start in range(0, len(blob), step):
            yield bytes(view[start:start + step])

    def _call(self, method: str, what: str, timeout: float, fn: Callable[[], T]) -> T:
        attempts = 1 + (self.options.retries if method in wire.IDEMPOTENT else 0)
        delay = self.options.retry_backoff
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except grpc.RpcError as error:
                if error.code() in wire.RETRYABLE and attempt < attempts:  # type: ignore[attr-defined]
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise wire.error_from_rpc(error, what, self.name, timeout, attempt) from None
        raise AssertionError("unreachable")
