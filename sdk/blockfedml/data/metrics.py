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
    """``metric`` of predictions (labels or targets) or class probabilities, as a float >= 0.

    Plain numpy: members score every proposal twice per round, and these run
    in microseconds where scikit-learn's validated versions take milliseconds.
    F1 is the positive class's (class 1) for two classes, the macro average
    over the classes present otherwise; AUC likewise (one-vs-rest).
    """
    if metric not in METRICS:
        raise InvalidInputError(f"metric {metric!r} is unknown; allowed values: {', '.join(METRICS)}")
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        raise InvalidInputError("cannot score an empty validation set")
    if metric == "auc":
        if proba is None:
            raise InvalidInputError("auc needs class probabilities")
        return _auc(y_true, np.asarray(proba, dtype=np.float64))
    if predicted is None and proba is not None:
        predicted = np.argmax(proba, axis=1)
    if predicted is None:
        raise InvalidInputError(f"{metric} needs predictions")
    predicted = np.asarray(predicted)
    if metric == "accuracy":
        return float(np.mean(predicted == y_true))
    if metric == "f1":
        binary = proba is not None and np.asarray(proba).shape[1] == 2
        classes = [1] if binary else np.unique(np.concatenate([y_true, predicted]))
        return float(np.mean([_f1(y_true == c, predicted == c) for c in classes]))
    if metric == "rmse":
        return float(np.sqrt(np.mean((predicted.astype(np.float64) - y_true) ** 2)))
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    residual = float(np.sum((y_true - predicted) ** 2))
    return max(0.0, 1.0 - residual / total) if total > 0 else float(residual == 0.0)


def _f1(truth: np.ndarray, guess: np.ndarray) -> float:
    hits = float(np.sum(truth & guess))
    denominator = float(np.sum(truth) + np.sum(guess))
    return 2.0 * hits / denominator if denominator else 0.0


def _auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary AUC, or the macro one-vs-rest AUC over the classes present in ``y_true``.

    AUC is the Mann-Whitney statistic (ties count one half). A validation set
    with a single class has no AUC; it scores 0.5 (chance), so it neither
    rewards nor punishes.
    """
    present = np.unique(y_true)
    if len(present) < 2:
        return 0.5
    if proba.shape[1] == 2:
        return _binary_auc(y_true == 1, proba[:, 1])
    return float(np.mean([_binary_auc(y_true == c, proba[:, c]) for c in present]))


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # average ranks for ties
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def score_model(model: Any, X: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Score any model exposing ``predict`` (and ``predict_proba`` for classifiers)."""
    task = METRICS[metric][0] if metric in METRICS else None
    if task == "classification":
        proba = model.predict_proba(X)
        return score(metric, y, proba=proba)
    return score(metric, y, predicted=model.predict(X))
