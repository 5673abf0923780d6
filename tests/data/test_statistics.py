"""Federated statistics: the secure sum is exact and hides each vector; the scaler is StandardScaler's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from blockfedml.data import load_table
from blockfedml.data.schema import parse_schema
from blockfedml.data.secure_sum import PairwiseMasking, secure_total
from blockfedml.data.stats import FIXED_POINT, decode, encode, local_statistics, prepare, scaler_from_totals
from blockfedml.data.table import LocalTable
from blockfedml.errors import CryptoError, InvalidInputError

ATOL = 1.0 / FIXED_POINT  # one fixed-point unit


def test_secure_sum_is_exact_and_masked_vectors_look_random() -> None:
    rng = np.random.default_rng(0)
    vectors = {f"Org{i}MSP": rng.integers(0, 2**63, 500, dtype=np.uint64) for i in range(4)}
    expected = np.zeros(500, dtype=np.uint64)
    for v in vectors.values():
        expected += v
    np.testing.assert_array_equal(secure_total(vectors, context=1), expected)

    scheme = PairwiseMasking()
    keys = {org: scheme.keypair() for org in vectors}
    public = {org: k[1] for org, k in keys.items()}
    zeros = np.zeros(500, dtype=np.uint64)
    masked = scheme.mask("Org0MSP", keys["Org0MSP"][0], public, zeros, context=1)
    assert np.count_nonzero(masked) == 500                    # all-zero input, yet nothing shows through
    assert 0.4 < np.mean(masked >> np.uint64(63)) < 0.6        # top bit is a coin flip
    other = scheme.mask("Org0MSP", keys["Org0MSP"][0], public, zeros, context=2)
    assert not np.array_equal(masked, other)                   # masks are bound to the epoch
    with pytest.raises(CryptoError, match="not the key of this private key"):
        scheme.mask("Org1MSP", keys["Org0MSP"][0], public, zeros, context=1)
    with pytest.raises(InvalidInputError, match="at least two parties"):
        scheme.mask("Org0MSP", keys["Org0MSP"][0], {"Org0MSP": public["Org0MSP"]}, zeros, context=1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-(2**200), 2**200), min_size=3, max_size=3), min_size=1, max_size=6))
def test_statistics_encoding_sums_exactly(parts) -> None:
    total = np.zeros(3 * 8, dtype=np.uint64)
    for values in parts:
        total += encode(values)
    assert decode(total) == [sum(column) for column in zip(*parts)]


def test_encoding_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(InvalidInputError, match="beyond"):
        encode([2**240])
    schema = parse_schema({"label": {"name": "y", "classes": [0, 1]}, "features": ["income"]})
    table = LocalTable("big.csv", schema, np.array([[1e10]]), np.array([0]), 1, 0)
    with pytest.raises(InvalidInputError, match="big.csv: feature 'income' .* rescale"):
        local_statistics(table)


@pytest.mark.parametrize("policy", ["impute_mean", "drop"])
def test_federated_scaler_equals_standard_scaler_on_the_union(policy, hospitals, schema) -> None:
    from dataclasses import replace

    schema = replace(schema, missing=policy)
    tables = {f"Org{i}MSP": load_table(hospitals / f"hospital{i}.csv", schema) for i in (1, 2, 3)}
    totals = decode(secure_total({org: encode(local_statistics(t)) for org, t in tables.items()}, context=1))
    scaler = scaler_from_totals(totals, schema)

    union = np.concatenate([t.X for t in tables.values()])
    assert np.isnan(union).any() == (policy == "impute_mean")
    reference = StandardScaler().fit(SimpleImputer(strategy="mean").fit_transform(union))
    np.testing.assert_allclose(scaler.mean_, reference.mean_, rtol=0, atol=ATOL)
    np.testing.assert_allclose(scaler.scale_, reference.scale_, rtol=0, atol=ATOL)
    assert scaler.rows == len(union)

    # applied by a member: impute with the federated mean, then standardize
    part = tables["Org2MSP"]
    expected = reference.transform(np.where(np.isnan(part.X), reference.mean_, part.X))
    np.testing.assert_allclose(scaler.transform(part.X), expected, rtol=0, atol=1e-3)
    data = prepare(part, scaler, val_fraction=0.25, seed=3)
    assert len(data.y_val) == round(0.25 * part.n_rows) and not np.isnan(data.X_train).any()
    assert sorted(data.indices) == list(range(part.n_rows))


def test_a_constant_feature_gets_scale_one() -> None:
    schema = parse_schema({"label": {"name": "y", "classes": [0, 1]}, "features": ["a", "b"]})
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    scaler = scaler_from_totals(local_statistics(LocalTable("t", schema, X, np.array([0, 1, 0]), 3, 0)), schema)
    assert scaler.scale[1] == FIXED_POINT and scaler.mean == (2 * FIXED_POINT, 5 * FIXED_POINT)
    np.testing.assert_allclose(scaler.transform(X)[:, 1], 0.0)
