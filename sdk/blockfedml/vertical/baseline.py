"""Centralized training on the joined data: what a vertical session is measured against.

Only an evaluation can join A's and B's columns (it holds both datasets, the
parties never do). The joined rows are exactly the session's: the aligned
entities minus B's held-out IDs for training, the aligned held-out IDs for
testing, each party's columns standardized with its own training statistics,
as the parties do. Two references:

- ``exact``: the model fitted to convergence — least squares for linear
  regression (ridge with the session's L2), scikit-learn's logistic regression
  (the true log loss) for classification;
- ``optimum``: the minimum of the very loss the session minimizes (for
  logistic regression the Taylor loss, a quadratic whose minimizer is the
  least-squares fit to targets 2y), to compare final losses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blockfedml.vertical.data import VerticalSplit
from blockfedml.vertical.protocol import OBJECTIVES, VerticalSettings, sigmoid, standardize


def joined(split: VerticalSplit) -> dict[str, Any]:
    """Training and test matrices of the joined data (intercept last) and their labels."""
    common = set(split.a.ids) & set(split.b.ids)
    held_out = set(split.test_ids)
    train = sorted(i for i in common if i not in held_out)
    test = sorted(i for i in common if i in held_out)
    parts_train, parts_test = [], []
    for data in (split.a, split.b):
        raw_train, raw_test = data.X[data.rows(train)], data.X[data.rows(test)]
        mean, scale = standardize(raw_train)
        parts_train.append((raw_train - mean) / scale)
        parts_test.append((raw_test - mean) / scale)
    y = split.b.y
    assert y is not None
    return {"X_train": np.hstack(parts_train + [np.ones((len(train), 1))]),
            "X_test": np.hstack(parts_test + [np.ones((len(test), 1))]),
            "y_train": y[split.b.rows(train)], "y_test": y[split.b.rows(test)]}


def centralized(split: VerticalSplit, settings: VerticalSettings) -> dict[str, float]:
    """Test metric of the exact centralized model and the optimum of the session's loss."""
    data = joined(split)
    X, Xt, y, yt = data["X_train"], data["X_test"], data["y_train"], data["y_test"]
    n, l2 = len(y), settings.l2
    penalty = np.eye(X.shape[1]) * l2 * n
    penalty[-1, -1] = 0.0
    if settings.model == "linear":
        mean, scale = float(y.mean()), float(y.std() or 1.0)
        ys = (y - mean) / scale
        theta = np.linalg.solve(X.T @ X + penalty, X.T @ ys)
        residual = X @ theta - ys
        loss = 0.5 * float(residual @ residual) / n + l2 / 2 * float(theta[:-1] @ theta[:-1])
        mse = float(np.mean((Xt @ theta * scale + mean - yt) ** 2))
        return {"test_mse": mse, "test_rmse": mse ** 0.5, "optimum_loss": loss}
    from sklearn.linear_model import LogisticRegression

    pm = 2.0 * y - 1.0
    theta = np.linalg.solve(X.T @ X + 4 * penalty, 2 * X.T @ pm)  # minimizer of the Taylor loss
    z = X @ theta
    objective = OBJECTIVES["logistic"]
    loss = float(np.mean(objective.b_part(z, pm))) + l2 / 2 * float(theta[:-1] @ theta[:-1])
    strength = 1.0 / (l2 * n) if l2 > 0 else 1e6
    exact = LogisticRegression(C=strength, max_iter=10_000).fit(X[:, :-1], y)
    accuracy = float(np.mean(exact.predict(Xt[:, :-1]) == yt))
    taylor_accuracy = float(np.mean((sigmoid(Xt @ theta) >= 0.5) == (yt > 0)))
    return {"test_accuracy": accuracy, "taylor_optimum_test_accuracy": taylor_accuracy, "optimum_loss": loss}
