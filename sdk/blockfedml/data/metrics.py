"""Metrics chosen by the task: what members measure before they endorse.

Every model — the numpy models and the adapters alike — offers ``predict``
(and ``predict_proba`` for classifiers), so one function scores any of them.
The ledger stores a metric as a fixed-point integer that must be >= 0:
accuracy, AUC, F1 and RMSE always are; R² below 0 (a model worse than
predicting the mean) is reported as 0. ``rmse`` is the one lower-is-better
metric; the contract's ``higher_is_better`` setting follows the schema.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blockfedml.data.schema import METRICS
from blockfedml.errors import InvalidInputError


def score(metric: str, y_true: np.ndarray, predicted: np.ndarray | None = None,
          proba: np.ndarray | None = None) -> float:
    """``metric`` of predictions (labels or targets) or class probabilities, as a float >= 0."""
    from sklearn import metrics as skm

    if metric not in METRICS:
        raise InvalidInputError(f"metric {metric!r} is unknown; allowed values: {', '.join(METRICS)}")
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        raise InvalidInputError("cannot score an empty validation set")
    if metric == "auc":
        if proba is None:
            raise InvalidInputError("auc needs class probabilities")
        return _auc(y_true, np.asarray(proba, dtype=np.float64))
    if predicted is None:
        predicted = np.argmax(proba, axis=1) if proba is not None else None
    if predicted is None:
        raise InvalidInputError(f"{metric} needs predictions")
    predicted = np.asarray(predicted)
    if metric == "accuracy":
        return float(np.mean(predicted == y_true))
    if metric == "f1":
        binary = proba is not None and np.asarray(proba).shape[1] == 2
        return float(skm.f1_score(y_true, predicted, average="binary" if binary else "macro", zero_division=0))
    if metric == "rmse":
        return float(np.sqrt(np.mean((predicted.astype(np.float64) - y_true) ** 2)))
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    residual = float(np.sum((y_true - predicted) ** 2))
    return max(0.0, 1.0 - residual / total) if total > 0 else float(residual == 0.0)


def _auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary AUC, or the macro one-vs-rest AUC over the classes present in ``y_true``.

    A validation set with a single class has no AUC; it scores 0.5 (chance),
    so it neither rewards nor punishes.
    """
    from sklearn.metrics import roc_auc_score

    present = np.unique(y_true)
    if len(present) < 2:
        return 0.5
    if proba.shape[1] == 2:
        return float(roc_auc_score(y_true == 1, proba[:, 1]))
    return float(np.mean([roc_auc_score(y_true == c, proba[:, c]) for c in present]))


def score_model(model: Any, X: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Score any model exposing ``predict`` (and ``predict_proba`` for classifiers)."""
    task = METRICS[metric][0] if metric in METRICS else None
    if task == "classification":
        proba = model.predict_proba(X)
        return score(metric, y, proba=proba)
    return score(metric, y, predicted=model.predict(X))
