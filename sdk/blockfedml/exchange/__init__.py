"""The exchange: organizations send sealed update blobs to each other over
mutual-TLS gRPC, authenticated by their organizations' TLS certificates, and
every received blob is checked against its sender's commitment on the ledger.
See ``docs/exchange.md``."""

from blockfedml.exchange.client import ExchangeClient
from blockfedml.exchange.credentials import ExchangePeer, TLSMaterial, TrustStore
from blockfedml.exchange.server import ExchangeServer, Inbox
from blockfedml.exchange.transport import (
    TRANSPORTS,
    GrpcTransport,
    StoreTransport,
    Transport,
    commitment_problem,
    open_transport,
    round_admission,
)
from blockfedml.exchange.wire import ExchangeOptions

__all__ = [
    "TRANSPORTS",
    "ExchangeClient",
    "ExchangeOptions",
    "ExchangePeer",
    "ExchangeServer",
    "GrpcTransport",
    "Inbox",
    "StoreTransport",
    "TLSMaterial",
    "Transport",
    "TrustStore",
    "commitment_problem",
    "open_transport",
    "round_admission",
]
