"""The centralized baseline and a plaintext FedAvg loop that should match it."""

import numpy as np

from blockfedml.fl.strategy import ClientUpdate, FedAvg
from blockfedml.ml import make_federated_split, make_model, train_centralized


def _fedavg(split, kind, rounds=10, local_epochs=2, lr=0.1, batch_size=16, seed=0):
    model = make_model(kind, split.n_features, split.n_classes, seed=seed)
    for r in range(rounds):
        updates = []
        for i, org in enumerate(split.orgs):
            local = model.clone().fit(org.X_train, org.y_train, epochs=local_epochs, lr=lr,
                                      batch_size=batch_size, seed=seed * 1000 + r * 10 + i)
            updates.append(ClientUpdate(f"org{i}", local.get_params(), org.n_train))
        model.set_params(FedAvg().aggregate(updates))
    return model.evaluate(split.X_test, split.y_test)["accuracy"]


def test_centralized_baseline_is_accurate_and_deterministic():
    split = make_federated_split("breast_cancer", 3, seed=0)
    acc = train_centralized(split, "logreg", epochs=20, lr=0.1, batch_size=16, seed=0)
    assert acc > 0.95
    assert acc == train_centralized(split, "logreg", epochs=20, lr=0.1, batch_size=16, seed=0)


def test_fedavg_three_orgs_within_two_points_of_centralized():
    for name, kind in [("breast_cancer", "logreg"), ("digits", "softmax")]:
        split = make_federated_split(name, 3, "iid", seed=0)
        central = train_centralized(split, kind, epochs=20, lr=0.1, batch_size=16, seed=0)
        federated = _fedavg(split, kind)
        assert federated >= central - 0.02, (name, federated, central)
        assert federated > (0.95 if name == "breast_cancer" else 0.93)
