"""One vocabulary for every number a session reports: the metric, the data it was measured on, a fraction.

Two measurements of a model exist and they differ, so each is always named:

- ``test``: the model on the held-out test split of the demo task, measured by
  whoever drives the session (the demo, ``admin round run``). It is not on the
  ledger: the members never see that data.
- ``validation``: each participant's own validation data; the ledger keeps
  the lower median of their endorsements (``decision.metric``), which is what
  the contract's accept/roll-back rule judged.

The ledger stores metrics as integers (the fraction x ``METRIC_SCALE``,
integers keep the contract deterministic). People and scripts get the
fraction under the name ``<data>_<metric>`` (``validation_accuracy``); the
integer shows up only in raw ledger records printed by ``--json``, where
the documentation (docs/audit.md, "Numbers") labels it.
"""

from __future__ import annotations

from typing import Any

from blockfedml.errors import NotFoundError
from blockfedml.fl.member import METRIC_SCALE, from_fixed

TEST, VALIDATION = "test", "validation"
DATA = {
    TEST: "the held-out test data",
    VALIDATION: "the members' own validation data (median of their endorsements, as on the ledger)",
}

__all__ = ["DATA", "METRIC_SCALE", "TEST", "VALIDATION", "fraction", "key", "label", "ledger_metric", "shown"]


def label(metric: str, data: str) -> str:
    """Column header and prose name: ``validation accuracy``."""
    return f"{data} {metric}"


def key(metric: str, data: str) -> str:
    """JSON field name of the fraction: ``validation_accuracy``."""
    return f"{data}_{metric}"


def fraction(ledger_value: int | None) -> float | None:
    """The ledger's integer metric as the fraction it stands for."""
    return from_fixed(ledger_value)


def shown(value: float | None) -> str:
    """A fraction as printed in tables (4 decimals), '-' when there is none."""
    return "-" if value is None or value != value else f"{value:.4f}"


def ledger_metric(contract: Any) -> str:
    """The name of the metric members endorse with: the data schema's, else the demo task's accuracy."""
    try:
        return str(contract.evaluate_json("data:GetSchema").get("metric") or "accuracy")
    except NotFoundError:
        return "accuracy"
