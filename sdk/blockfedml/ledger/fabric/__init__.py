"""The Fabric backend: a Gateway client for a real Hyperledger Fabric v3 network.

``FabricGateway.connect(identity, PeerEndpoint(...))`` gives the same
Gateway -> Network -> Contract interface as the embedded ledger; a
``FabricProfile`` (``runs/fabric/network.json``) says where each
organization's peer is. See docs/fabric.md.
"""

from blockfedml.ledger.fabric.gateway import (
    FabricContract,
    FabricGateway,
    FabricNetwork,
    FabricProposal,
    FabricTransaction,
    GatewayOptions,
    PeerEndpoint,
)
from blockfedml.ledger.fabric.profile import FabricOrg, FabricProfile

__all__ = [
    "FabricContract",
    "FabricGateway",
    "FabricNetwork",
    "FabricOrg",
    "FabricProfile",
    "FabricProposal",
    "FabricTransaction",
    "GatewayOptions",
    "PeerEndpoint",
]
