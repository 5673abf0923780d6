"""Own-data sessions on a real embedded ledger: records on the ledger, checkpoints back in sklearn, RMSE rollbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blockfedml.consortium import Consortium
from blockfedml.data import parse_schema
from blockfedml.data.federated import stats_status
from blockfedml.data.run import own_data_session
from blockfedml.fl.checkpoints import load_checkpoint
from blockfedml.fl.task import TaskSpec
from blockfedml.ml.adapters import SklearnModel
from blockfedml.ml.serialization import load_params

from data_helpers import snapshot


def test_hospitals_in_one_process(tmp_path, hospitals, schema) -> None:
    task = TaskSpec(model='sklearn:SGDClassifier{"loss": "log_loss", "random_state": 0}', epochs=2)
    c = Consortium.create(tmp_path / "c", n_orgs=3, task=task, schema=schema)
    files = {f"Org{i}": hospitals / f"hospital{i}.csv" for i in (1, 2, 3)}
    session = own_data_session(c, files, test=hospitals / "test.csv")
    results = session.run(3)
    admin = c.contract("Auditor")

    assert [r.status for r in results] == ["accepted"] * 3 and results[-1].metric == "accuracy"
    assert results[-1].test_accuracy > 0.93 and len(results[-1].participants) == 3
    record = admin.evaluate_json("data:GetSchema")
    assert record["digest"] == schema.digest and c.store.get(schema.digest) == schema.to_bytes()
    status = stats_status(admin)
    assert status["parties"] == ["Org1MSP", "Org2MSP", "Org3MSP"] and status["scaler"]["scaler"]["rows"] == 456
    assert [m.data.X_train.shape[1] for m in session.members] == [30, 30, 30]
    # every masked statistics blob is in the store under its committed digest; none is a member's plain vector
    for party, commit in status["commits"].items():
        assert len(c.store.get(commit["digest"])) == commit["size"]

    # the head checkpoint, loaded back into a plain scikit-learn estimator
    head = admin.evaluate_json("GetHead")
    params, meta = load_params(c.store, head["checkpoint"])
    assert meta["kind"] == "sklearn" and meta["estimator"] == "SGDClassifier" and meta["shapes"] == [[1, 30], [1]]
    from sklearn.linear_model import SGDClassifier

    model = load_checkpoint(c.store, head["checkpoint"], SklearnModel(SGDClassifier(loss="log_loss"), 30, 2))
    estimator = model.to_estimator()
    X, y = session.X_test, session.y_test
    assert estimator.score(X, y) == pytest.approx(results[-1].test_accuracy)
    np.testing.assert_array_equal(estimator.coef_.ravel(), params[:30])
    c.close()


def regression_files(tmp_path):
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    frame = pd.DataFrame(data.data, columns=data.feature_names)
    frame["progression"] = data.target
    order = np.random.default_rng(0).permutation(len(frame))
    files = {}
    for i, rows in enumerate(np.array_split(order, 3), start=1):
        files[f"Org{i}"] = tmp_path / f"clinic{i}.parquet"
        frame.iloc[rows].to_parquet(files[f"Org{i}"])
    schema = parse_schema({"task": "regression", "label": {"name": "progression", "range": [0, 400]},
                           "features": list(data.feature_names), "metric": "rmse"})
    return files, schema


def test_regression_with_rmse_rolls_back_a_worse_model(tmp_path) -> None:
    files, schema = regression_files(tmp_path)
    c = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(model="sklearn:SGDRegressor"), schema=schema,
                          settings={"rollback_tolerance": 1_000_000})  # one RMSE point
    assert c.contract("Org1").evaluate_json("GetSettings")["higher_is_better"] == 0
    session = own_data_session(c, files)
    first = session.run(1)[0]
    assert first.status == "accepted" and first.metric == "rmse"
    assert 40 < first.endorsed_metric < 120     # RMSE in the target's units, down from ~160 for the zero model

    # the next aggregator proposes a sabotaged model (weights negated): RMSE goes up, so it is rolled back
    aggregator = next(m for m in session.members if m.msp_id == "Org2MSP")
    honest_set = aggregator.model.set_params
    aggregator.model.set_params = lambda params: honest_set(-params)
    second = session.run_round()
    assert second.status == "rolled_back" and second.endorsed_metric > first.endorsed_metric
    head = c.contract("Org1").evaluate_json("GetHead")
    assert head["round"] == 1 and head["metric"] == round(first.endorsed_metric * 1e6)
    c.close()


def test_schema_can_change_before_the_first_round_only(tmp_path, hospitals, schema) -> None:
    import json

    from typer.testing import CliRunner

    from blockfedml.cli.main import app

    c = Consortium.create(tmp_path / "c", n_orgs=3, schema=schema)
    changed = tmp_path / "schema.json"
    changed.write_text(json.dumps({**schema.to_dict(), "missing": "drop"}))
    runner = CliRunner()
    result = runner.invoke(app, ["admin", "schema", "set", str(changed), "-w", str(c.workdir), "--json"])
    assert result.exit_code == 0, result.output
    record = c.contract("Org2").evaluate_json("data:GetSchema")
    assert record["epoch"] == 2 and record["digest"] != schema.digest
    assert json.loads(c.store.get(record["digest"]))["missing"] == "drop"

    own_data_session(c, {f"Org{i}": hospitals / f"hospital{i}.csv" for i in (1, 2, 3)}).run(1)
    changed.write_text(json.dumps({**schema.to_dict(), "metric": "f1"}))
    before = snapshot(c)
    result = runner.invoke(app, ["admin", "schema", "set", str(changed), "-w", str(c.workdir)])
    assert result.exit_code == 1 and "before the first round" in " ".join(result.output.split())
    assert snapshot(c) == before  # the refused schema's bytes did not reach the store either
    c.close()
