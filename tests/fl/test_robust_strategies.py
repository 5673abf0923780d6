"""Robust plaintext aggregators: coordinate median, trimmed mean, Krum and multi-Krum."""

from __future__ import annotations

import numpy as np
import pytest

from blockfedml.consortium import Consortium
from blockfedml.errors import InvalidInputError
from blockfedml.fl.attacks import AttackPlan
from blockfedml.fl.session import Session
from blockfedml.fl.strategy import (STRATEGIES, ClientUpdate, CoordinateMedian, FedAvg, Krum, MultiKrum,
                                    TrimmedMean, get_strategy)
from blockfedml.fl.task import TaskSpec


def updates(rows: list[list[float]], samples: list[int] | None = None) -> list[ClientUpdate]:
    samples = samples or [10] * len(rows)
    return [ClientUpdate(f"Org{i}", np.array(r, dtype=float), n) for i, (r, n) in enumerate(zip(rows, samples))]


def honest_and_outliers(seed: int = 0) -> tuple[list[ClientUpdate], np.ndarray]:
    """Seven updates around (1, 1, 1, 1), two far away (a scaled and a flipped one)."""
    rng = np.random.default_rng(seed)
    honest = 1.0 + 0.05 * rng.standard_normal((7, 4))
    rows = [*honest.tolist(), [40.0] * 4, [-30.0] * 4]
    return updates(rows), honest


def test_coordinate_median_ignores_weights_and_outliers() -> None:
    ups = updates([[1, 10], [2, 20], [3, 30], [100, -100], [4, 40]], samples=[1, 1, 1, 1000, 1])
    assert CoordinateMedian().aggregate(ups).tolist() == [3.0, 20.0]


def test_trimmed_mean_drops_both_ends_per_coordinate() -> None:
    ups = updates([[1, 5], [2, 4], [3, 3], [4, 2], [100, -100]])
    assert TrimmedMean(0.2).aggregate(ups).tolist() == [3.0, 3.0]  # one value cut at each end
    assert TrimmedMean(0.0).aggregate(ups).tolist() == pytest.approx([22.0, -17.2])
    with pytest.raises(InvalidInputError, match="beta"):
        TrimmedMean(0.5)


def test_krum_keeps_an_honest_update_and_multi_krum_averages_honest_ones() -> None:
    ups, honest = honest_and_outliers()
    kept = Krum(f=2).select(ups)
    assert len(kept) == 1 and kept[0] < 7
    multi = MultiKrum(f=2)
    assert sorted(multi.select(ups)) == list(range(7))
    assert np.allclose(multi.aggregate(ups), honest.mean(axis=0))
    assert np.abs(FedAvg().aggregate(ups) - 1.0).max() > 0.5   # what the outliers do to plain averaging


def test_robust_rules_stay_within_the_honest_range() -> None:
    ups, honest = honest_and_outliers(seed=3)
    low, high = honest.min(axis=0), honest.max(axis=0)
    for strategy in (CoordinateMedian(), TrimmedMean(0.25), Krum(), MultiKrum()):
        result = strategy.aggregate(ups)
        assert np.all(result >= low - 1e-12) and np.all(result <= high + 1e-12), strategy.name


def test_results_do_not_depend_on_arrival_order() -> None:
    ups, _ = honest_and_outliers(seed=5)
    for strategy in (CoordinateMedian(), TrimmedMean(), Krum(), MultiKrum()):
        assert np.array_equal(strategy.aggregate(ups), strategy.aggregate(ups[::-1])), strategy.name


def test_krum_refuses_too_few_updates_and_bad_options() -> None:
    with pytest.raises(InvalidInputError, match="n >= 2f \\+ 3"):
        Krum(f=2).aggregate(updates([[1.0]] * 6))
    with pytest.raises(InvalidInputError, match="at least 3"):
        Krum(f=0).aggregate(updates([[1.0], [2.0]]))


def test_krum_with_its_default_f_keeps_every_update_of_a_pair() -> None:
    """An attribution group of 2 has no majority to keep: (multi-)Krum averages it instead of stalling."""
    for rule in (Krum(), MultiKrum()):
        assert np.array_equal(rule.aggregate(updates([[1.0], [3.0]])), np.array([2.0]))
        assert np.array_equal(rule.aggregate(updates([[5.0]])), np.array([5.0]))


def test_krum_refuses_bad_options() -> None:
    with pytest.raises(InvalidInputError, match="m must be at least 1"):
        Krum(m=0)
    with pytest.raises(InvalidInputError, match="non-negative integer"):
        Krum(f=-1)
    with pytest.raises(InvalidInputError, match="NaN"):
        CoordinateMedian().aggregate(updates([[1.0], [float("nan")], [2.0]]))


def test_registry_names_every_rule() -> None:
    assert STRATEGIES == ("fedavg", "median", "trimmed_mean", "krum", "multi_krum")
    for name in STRATEGIES:
        strategy = get_strategy(name)
        assert strategy.name == name
        assert strategy.needs_individual_updates is (name != "fedavg")


def test_a_median_session_shrugs_off_a_boosted_sign_flip(tmp_path) -> None:
    """Plaintext, no other defense: FedAvg collapses, the coordinate median does not."""
    finals = {}
    for name in ("fedavg", "median"):
        c = Consortium.create(tmp_path / name, n_orgs=5, task=TaskSpec(), auditor=False,
                              settings={"rollback_tolerance": 1_000_000})
        try:
            session = Session(c, attack=AttackPlan("sign_flip", 0.2), strategy=get_strategy(name))
            finals[name] = session.run(3)[-1].head_accuracy
        finally:
            c.close()
    assert finals["median"] > 0.85
    assert finals["median"] - finals["fedavg"] > 0.2, finals
