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

from importlib import import_module
from typing import Any

_EXPORTS = {
    "audit": ["SessionAudit", "verify_session"],
    "collaborator": ["Collaborator"],
    "data": ["PartyData", "VerticalSplit", "load_party_csv", "save_party_csv", "split_dataset"],
    "he": ["PaillierKeyPair", "PaillierScheme", "PlainScheme"],
    "ledger": ["VerticalLedger"],
    "parties": ["PartyA", "PartyB", "PartyResult"],
    "protocol": ["VerticalSettings"],
    "psi": ["Alignment", "align"],
    "session": ["VerticalRun", "create_vertical_consortium", "new_session_id", "party_store", "run_in_process"],
    "transport": ["ExchangeEndpoint", "LocalHub", "SessionAborted"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """Import on first use, so that ``blockfedml.vertical.psi`` (loaded by PSI worker processes)
    does not drag in the ledger, the exchange and scikit-learn."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
