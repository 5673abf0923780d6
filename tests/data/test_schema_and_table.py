"""The schema and the file checks, without a ledger: formats, policies, types, ranges."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from blockfedml.data import DataFileError, load_schema, load_table, parse_schema
from blockfedml.data.schema import DataSchema
from blockfedml.errors import InvalidInputError

from data_helpers import EXAMPLE

REGRESSION = {"task": "regression", "label": {"name": "progression", "range": [0, 400]},
              "features": [{"name": "age", "type": "int"}, {"name": "bmi"}], "missing": "drop"}


def test_the_digest_is_of_the_canonical_form(tmp_path) -> None:
    schema = load_schema(EXAMPLE / "schema.json")
    reformatted = tmp_path / "schema.json"
    reformatted.write_text(json.dumps(json.loads((EXAMPLE / "schema.json").read_text()), indent=7))
    assert load_schema(reformatted).digest == schema.digest
    assert DataSchema.from_bytes(schema.to_bytes()) == schema
    assert schema.n_features == 30 and schema.classes == ("malignant", "benign") and schema.higher_is_better
    regression = parse_schema(REGRESSION)
    assert regression.metric == "rmse" and not regression.higher_is_better and regression.n_classes == 0


@pytest.mark.parametrize("change, words", [
    ({"task": "ranking"}, "task must be one of"),
    ({"features": []}, "non-empty list"),
    ({"features": [{"name": "age"}, {"name": "age"}]}, "listed twice"),
    ({"features": [{"name": "age", "unit": "y"}]}, "unknown keys ['unit']"),
    ({"label": {"name": "progression", "range": [5, 5]}}, "low < high"),
    ({"label": {"name": "progression", "classes": [0, 1]}}, "unknown keys ['classes']"),
    ({"missing": "zero"}, "missing must be one of"),
    ({"metric": "accuracy"}, "does not fit a regression task"),
    ({"colour": 1}, "unknown schema keys"),
])
def test_schema_errors_name_the_key(change, words) -> None:
    with pytest.raises(InvalidInputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_schema({**REGRESSION, **change})


def write(path, text: str):
    path.write_text(text)
    return path


def test_columns_in_any_order_drop_policy_int_type_and_range(tmp_path) -> None:
    schema = parse_schema(REGRESSION)
    path = write(tmp_path / "t.csv", "bmi,progression,age\n22.5,150,40\n,160,41\n30.1,170.5,NA\n25,20,39\n")
    table = load_table(path, schema)
    assert table.rows_read == 4 and table.rows_dropped == 2 and table.n_rows == 2
    np.testing.assert_array_equal(table.X, [[40, 22.5], [39, 25.0]])  # schema order: age, bmi
    np.testing.assert_array_equal(table.y, [150.0, 20.0])
    with pytest.raises(DataFileError, match=r"row 2 \(line 3\), column 'age': '41.5' is not an integer"):
        load_table(write(tmp_path / "t.csv", "bmi,progression,age\n22.5,150,40\n22,160,41.5\n"), schema)
    with pytest.raises(DataFileError, match=r"column 'progression': label '401' is outside the agreed target range"):
        load_table(write(tmp_path / "t.csv", "bmi,progression,age\n22.5,401,40\n"), schema)
    with pytest.raises(DataFileError, match="all 1 rows have a missing cell"):
        load_table(write(tmp_path / "t.csv", "bmi,progression,age\n,40,40\n"), schema)


def test_impute_keeps_missing_cells_and_integer_classes_match_numbers(tmp_path) -> None:
    schema = parse_schema({"label": {"name": "y", "classes": [0, 1, 2]}, "features": ["a", "b"],
                           "missing": "impute_mean"})
    table = load_table(write(tmp_path / "t.csv", "a,b,y\n1,,2\nnull,2,0\n3,4,1.0\n"), schema)
    assert table.n_missing == 2 and table.rows_dropped == 0
    np.testing.assert_array_equal(table.y, [2, 0, 1])


def test_parquet_files_are_checked_the_same_way(tmp_path) -> None:
    schema = parse_schema({"label": {"name": "y", "classes": ["no", "yes"]}, "features": ["a", "b"],
                           "missing": "impute_mean"})
    good = tmp_path / "good.parquet"
    pd.DataFrame({"y": ["yes", "no", "no"], "a": [1.0, None, 3.0], "b": [1, 2, 3]}).to_parquet(good)
    table = load_table(good, schema)
    assert table.n_missing == 1 and list(table.y) == [1, 0, 0]
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"y": ["yes", "no"], "a": ["1.5", "two"], "b": [1, 2]}).to_parquet(bad)
    with pytest.raises(DataFileError, match=r"bad.parquet, row 2, column 'a': 'two' is not a finite number"):
        load_table(bad, schema)
    with pytest.raises(DataFileError, match="unsupported file type"):
        load_table(write(tmp_path / "t.xlsx", "a"), schema)
