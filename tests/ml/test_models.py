"""Models: they learn, they are reproducible, their parameter vector is the whole state."""

import numpy as np
import pytest

from blockfedml.errors import InvalidInputError
from blockfedml.ml.datasets import make_federated_split
from blockfedml.ml.models import (
    MLP, LogisticRegression, SoftmaxRegression, default_kind, make_model, model_from_meta,
)


@pytest.fixture(scope="module")
def cancer():
    return make_federated_split("breast_cancer", 1, seed=0)


@pytest.fixture(scope="module")
def digits():
    return make_federated_split("digits", 1, seed=0)


def _train(split, kind, seed=0, **opts):
    org = split.orgs[0]
    model = make_model(kind, split.n_features, split.n_classes, seed=seed, **opts)
    return model.fit(org.X_train, org.y_train, epochs=10, lr=0.1, batch_size=16, seed=seed)


@pytest.mark.parametrize("kind,opts", [("logreg", {}), ("softmax", {}),
                                       ("mlp", {}), ("mlp", {"activation": "relu"})])
def test_learns_breast_cancer(cancer, kind, opts):
    model = _train(cancer, kind, **opts)
    metrics = model.evaluate(cancer.X_test, cancer.y_test)
    assert metrics["accuracy"] > 0.93  # chance is ~0.63
    assert 0 < metrics["loss"] < 0.3


@pytest.mark.parametrize("kind", ["softmax", "mlp"])
def test_learns_digits(digits, kind):
    assert _train(digits, kind).evaluate(digits.X_test, digits.y_test)["accuracy"] > 0.9


def test_training_lowers_loss(cancer):
    model = make_model("logreg", cancer.n_features, 2, seed=0)
    before = model.evaluate(cancer.X_test, cancer.y_test)["loss"]
    model.fit(cancer.orgs[0].X_train, cancer.orgs[0].y_train, epochs=1, lr=0.1, batch_size=32)
    assert model.evaluate(cancer.X_test, cancer.y_test)["loss"] < before


@pytest.mark.parametrize("kind", ["logreg", "softmax", "mlp"])
def test_same_seed_bit_identical(cancer, kind):
    a = _train(cancer, kind, seed=3).get_params()
    b = _train(cancer, kind, seed=3).get_params()
    c = _train(cancer, kind, seed=4).get_params()
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_initial_params_seeded():
    a = make_model("mlp", 5, 3, seed=1).get_params()
    assert np.array_equal(a, make_model("mlp", 5, 3, seed=1).get_params())
    assert not np.array_equal(a, make_model("mlp", 5, 3, seed=2).get_params())


@pytest.mark.parametrize("model,n_params", [
    (LogisticRegression(4), 5),
    (SoftmaxRegression(4, 3), 15),
    (MLP(4, 3, hidden=5), 4 * 5 + 5 + 5 * 3 + 3),
])
def test_param_round_trip(model, n_params):
    assert model.n_params == n_params
    vec = np.random.default_rng(0).normal(size=n_params)
    model.set_params(vec)
    out = model.get_params()
    assert np.array_equal(out, vec)
    out[0] = 99.0  # a copy: mutating it does not touch the model
    assert model.get_params()[0] == vec[0]
    vec[1] = 99.0  # set_params copied too
    assert model.get_params()[1] != 99.0


def test_set_params_params_drive_predictions(cancer):
    trained = _train(cancer, "logreg")
    fresh = make_model("logreg", cancer.n_features, 2, seed=9)
    fresh.set_params(trained.get_params())
    assert np.array_equal(fresh.predict_proba(cancer.X_test), trained.predict_proba(cancer.X_test))


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros(6), np.zeros((5, 1)), [np.nan] * 5])
def test_set_params_bad_shapes(bad):
    with pytest.raises(InvalidInputError):
        LogisticRegression(4).set_params(bad)


def test_predict_shapes_and_probabilities():
    model = make_model("softmax", 3, 4, seed=0)
    X = np.random.default_rng(0).normal(size=(7, 3))
    proba = model.predict_proba(X)
    assert proba.shape == (7, 4) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(model.predict(X), proba.argmax(axis=1))
    assert LogisticRegression(3).predict_proba(X).shape == (7, 2)


@pytest.mark.parametrize("call", [
    lambda m: m.predict(np.zeros((3, 4))),
    lambda m: m.predict(np.zeros(3)),
    lambda m: m.fit(np.zeros((3, 3)), np.array([0, 1])),
    lambda m: m.fit(np.zeros((3, 3)), np.array([0, 1, 2])),
    lambda m: m.fit(np.zeros((2, 3)), np.array([0.5, 1.0])),
    lambda m: m.fit(np.zeros((2, 3)), np.array([0, 1]), lr=0),
    lambda m: m.fit(np.zeros((2, 3)), np.array([0, 1]), batch_size=0),
    lambda m: m.fit(np.zeros((2, 3)), np.array([0, 1]), epochs=-1),
    lambda m: m.fit(np.zeros((2, 3)), np.array([0, 1]), l2=-1),
    lambda m: m.evaluate(np.full((2, 3), np.inf), np.array([0, 1])),
])
def test_bad_inputs(call):
    with pytest.raises(InvalidInputError):
        call(LogisticRegression(3))


def test_l2_shrinks_weights(cancer):
    org = cancer.orgs[0]
    plain = make_model("logreg", cancer.n_features, 2).fit(org.X_train, org.y_train, epochs=5)
    reg = make_model("logreg", cancer.n_features, 2).fit(org.X_train, org.y_train, epochs=5, l2=0.1)
    assert np.linalg.norm(reg.get_params()[:-1]) < np.linalg.norm(plain.get_params()[:-1])


def test_clone_is_independent():
    model = make_model("mlp", 3, 2, seed=0)
    twin = model.clone()
    twin.set_params(np.zeros(twin.n_params))
    assert not np.array_equal(model.get_params(), twin.get_params())
    assert twin.meta() == model.meta()


def test_factory_and_meta():
    assert default_kind(2) == "logreg" and default_kind(10) == "softmax"
    mlp = make_model("mlp", 6, 3, seed=0, hidden=8, activation="relu")
    rebuilt = model_from_meta(mlp.meta(), mlp.get_params())
    assert isinstance(rebuilt, MLP) and rebuilt.hidden == 8 and rebuilt.activation == "relu"
    assert np.array_equal(rebuilt.get_params(), mlp.get_params())
    with pytest.raises(InvalidInputError, match="logreg, softmax, mlp"):
        make_model("svm", 3, 2)
    with pytest.raises(InvalidInputError, match="binary"):
        make_model("logreg", 3, 5)
    with pytest.raises(InvalidInputError, match="activation"):
        make_model("mlp", 3, 2, activation="sigmoid")
    with pytest.raises(InvalidInputError):
        make_model("softmax", 3, 2, hidden=4)
    with pytest.raises(InvalidInputError):
        make_model("softmax", 0, 2)
