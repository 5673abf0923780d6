"""BlockFedML: federated machine learning governed by a permissioned ledger."""

__version__ = "0.1.0"
