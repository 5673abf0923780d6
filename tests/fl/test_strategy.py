"""FedAvg and the strategy interface."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockfedml.errors import InvalidInputError
from blockfedml.fl.strategy import STRATEGIES, ClientUpdate, FedAvg, Strategy, get_strategy


def u(org, params, n):
    return ClientUpdate(org, np.asarray(params, dtype=np.float64), n)


def test_weighted_by_sample_counts():
    out = FedAvg().aggregate([u("a", [0.0, 10.0], 1), u("b", [4.0, 2.0], 3)])
    assert np.allclose(out, [3.0, 4.0])  # (0*1 + 4*3)/4, (10*1 + 2*3)/4


def test_paper_weights_p_i_equal_n_i_over_n():
    rng = np.random.default_rng(0)
    counts = [10, 20, 70]
    params = [rng.normal(size=5) for _ in counts]
    out = FedAvg().aggregate([u(f"org{i}", p, n) for i, (p, n) in enumerate(zip(params, counts))])
    expected = sum(n / 100 * p for p, n in zip(params, counts))
    assert np.allclose(out, expected)


@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3), min_size=1, max_size=6),
       st.integers(1, 10_000))
def test_equal_counts_give_plain_mean(vectors, n):
    ups = [u(f"org{i}", v, n) for i, v in enumerate(vectors)]
    assert np.allclose(FedAvg().aggregate(ups), np.mean(vectors, axis=0), rtol=1e-12, atol=1e-6)


def test_single_update_is_returned_as_new_array():
    params = np.array([1.0, 2.0])
    out = FedAvg().aggregate([u("a", params, 5)])
    assert np.array_equal(out, params) and out is not params


def test_order_independent_bit_for_bit():
    rng = np.random.default_rng(1)
    ups = [u(f"org{i}", rng.normal(size=100), int(rng.integers(1, 500))) for i in range(7)]
    a = FedAvg().aggregate(ups)
    b = FedAvg().aggregate(list(reversed(ups)))
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("updates,match", [
    ([], "empty"),
    ([u("a", [1.0, 2.0], 1), u("b", [1.0], 1)], "has 1 parameters, others have 2"),
    ([u("a", [1.0], 0)], "num_samples"),
    ([u("a", [1.0], -3)], "num_samples"),
    ([u("a", [1.0], True)], "num_samples"),
    ([ClientUpdate("a", np.array([1.0]), 2.5)], "num_samples"),
    ([u("a", [[1.0]], 1)], "flat"),
    ([u("a", [np.nan], 1)], "NaN"),
    ([u("a", [1.0], 1), u("a", [2.0], 1)], "more than one update"),
    ([u("", [1.0], 1)], "org"),
    ([(("a", [1.0], 1))], "ClientUpdate"),
])
def test_bad_updates(updates, match):
    with pytest.raises(InvalidInputError, match=match):
        FedAvg().aggregate(updates)


def test_registry():
    assert "fedavg" in STRATEGIES
    strategy = get_strategy("fedavg")
    assert isinstance(strategy, Strategy) and isinstance(strategy, FedAvg)
    assert strategy.needs_individual_updates is False
    with pytest.raises(InvalidInputError, match="allowed values: fedavg"):
        get_strategy("bulyan")
