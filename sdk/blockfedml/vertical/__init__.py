"""Vertical federated learning: the paper's Fig. 3 (after Yang et al.).

Parties A and B hold different features of the same entities (B also the
labels); collaborator C holds a Paillier key pair. Entity alignment by
private set intersection (``psi``), then gradient descent where A and B
exchange encrypted intermediate results and C decrypts only masked gradients
and the loss (``parties``), with every step committed on the ledger through
the ``vertical`` contract (``ledger``) and checked by the auditor (``audit``).
See docs/vertical.md.

    from blockfedml.vertical import VerticalSettings, run_in_process, split_dataset
    split = split_dataset("diabetes")
    run = run_in_process(split.a, split.b, VerticalSettings.of("linear", learning_rate=0.4),
                         test_ids=split.test_ids)
    run.b.metrics  # {"test_mse": ..., ...}
"""

from blockfedml.vertical.audit import SessionAudit, verify_session
from blockfedml.vertical.data import PartyData, VerticalSplit, load_party_csv, save_party_csv, split_dataset
from blockfedml.vertical.he import PaillierKeyPair, PaillierScheme, PlainScheme
from blockfedml.vertical.ledger import VerticalLedger
from blockfedml.vertical.parties import Collaborator, PartyA, PartyB, PartyResult
from blockfedml.vertical.protocol import VerticalSettings
from blockfedml.vertical.psi import Alignment, align
from blockfedml.vertical.session import (
    VerticalRun, create_vertical_consortium, new_session_id, party_store, run_in_process,
)
from blockfedml.vertical.transport import ExchangeEndpoint, LocalHub, SessionAborted

__all__ = [
    "Alignment", "Collaborator", "ExchangeEndpoint", "LocalHub", "PaillierKeyPair", "PaillierScheme", "PartyA",
    "PartyB", "PartyData", "PartyResult", "PlainScheme", "SessionAborted", "SessionAudit", "VerticalLedger",
    "VerticalRun", "VerticalSettings", "VerticalSplit", "align", "create_vertical_consortium", "load_party_csv",
    "new_session_id", "party_store", "run_in_process", "save_party_csv", "split_dataset", "verify_session",
]
