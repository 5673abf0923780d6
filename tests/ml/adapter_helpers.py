"""Run a real federated session (embedded ledger, federated scaler) on a scikit-learn dataset split
between three members, and train the same model centrally on the union, for the adapter tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blockfedml.consortium import Consortium
from blockfedml.data import parse_schema
from blockfedml.data.metrics import score_model
from blockfedml.data.run import own_data_session
from blockfedml.data.table import LocalTable
from blockfedml.fl.checkpoints import load_checkpoint
from blockfedml.fl.task import TaskSpec


@dataclass
class Comparison:
    federated: float
    central: float
    statuses: list[str]


def load(name: str):
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
              "diabetes": datasets.load_diabetes}[name]
    X, y = loader(return_X_y=True)
    return X.astype(np.float64), y


def compare(workdir: Path, dataset: str, model: str, rounds: int = 10, epochs: int = 2, lr: float = 0.1,
            batch_size: int = 16, metric: str | None = None, mode: str = "plaintext") -> Comparison:
    """Federated (3 members, ``rounds`` x ``epochs``) vs central (``rounds * epochs`` epochs) on one test set."""
    X, y = load(dataset)
    regression = dataset == "diabetes"
    features = [f"x{i}" for i in range(X.shape[1])]
    label = {"name": "y", "range": [0, 400]} if regression else {"name": "y", "classes": sorted(set(y.tolist()))}
    schema = parse_schema({"task": "regression" if regression else "classification", "label": label,
                           "features": features, **({"metric": metric} if metric else {})})
    order = np.random.default_rng(0).permutation(len(y))
    test, pool = order[:len(y) // 5], order[len(y) // 5:]
    table = lambda rows, name: LocalTable(name, schema, X[rows], y[rows], len(rows), 0)  # noqa: E731
    task = TaskSpec(model=model, epochs=epochs, lr=lr, batch_size=batch_size)
    c = Consortium.create(workdir, n_orgs=3, task=task, schema=schema, auditor=False,
                          collaborator=mode == "paillier",  # the key holder that decrypts only sums
                          settings={"rollback_tolerance": 1_000_000_000})  # compare training, not the rules
    try:
        parts = {f"Org{i + 1}": table(rows, f"part{i + 1}") for i, rows in enumerate(np.array_split(pool, 3))}
        session = own_data_session(c, parts, test=table(test, "test"), mode=mode)
        results = session.run(rounds)
        head = c.contract("Org1").evaluate_json("GetHead")["checkpoint"]
        model_ = load_checkpoint(c.store, head, session.members[0].model.clone())
        federated = score_model(model_, session.X_test, session.y_test, schema.metric)

        central = session.members[0].model.clone()  # same estimator, same initial parameters (genesis)
        load_checkpoint(c.store, c.contract("Org1").evaluate_json("GetConsortium")["genesis"], central)
        X_union = np.concatenate([m.data.X_train for m in session.members])
        y_union = np.concatenate([m.data.y_train for m in session.members])
        central.fit(X_union, y_union, epochs=rounds * epochs, lr=lr, batch_size=batch_size, seed=0)
        return Comparison(federated, score_model(central, session.X_test, session.y_test, schema.metric),
                          [r.status for r in results])
    finally:
        c.close()
