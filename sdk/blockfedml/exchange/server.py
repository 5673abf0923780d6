"""An organization's exchange server: receives other organizations' sealed blobs.

It listens with its peer's TLS certificate, requires a client certificate
issued by a consortium TLS CA (the handshake refuses anything else), maps that
certificate to the organization it claims (``TrustStore.identify``), asks an
optional ``admit`` policy whether that organization may send for the round (the
ledger's answer: is this server's organization the round's aggregator, is the
sender a participant), and only then reads the stream. A blob enters the inbox
whole or not at all: its size and SHA-256 must be the ones the sender
declared. Checking it against the sender's *ledger* commitment is the
collector's job (``Transport.collect``), before the blob is used.

It also serves its organization's blob store (``Fetch``): any consortium
organization, authenticated the same way, may fetch a blob by digest; what a
store holds is what its organization published to the consortium (models,
public keys, masked or encrypted updates, openings), never its secrets, which
live outside the store. The fetcher re-hashes what it receives.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn

import grpc

from blockfedml.errors import BlockFedMLError, ExchangeError, InvalidInputError
from blockfedml.exchange import wire
from blockfedml.exchange.credentials import TLSMaterial, TrustStore
from blockfedml.ledger.base import canonical_json
from blockfedml.store.model_store import ModelStore, check_digest

#: ``admit(round, sender)`` raises a ``BlockFedMLError`` to refuse a blob.
Admission = Callable[[int, str], None]


class Inbox:
    """Received blobs by (round, sender); a later blob of the same sender replaces
    the earlier one, so a resent blob is harmless and memory stays bounded.

    With a ``folder`` (the organization's own, ``<workdir>/keys/<org>/inbox``)
    every blob is also kept there, mode 0600, so an aggregator restarted after a
    crash still has what it received (docs/operations.md).
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._blobs: dict[tuple[int, str], bytes] = {}
        self._changed = threading.Condition()
        self.folder = folder
        if folder is not None and folder.exists():
            for path in folder.glob("*~*"):
                number, _, sender = path.name.partition("~")
                if number.isdigit() and not path.name.endswith(".tmp"):
                    self._blobs[(int(number), sender)] = path.read_bytes()

    def put(self, round_number: int, sender: str, blob: bytes) -> None:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self._path(round_number, sender)
            temporary = path.with_name(path.name + ".tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(descriptor, blob)
            finally:
                os.close(descriptor)
            os.replace(temporary, path)
        with self._changed:
            self._blobs[(round_number, sender)] = blob
            self._changed.notify_all()

    def _path(self, round_number: int, sender: str) -> Path:
        return self.folder / f"{round_number:08d}~{sender}"

    def _unlink(self, round_number: int, sender: str) -> None:
        if self.folder is not None:
            self._path(round_number, sender).unlink(missing_ok=True)

    def senders(self, round_number: int) -> list[str]:
        with self._changed:
            return sorted(s for r, s in self._blobs if r == round_number)

    def wait(self, round_number: int, senders: Sequence[str], timeout: float) -> dict[str, bytes]:
        """The blobs of ``senders`` for the round, once all have arrived (woken by each
        arrival, no polling); ``ExchangeError`` naming the missing ones after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                missing = [s for s in senders if (round_number, s) not in self._blobs]
                if not missing:
                    return {s: self._blobs[(round_number, s)] for s in senders}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ExchangeError(
                        f"round {round_number}: no blob received from {', '.join(missing)} within "
                        f"{timeout:g} s; they committed an update but did not send it to the aggregator"
                    )
                self._changed.wait(remaining)

    def discard(self, round_number: int, sender: str) -> None:
        with self._changed:
            self._blobs.pop((round_number, sender), None)
            self._unlink(round_number, sender)

    def forget_before(self, round_number: int) -> None:
        """Drop the blobs of earlier rounds (they were aggregated or abandoned)."""
        with self._changed:
            for key in [k for k in self._blobs if k[0] < round_number]:
                del self._blobs[key]
                self._unlink(*key)


class ExchangeServer:
    """One organization's gRPC exchange endpoint (mutual TLS)."""

    def __init__(
        self,
        tls: TLSMaterial,
        trust: TrustStore,
        address: str,
        *,
        admit: Admission | None = None,
        options: wire.ExchangeOptions | None = None,
        workers: int = 8,
        inbox: Inbox | None = None,
        blobs: ModelStore | None = None,
    ) -> None:
        self.msp_id = tls.msp_id
        self.trust = trust
        self.admit = admit
        self.options = options or wire.ExchangeOptions()
        self.inbox = inbox or Inbox()
        self.blobs = blobs
        credentials = grpc.ssl_server_credentials(
            [(tls.read(tls.server_key), tls.read(tls.server_cert))],
            root_certificates=trust.roots_pem(),
            require_client_auth=True,
        )
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"exchange-{self.msp_id}"),
            handlers=[grpc.method_handlers_generic_handler(wire.SERVICE, {
                "Ping": grpc.unary_unary_rpc_method_handler(self._ping),
                "Send": grpc.stream_unary_rpc_method_handler(self._send),
                "Fetch": grpc.unary_stream_rpc_method_handler(self._fetch),
            })],
            # No SO_REUSEPORT: a second server on the same port (a stale member process)
            # must fail to start, not silently share the organization's incoming blobs.
            options=[*self.options.channel_options(), ("grpc.so_reuseport", 0)],
        )
        host = address.rpartition(":")[0]
        try:
            port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            port, reason = 0, str(exc)
        else:
            reason = "the port is taken or the address is not local"
        if not port:
            raise ExchangeError(f"{self.msp_id} cannot listen on {address}: {reason}")
        self.address = f"{host}:{port}"

    def start(self) -> "ExchangeServer":
        self._server.start()
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        self._server.stop(grace).wait()

    def __enter__(self) -> "ExchangeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers -------------------------------------------------------------------
    def _ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        sender = self._authenticate(context)
        if len(request) > wire.MAX_PING_BYTES:
            _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   f"a ping carries at most {wire.MAX_PING_BYTES} bytes, got {len(request)}")
        return canonical_json({"echo": len(request), "receiver": self.msp_id, "sender": sender}).encode()

    def _send(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        sender = self._authenticate(context)
        metadata = _metadata(context)
        try:
            round_number = _int(metadata, wire.ROUND_KEY, minimum=1)
            size = _int(metadata, wire.SIZE_KEY, minimum=0)
            digest = metadata.get(wire.DIGEST_KEY, "")
            if len(digest) != 64 or digest.strip("0123456789abcdef"):
                raise InvalidInputError(f"metadata {wire.DIGEST_KEY} must be a SHA-256 hex digest")
            if size > self.options.max_blob_bytes:
                _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"the blob of {sender} for round {round_number} has {size} bytes; "
                       f"{self.msp_id} accepts at most {self.options.max_blob_bytes}")
            if self.admit is not None:
                self.admit(round_number, sender)
        except BlockFedMLError as exc:
            _abort(context, wire.status_of(exc), str(exc))
        received = bytearray()
        hasher = hashlib.sha256()
        for chunk in chunks:
            if len(received) + len(chunk) > size:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                       f"{sender} streamed more than the {size} bytes it declared for round {round_number}")
            received += chunk
            hasher.update(chunk)
        if len(received) != size or hasher.hexdigest() != digest:
            _abort(context, grpc.StatusCode.DATA_LOSS,
                   f"the blob of {sender} for round {round_number} arrived as {len(received)} bytes hashing "
                   f"to {hasher.hexdigest()}, not the declared {size} bytes hashing to {digest}; send it again")
        self.inbox.put(round_number, sender, bytes(received))
        return canonical_json({"digest": digest, "receiver": self.msp_id, "round": round_number,
                               "sender": sender, "size": size}).encode()

    def _fetch(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        sender = self._authenticate(context)
        try:
            digest = check_digest(request.decode("ascii", "replace"))
        except BlockFedMLError as exc:
            _abort(context, wire.status_of(exc), str(exc))
        if self.blobs is None or not self.blobs.has(digest):
            _abort(context, grpc.StatusCode.NOT_FOUND, f"{self.msp_id} does not hold blob {digest}")
        try:
            data = self.blobs.get(digest)  # re-hashed: a damaged file is never served
        except BlockFedMLError as exc:
            _abort(context, wire.status_of(exc), f"{self.msp_id} cannot serve blob {digest} to {sender}: {exc}")
        step = self.options.chunk_bytes
        for start in range(0, len(data), step):
            yield data[start:start + step]
        if not data:
            yield b""

    def _authenticate(self, context: grpc.ServicerContext) -> str:
        """The MSP ID the client proved with its TLS certificate, or abort the call."""
        certs = context.auth_context().get("x509_pem_cert") or []
        if not certs:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no client certificate: mutual TLS is required")
        claimed = _metadata(context).get(wire.MSP_KEY, "")
        try:
            return self.trust.identify(certs[0], claimed)
        except BlockFedMLError as exc:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, str(exc))


def _metadata(context: grpc.ServicerContext) -> dict[str, Any]:
    return {key: value for key, value in context.invocation_metadata()}


def _int(metadata: dict[str, Any], key: str, minimum: int) -> int:
    value = metadata.get(key, "")
    if not (isinstance(value, str) and value.isdigit() and len(value) <= 18) or int(value) < minimum:
        raise InvalidInputError(f"metadata {key} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises
