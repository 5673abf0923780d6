"""PyTorch modules as federated models (runs when the optional torch extra is installed)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from blockfedml.data import parse_schema  # noqa: E402
from blockfedml.ml.adapters import make_model_for  # noqa: E402
from blockfedml.ml.adapters.torch import TorchModel  # noqa: E402
from blockfedml.ml.serialization import params_from_bytes, model_to_bytes  # noqa: E402

from adapter_helpers import compare  # noqa: E402

NET = '''
import torch

class Net(torch.nn.Module):
    """One hidden layer of 32 ReLU units."""

    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.hidden = torch.nn.Linear(n_features, 32)
        self.out = torch.nn.Linear(32, n_outputs)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))
'''


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def test_layout_determinism_and_loading_back_into_a_module(net_file) -> None:
    schema = parse_schema({"label": {"name": "y", "classes": [0, 1, 2]}, "features": [f"x{i}" for i in range(5)]})
    model = make_model_for(f"torch:{net_file}:Net", schema, seed=3)
    assert isinstance(model, TorchModel) and model.n_params == 5 * 32 + 32 + 32 * 3 + 3
    assert model.meta()["names"] == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    twin = make_model_for(f"torch:{net_file}:Net", schema, seed=3)
    np.testing.assert_array_equal(model.get_params(), twin.get_params())  # every member builds the same genesis

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 3, 60)
    model.fit(X, y, epochs=2, lr=0.1, batch_size=8, seed=4)
    twin.fit(X, y, epochs=2, lr=0.1, batch_size=8, seed=4)
    np.testing.assert_array_equal(model.get_params(), twin.get_params())  # seeded: a round can be replayed

    params, meta = params_from_bytes(model_to_bytes(model))
    fresh = make_model_for(f"torch:{net_file}:Net", schema, seed=9)
    fresh.set_params(params)
    module = fresh.to_module()  # a plain nn.Module holding the checkpoint
    with torch.no_grad():
        logits = module(torch.from_numpy(X).float())
    np.testing.assert_array_equal(logits.argmax(dim=1).numpy(), model.predict(X))

    regression = parse_schema({"task": "regression", "label": {"name": "y", "range": [-9, 9]}, "features": ["a"]})
    regressor = make_model_for(f"torch:{net_file}:Net", regression)
    regressor.fit(rng.normal(size=(40, 1)), rng.normal(size=40), epochs=1)
    assert set(regressor.evaluate(rng.normal(size=(10, 1)), rng.normal(size=10))) == {"rmse", "r2"}


def test_digits_network_within_two_points_of_central(net_file, tmp_path) -> None:
    result = compare(tmp_path / "c", "digits", f"torch:{net_file}:Net", rounds=15, epochs=2, lr=0.05, batch_size=16)
    assert result.central > 0.95, result
    assert result.federated >= result.central - 0.02, result
