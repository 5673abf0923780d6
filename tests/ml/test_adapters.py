"""scikit-learn estimators as federated models: layout, warm start, checkpoints, and sessions vs central."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.tree import DecisionTreeClassifier

from blockfedml.data import parse_schema
from blockfedml.errors import InvalidInputError
from blockfedml.ml.adapters import SklearnModel, make_model_for
from blockfedml.ml.models import Model
from blockfedml.ml.serialization import model_from_bytes, model_to_bytes, params_from_bytes

from adapter_helpers import compare, load

ESTIMATORS = {
    "logistic (binary)": (LogisticRegression(), 2, [(1, 8), (1,)]),
    "sgd (3 classes)": (SGDClassifier(loss="log_loss"), 3, [(3, 8), (3,)]),
    "mlp classifier": (MLPClassifier(hidden_layer_sizes=(5, 4)), 3, [(8, 5), (5,), (5, 4), (4,), (4, 3), (3,)]),
    "ridge": (Ridge(), None, [(8,), (1,)]),
    "sgd regressor": (SGDRegressor(), None, [(8,), (1,)]),
    "linear regression": (LinearRegression(), None, [(8,), (1,)]),
    "mlp regressor": (MLPRegressor(hidden_layer_sizes=(6,)), None, [(8, 6), (6,), (6, 1), (1,)]),
}


def data(n_classes, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    if n_classes:
        return X, np.argmax(X[:, :n_classes] + 0.3 * rng.normal(size=(n, n_classes)), axis=1)
    return X, X @ np.arange(8) + 3.0 + rng.normal(size=n)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_flat_layout_warm_start_and_round_trip(name) -> None:
    estimator, n_classes, shapes = ESTIMATORS[name]
    model = SklearnModel(estimator, 8, n_classes, seed=1)
    assert isinstance(model, Model) and model.meta()["shapes"] == [list(s) for s in shapes]
    assert model.n_params == sum(int(np.prod(s)) for s in shapes)
    X, y = data(n_classes)
    before = model.get_params()
    model.fit(X, y, epochs=2, seed=5)
    after = model.get_params()
    assert not np.array_equal(before, after) and np.all(np.isfinite(after))

    # the same start and seed give the same update (a round can be replayed)
    again = SklearnModel(estimator, 8, n_classes, seed=1)
    again.fit(X, y, epochs=2, seed=5)
    np.testing.assert_array_equal(again.get_params(), after)

    # parameters travel as the one byte format and load back into a fresh estimator of the same kind
    blob = model_to_bytes(model)
    params, meta = params_from_bytes(blob)
    assert meta["kind"] == "sklearn" and meta["estimator"] == type(estimator).__name__
    fresh = SklearnModel(type(estimator)(**estimator.get_params()), 8, n_classes, seed=99)
    fresh.set_params(params)
    np.testing.assert_array_equal(fresh.predict(X), model.predict(X))
    np.testing.assert_array_equal(fresh.to_estimator().predict(X), model.predict(X))  # plain sklearn
    metrics = fresh.evaluate(X, y)
    assert set(metrics) == ({"accuracy", "auc", "f1"} if n_classes else {"rmse", "r2"})


def test_warm_start_continues_from_the_global_parameters() -> None:
    X, y = data(3)
    model = SklearnModel(SGDClassifier(loss="log_loss"), 8, 3)
    model.fit(X, y, epochs=5, seed=0)
    trained = model.get_params()
    model.set_params(np.zeros(model.n_params))  # a new global model arrives
    model.fit(X[:10], y[:10], epochs=1, seed=0)
    assert np.abs(model.get_params()).sum() < np.abs(trained).sum()  # one short pass from zero, not from `trained`


def test_members_missing_a_class_still_train_with_partial_fit() -> None:
    X, y = data(3)
    keep = y != 2
    sgd = SklearnModel(SGDClassifier(loss="log_loss"), 8, 3)
    sgd.fit(X[keep], y[keep], epochs=1)
    assert sgd.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(InvalidInputError, match="holds 2 of the 3 classes"):
        SklearnModel(LogisticRegression(), 8, 3).fit(X[keep], y[keep])


def test_unsupported_estimators_and_specs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no coef_/intercept_"):
        SklearnModel(DecisionTreeClassifier(), 8, 2)
    with pytest.raises(InvalidInputError, match="not a regressor"):
        SklearnModel(LogisticRegression(), 8, None)
    with pytest.raises(InvalidInputError, match="not a classifier"):
        SklearnModel(Ridge(), 8, 2)
    schema = parse_schema({"label": {"name": "y", "classes": [0, 1]}, "features": ["a", "b"]})
    assert make_model_for('sklearn:MLPClassifier{"hidden_layer_sizes": [4]}', schema).n_params == 2 * 4 + 4 + 4 + 1
    for spec, words in [("sklearn:RandomForestClassifier", "not supported"), ("sklearn:SGDClassifier{oops", "JSON"),
                        ('sklearn:SGDClassifier{"colour": 1}', "bad options"), ("keras:Net", "unknown"),
                        ("torch:missing.py:Net", "does not exist")]:
        with pytest.raises(InvalidInputError, match=words):
            make_model_for(spec, schema)
    regression = parse_schema({"task": "regression", "label": {"name": "y", "range": [0, 1]}, "features": ["a"]})
    assert make_model_for("auto", regression).meta()["estimator"] == "Ridge"
    with pytest.raises(InvalidInputError, match="classifier"):
        make_model_for("softmax", regression)


def test_numpy_model_checkpoint_format_is_unchanged() -> None:
    from blockfedml.ml.models import make_model

    model = make_model("logreg", 8, 2, seed=0)
    assert model_from_bytes(model_to_bytes(model)).meta() == model.meta()


CASES = {
    # name: (dataset, model spec, metric); "within 2 points" is on accuracy or R^2 x 100
    "LogisticRegression": ("breast_cancer", "sklearn:LogisticRegression", "accuracy"),
    "SGDClassifier": ("digits", 'sklearn:SGDClassifier{"loss": "log_loss", "random_state": 0}', "accuracy"),
    "MLPClassifier": ("digits", 'sklearn:MLPClassifier{"hidden_layer_sizes": [32], "solver": "sgd", '
                                '"learning_rate_init": 0.05, "batch_size": 16, "random_state": 0}', "accuracy"),
    "Ridge": ("diabetes", "sklearn:Ridge", "r2"),
    "SGDRegressor": ("diabetes", 'sklearn:SGDRegressor{"random_state": 0}', "r2"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_federated_session_within_two_points_of_central(name, tmp_path) -> None:
    dataset, spec, metric = CASES[name]
    result = compare(tmp_path / "c", dataset, spec, rounds=10, epochs=2, metric=metric)
    assert result.federated >= result.central - 0.02, result
    assert result.central > (0.4 if metric == "r2" else 0.9), result  # a real model, not two bad ones


@pytest.mark.parametrize("mode", ["masking", "paillier"])
def test_adapters_work_with_secure_aggregation(mode, tmp_path) -> None:
    """The mode only sees the flat vector: a secure session gives the plaintext session's model."""
    spec = 'sklearn:SGDClassifier{"loss": "log_loss", "random_state": 0}'
    plain = compare(tmp_path / "plain", "breast_cancer", spec, rounds=2)
    secure = compare(tmp_path / mode, "breast_cancer", spec, rounds=2, mode=mode)
    assert secure.statuses == plain.statuses == ["accepted", "accepted"]
    assert secure.federated == pytest.approx(plain.federated, abs=0.01)


def test_dataset_loader() -> None:
    X, y = load("diabetes")
    assert X.shape == (442, 10) and y.dtype.kind == "f"
