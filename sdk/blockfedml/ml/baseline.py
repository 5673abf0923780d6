"""The centralized baseline that federated training is judged against.

Federated training is only worth its machinery if it comes close to what one
party holding all the data would get. This trains one model on the union of
the organizations' local training sets (validation parts excluded, exactly the
data FedAvg sees) and reports accuracy on the shared held-out test set.
"""

from __future__ import annotations

from blockfedml.ml.datasets import FederatedSplit
from blockfedml.ml.models import Model, default_kind, make_model


def fit_centralized(
    split: FederatedSplit,
    kind: str | None = None,
    epochs: int = 20,
    lr: float = 0.1,
    batch_size: int = 16,
    seed: int = 0,
    l2: float = 0.0,
) -> Model:
    """Train one model on all organizations' training data; returns the model.

    Defaults match the recommended federated settings (10 rounds x 2 local
    epochs, lr 0.1, batch 16), so both see the data the same number of times.
    """
    kind = kind or default_kind(split.n_classes)
    X, y = split.union_train()
    model = make_model(kind, split.n_features, split.n_classes, seed=seed)
    return model.fit(X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, l2=l2)


def train_centralized(
    split: FederatedSplit,
    kind: str | None = None,
    epochs: int = 20,
    lr: float = 0.1,
    batch_size: int = 16,
    seed: int = 0,
    l2: float = 0.0,
) -> float:
    """Test accuracy (0..1) of the centralized baseline; ``kind`` None = default for the data."""
    model = fit_centralized(split, kind, epochs, lr, batch_size, seed, l2)
    return model.evaluate(split.X_test, split.y_test)["accuracy"]
