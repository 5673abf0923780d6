"""What travels between exchange clients and servers, and how failures are named.

The service has three methods, both carried by gRPC's generic handlers with raw
``bytes`` messages (no ``.proto`` file, no code generation):

``/blockfedml.exchange.Exchange/Ping`` (unary)
    request: any small payload; response: canonical JSON
    ``{"receiver": <server MSP>, "sender": <authenticated client MSP>, "echo": <bytes length>}``.
``/blockfedml.exchange.Exchange/Send`` (client stream)
    request: the blob in chunks of at most ``chunk_bytes``; the blob's round,
    SHA-256 and size travel as call metadata, so the server can refuse a call
    (unknown sender, not the aggregator, too large) before reading a byte;
    response: canonical JSON ``{"digest", "receiver", "round", "sender", "size"}``.
``/blockfedml.exchange.Exchange/Fetch`` (server stream)
    request: a blob's SHA-256 (hex); response: the blob from the server's
    organization's store, in chunks; ``NOT_FOUND`` when it does not hold it.

Every call carries ``bfml-msp``: the organization the client claims to be; the
server checks it against the client's TLS certificate.

All three are idempotent: a Ping and a Fetch change nothing, and a Send stores the blob
under (round, sender), so sending the same bytes twice leaves the same state.
That is why the client may retry them; a method added later that is not
idempotent must not be listed in ``IDEMPOTENT``.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from blockfedml.errors import (
    BlockFedMLError,
    ConflictError,
    ExchangeError,
    IntegrityError,
    InvalidInputError,
    NotAuthorizedError,
    NotFoundError,
    PhaseError,
)

SERVICE = "blockfedml.exchange.Exchange"
PING = f"/{SERVICE}/Ping"
SEND = f"/{SERVICE}/Send"
FETCH = f"/{SERVICE}/Fetch"  # a blob of the server's organization's store, by digest
IDEMPOTENT = frozenset({PING, SEND, FETCH})
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

MSP_KEY = "bfml-msp"
ROUND_KEY = "bfml-round"
DIGEST_KEY = "bfml-digest"
SIZE_KEY = "bfml-size"

MAX_PING_BYTES = 4096


@dataclass(frozen=True)
class ExchangeOptions:
    """Limits, deadlines (seconds) and retries of the exchange; defaults suit one machine or a LAN."""

    chunk_bytes: int = 1 << 20          # bytes per streamed message
    max_message_bytes: int = 4 << 20    # gRPC's per-message limit, both ways
    max_blob_bytes: int = 256 << 20     # the largest blob a server accepts (and a client sends)
    ping_timeout: float = 5.0
    send_timeout: float = 60.0
    fetch_timeout: float = 60.0
    collect_timeout: float = 60.0       # how long an aggregator waits for the round's blobs
    retries: int = 3                    # extra attempts of an idempotent call
    retry_backoff: float = 0.1          # seconds before the first retry, doubled after each

    def __post_init__(self) -> None:
        for name in ("chunk_bytes", "max_message_bytes", "max_blob_bytes"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"exchange option {name} must be at least 1")
        if self.chunk_bytes > self.max_message_bytes:
            raise InvalidInputError(
                f"chunk_bytes ({self.chunk_bytes}) must not exceed max_message_bytes ({self.max_message_bytes})"
            )
        for name in ("ping_timeout", "send_timeout", "fetch_timeout", "collect_timeout"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(f"exchange option {name} must be positive")
        if self.retries < 0 or self.retry_backoff < 0:
            raise InvalidInputError("exchange options retries and retry_backoff must not be negative")

    def channel_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]


_STATUS_OF: list[tuple[type[BlockFedMLError], grpc.StatusCode]] = [
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotAuthorizedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (PhaseError, grpc.StatusCode.FAILED_PRECONDITION),
    (IntegrityError, grpc.StatusCode.DATA_LOSS),
    (ConflictError, grpc.StatusCode.ALREADY_EXISTS),
]

_ERROR_OF: dict[grpc.StatusCode, type[BlockFedMLError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidInputError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: InvalidInputError,  # a size limit
    grpc.StatusCode.PERMISSION_DENIED: NotAuthorizedError,
    grpc.StatusCode.UNAUTHENTICATED: NotAuthorizedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: PhaseError,
    grpc.StatusCode.DATA_LOSS: IntegrityError,
    grpc.StatusCode.ALREADY_EXISTS: ConflictError,
}


def status_of(error: BlockFedMLError) -> grpc.StatusCode:
    """The status a server answers with for one of the SDK's errors."""
    for cls, code in _STATUS_OF:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def error_from_rpc(error: grpc.RpcError, what: str, peer: str, timeout: float, attempts: int) -> BlockFedMLError:
    """The SDK's error for a failed call: the server's refusal keeps its class and words;
    a peer that is unreachable, refuses the handshake or is too slow is an ``ExchangeError``."""
    code = error.code()  # type: ignore[attr-defined]
    details = error.details() or code.name  # type: ignore[attr-defined]
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ExchangeError(f"{what}: {peer} did not answer within the deadline of {timeout:g} s ({tries})")
    if code == grpc.StatusCode.UNAVAILABLE:
        return ExchangeError(
            f"{what}: cannot reach {peer} ({details}; {tries}); check that its exchange server runs "
            f"and that both sides present certificates of their organizations' TLS CAs"
        )
    cls = _ERROR_OF.get(code)
    if cls is None:
        return ExchangeError(f"{what}: {peer} failed with {code.name}: {details}")
    return cls(f"{what}: {peer} refused: {details}")
