"""The chaincode as a service (CCaaS): a gRPC server a Fabric peer connects to.

``fabric-chaincode-python`` 2.5.4 provides the server, but with defects that
matter against a real peer (FABRIC_NOTES.md). They are all handled here, in
one thin layer over the package, so the contract itself stays unaware:

* item 10, concurrent transactions hang: the shim handles each peer message in
  its own task and those tasks call ``write()`` on the same ``grpc.aio``
  stream at once, which grpc refuses (one write in flight per call). Writes go
  through ``SerializedStream``, which holds an ``asyncio.Lock``.
* item 5, a peer ERROR reply is taken as a value (``get_state`` would return
  the peer's error text as the state): ``SafeHandler`` turns it into an
  exception inside the transaction, which then fails with the peer's message.
* item 6, chaincode events are dropped: the contract sets none and the SDK
  waits by state (commit status, then a query), never by event.
* item 8, ``server.start`` uses ``asyncio.get_event_loop()`` outside a running
  loop: ``serve`` runs its own loop with ``asyncio.run``.
* items 1-2 (ctx and return annotations) are the contract's business and are
  checked by its tests; item 7 (root logging) is undone by ``shim.py``.

Configuration is the CCaaS convention: ``CHAINCODE_ID`` (the package ID the
peer expects) and ``CHAINCODE_SERVER_ADDRESS`` (host:port to listen on);
optional TLS with ``CHAINCODE_TLS_CERT``, ``CHAINCODE_TLS_KEY`` and
``CHAINCODE_TLS_CLIENT_CA`` (PEM files; the last one makes the peer
authenticate with a client certificate).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterable, Optional

import grpc
from fabric_protos.peer import chaincode_shim_pb2 as shim_pb2
from fabric_protos.peer import chaincode_shim_pb2_grpc as shim_grpc

from . import shim
from .shim import Handler

LOGGER = logging.getLogger("blockfedml_chaincode.ccaas")


class SerializedStream:
    """A peer stream whose ``write`` calls never overlap (FABRIC_NOTES item 10).

    Everything else (reading, metadata, cancellation) is passed through.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = asyncio.Lock()

    async def write(self, message: Any) -> None:
        async with self._lock:
            await self._stream.write(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class SafeHandler(Handler):
    """The package's ``Handler`` with serialized writes and peer errors as errors."""

    async def chat_with_peer(self, stream: AsyncIterable[Any], context: Any) -> Any:
        return await super().chat_with_peer(stream, SerializedStream(context))

    async def handle_message_ready(self, msg: Any) -> None:
        if msg.type == shim_pb2.ChaincodeMessage.ERROR:
            fail_pending_request(self.msg_queue_handler, msg)
        await super().handle_message_ready(msg)


def fail_pending_request(queue_handler: Any, msg: Any) -> None:
    """Make the request an ERROR message answers fail instead of succeed (item 5).

    The package resolves the request's future with the ERROR message itself, so
    ``get_state`` would return the error text as if it were the value. Turning
    that request's ``success`` into ``fail`` keeps the package's own queue
    handling (remove the request, send the next one) and makes the awaiting
    shim call raise, so the transaction fails with the peer's message.
    """
    if queue_handler is None:
        return
    pending = queue_handler.tx_queues.get(msg.channel_id + msg.txid)
    if not pending:
        return
    request = pending[0]
    text = bytes(msg.payload).decode("utf-8", "replace") or "the peer answered ERROR"

    def fail(_response: Any, request: Any = request, text: str = text) -> None:
        request.fail(f"peer refused {request.get_method()}: {text}")

    request.success = fail


class ChaincodeService(shim_grpc.ChaincodeServicer):
    """The gRPC service a peer connects to (``Chaincode.Connect``), one handler per stream."""

    def __init__(self, chaincode_id: str, chaincode: Any) -> None:
        self._chaincode_id = chaincode_id
        self._chaincode = chaincode

    async def Connect(self, request_iterator: AsyncIterable[Any], context: Any) -> None:  # noqa: N802
        handler = SafeHandler(self._chaincode_id, self._chaincode)
        try:
            await handler.chat_with_peer(request_iterator, context)
        except asyncio.CancelledError:
            LOGGER.info("peer stream closed")


@dataclass(frozen=True)
class ServerConfig:
    """Where and as what the chaincode server runs; see ``from_env``."""

    chaincode_id: str
    address: str
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    tls_client_ca: Optional[Path] = None

    @classmethod
    def from_env(cls, env: Optional[dict[str, str]] = None) -> "ServerConfig":
        env = dict(os.environ if env is None else env)
        missing = [name for name in ("CHAINCODE_ID", "CHAINCODE_SERVER_ADDRESS") if not env.get(name)]
        if missing:
            raise SystemExit(
                f"error: {' and '.join(missing)} must be set: CHAINCODE_ID is the package ID printed by "
                "`peer lifecycle chaincode calculatepackageid`, CHAINCODE_SERVER_ADDRESS the host:port "
                "written in the package's connection.json (scripts/network.sh deploy sets both)")
        paths = {name: Path(env[name]) if env.get(name) else None
                 for name in ("CHAINCODE_TLS_CERT", "CHAINCODE_TLS_KEY", "CHAINCODE_TLS_CLIENT_CA")}
        if bool(paths["CHAINCODE_TLS_CERT"]) != bool(paths["CHAINCODE_TLS_KEY"]):
            raise SystemExit("error: set both CHAINCODE_TLS_CERT and CHAINCODE_TLS_KEY, or neither")
        return cls(env["CHAINCODE_ID"], env["CHAINCODE_SERVER_ADDRESS"], paths["CHAINCODE_TLS_CERT"],
                   paths["CHAINCODE_TLS_KEY"], paths["CHAINCODE_TLS_CLIENT_CA"])


def build_server(config: ServerConfig, chaincode: Any) -> grpc.aio.Server:
    """A grpc.aio server with the chaincode service bound to ``config.address``."""
    server = grpc.aio.server()
    shim_grpc.add_ChaincodeServicer_to_server(ChaincodeService(config.chaincode_id, chaincode), server)
    if config.tls_cert and config.tls_key:
        client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
        credentials = grpc.ssl_server_credentials(
            [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
            root_certificates=client_ca, require_client_auth=client_ca is not None)
        server.add_secure_port(config.address, credentials)
    else:
        server.add_insecure_port(config.address)
    return server


async def serve(config: ServerConfig, chaincode: Any = None) -> None:
    """Run until SIGTERM/SIGINT, then stop with a short grace period."""
    chaincode = chaincode if chaincode is not None else shim.new_chaincode()
    server = build_server(config, chaincode)
    await server.start()
    LOGGER.info("chaincode %s listening on %s", config.chaincode_id, config.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(3)


def main() -> None:
    logging.basicConfig(level=os.environ.get("CHAINCODE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # the package logs every message there, some as WARNING
    asyncio.run(serve(ServerConfig.from_env()))
