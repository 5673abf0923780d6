"""Ledger backends behind one Gateway-style interface (see ``base``)."""

from blockfedml.ledger.base import Contract, Gateway, Network, decode_json

__all__ = ["Contract", "Gateway", "Network", "decode_json"]
