"""The embedded ledger: Fabric's rules on one machine, in one SQLite file.

Like Hardhat Network for Ethereum: the same chaincode that runs behind a
Fabric peer runs here in-process, every transaction is signed by its
submitter's organization and validated (signatures, membership, MVCC) before
it lands in a hash-chained block. See ``ledger.py`` for the flow and
``store.py`` for the storage and durability choices and ``codec.py`` for the
compact form of stored transactions (docs/ledger-storage.md).
"""

from blockfedml.ledger.embedded.gateway import (
    EmbeddedContract,
    EmbeddedGateway,
    EmbeddedNetwork,
    ProposalHandle,
    Transaction,
)
from blockfedml.ledger.embedded.ledger import CommitStatus, EmbeddedLedger, Endorsement
from blockfedml.ledger.embedded.store import StoredBytes
from blockfedml.ledger.embedded.verify import VerifyReport

__all__ = [
    "CommitStatus",
    "EmbeddedContract",
    "EmbeddedGateway",
    "EmbeddedLedger",
    "EmbeddedNetwork",
    "Endorsement",
    "ProposalHandle",
    "StoredBytes",
    "Transaction",
    "VerifyReport",
]
