"""Every bad input is refused with a message naming file, row and column, and changes nothing.

Each case goes through what a member really runs (``run_member``, the code of
``blockfedml member run``) against a consortium on a real embedded ledger and
store, and asserts that neither the ledger nor the store changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blockfedml import ledger_host
from blockfedml.cli.main import app
from blockfedml.data import DataFileError
from blockfedml.data.run import own_data_session, run_member
from blockfedml.errors import NotFoundError

from data_helpers import EXAMPLE, snapshot


def edit(source: Path, target: Path, fn) -> Path:
    """Copy ``source`` to ``target`` with its lines (header first) changed by ``fn``."""
    lines = source.read_text().splitlines()
    target.write_text("\n".join(fn(lines)) + "\n")
    return target


def set_cell(lines: list[str], line: int, column: str, value: str) -> list[str]:
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    return lines


def drop_column(lines: list[str], column: str) -> list[str]:
    index = lines[0].split(",").index(column)
    return [",".join(c for i, c in enumerate(line.split(",")) if i != index) for line in lines]


CASES = {
    # name: (change to hospital2.csv, expected row, expected column, words in the message)
    "missing column": (lambda ls: drop_column(ls, "mean area"), None, "mean area", "missing from the header"),
    "missing label column": (lambda ls: drop_column(ls, "diagnosis"), None, "diagnosis", "label column"),
    "extra column": (lambda ls: [ls[0] + ",ward"] + [l + ",3" for l in ls[1:]], None, "ward",
                     "not in the consortium's schema"),
    "duplicate column": (lambda ls: [ls[0].replace("mean texture", "mean radius")] + ls[1:], None, None,
                         "more than once"),
    "non-numeric value": (lambda ls: set_cell(ls, 8, "mean area", "n/a?"), 7, "mean area", "is not a finite number"),
    "infinite value": (lambda ls: set_cell(ls, 5, "worst area", "inf"), 4, "worst area", "is not a finite number"),
    "label outside the classes": (lambda ls: set_cell(ls, 4, "diagnosis", "benign?"), 3, "diagnosis",
                                  "not one of the agreed classes"),
    "missing label": (lambda ls: set_cell(ls, 10, "diagnosis", ""), 9, "diagnosis", "labels are never imputed"),
    "header only": (lambda ls: ls[:1], None, None, "no data rows"),
    "empty file": (lambda ls: [], None, None, "empty"),
    "ragged row": (lambda ls: ls[:6] + [ls[6] + ",1,2"] + ls[7:], None, None, "cannot be read"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_refused_and_changes_nothing(case, data_consortium, hospitals, tmp_path) -> None:
    change, row, column, words = CASES[case]
    path = edit(hospitals / "hospital2.csv", tmp_path / "hospital2.csv", change)
    if case == "empty file":
        path.write_text("")
    before = snapshot(data_consortium)
    with pytest.raises(DataFileError) as caught:
        run_member(data_consortium, "Org2", path, label="diagnosis", rounds=1, timeout=5)
    error = caught.value
    assert error.path == str(path) and str(path) in str(error)
    assert words in str(error)
    assert error.row == row and error.column == column
    if row is not None:
        assert f"row {row} (line {row + 1})" in str(error)
    if column is not None:
        assert repr(column) in str(error)
    assert snapshot(data_consortium) == before


def test_first_bad_cell_is_reported_with_a_count(data_consortium, hospitals, tmp_path) -> None:
    def two_bad(lines):
        set_cell(lines, 20, "mean radius", "x")
        return set_cell(lines, 12, "mean radius", "y")

    path = edit(hospitals / "hospital1.csv", tmp_path / "h.csv", two_bad)
    with pytest.raises(DataFileError, match=r"row 11 \(line 12\), column 'mean radius': 'y' .*1 more such cells"):
        run_member(data_consortium, "Org1", path, rounds=1, timeout=5)


def test_wrong_label_option_and_missing_file(data_consortium, hospitals, tmp_path) -> None:
    before = snapshot(data_consortium)
    with pytest.raises(DataFileError, match="--label 'outcome' is not the consortium's label column"):
        run_member(data_consortium, "Org1", hospitals / "hospital1.csv", label="outcome", timeout=5)
    with pytest.raises(NotFoundError, match="does not exist"):
        run_member(data_consortium, "Org1", tmp_path / "nowhere.csv", timeout=5)
    assert snapshot(data_consortium) == before


def test_one_bad_file_stops_an_in_process_session_before_anything(data_consortium, hospitals, tmp_path) -> None:
    bad = edit(hospitals / "hospital3.csv", tmp_path / "h3.csv", lambda ls: set_cell(ls, 3, "diagnosis", "maybe"))
    before = snapshot(data_consortium)
    with pytest.raises(DataFileError, match="h3.csv, row 2"):
        own_data_session(data_consortium, {"Org1": hospitals / "hospital1.csv", "Org2": hospitals / "hospital2.csv",
                                           "Org3": bad})
    assert snapshot(data_consortium) == before  # Org1 and Org2 did not even join


def test_cli_refuses_with_one_clear_line(data_consortium, hospitals, tmp_path) -> None:
    bad = edit(hospitals / "hospital1.csv", tmp_path / "h1.csv", lambda ls: set_cell(ls, 2, "mean area", "abc"))
    before = snapshot(data_consortium)
    runner = CliRunner()
    for command in ("check", "run"):
        with ledger_host.serving(data_consortium.workdir):  # `member run` reaches the ledger through it
            result = runner.invoke(app, ["member", command, "-w", str(data_consortium.workdir), "--org", "Org1",
                                         "--data", str(bad), "--label", "diagnosis"])
        output = " ".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 1
        assert "DataFileError" in output and "row 1 (line 2), column 'mean area'" in output
    assert snapshot(data_consortium) == before


def test_bad_schema_files_change_nothing(data_consortium, tmp_path) -> None:
    schema = json.loads((EXAMPLE / "schema.json").read_text())
    cases = {
        "not json": "{",
        "unknown type": json.dumps({**schema, "features": [{"name": "a", "type": "text"}]}),
        "one class": json.dumps({**schema, "label": {"name": "diagnosis", "classes": ["benign"]}}),
        "metric of another task": json.dumps({**schema, "metric": "rmse"}),
        "label is a feature": json.dumps({**schema, "label": {"name": "mean radius", "classes": [0, 1]}}),
        "fewer features than the genesis model": json.dumps({**schema, "features": schema["features"][:5]}),
    }
    before = snapshot(data_consortium)
    runner = CliRunner()
    for name, text in cases.items():
        path = tmp_path / "schema.json"
        path.write_text(text)
        result = runner.invoke(app, ["admin", "schema", "set", str(path), "-w", str(data_consortium.workdir)])
        assert result.exit_code == 1, name
        assert "InvalidInputError" in result.output, (name, result.output)
    assert snapshot(data_consortium) == before


def test_a_bad_scaler_record_is_refused_by_members(tmp_path, hospitals, schema) -> None:
    """A member recomputes the scaler from the masked statistics; a wrong record is not used."""
    from blockfedml.consortium import Consortium
    from blockfedml.data.federated import StatsParty, close_keys, stats_status, total_statistics, verified_scaler
    from blockfedml.data.stats import Scaler, scaler_from_totals
    from blockfedml.data.table import load_table
    from blockfedml.errors import IntegrityError

    c = Consortium.create(tmp_path / "c", n_orgs=2, auditor=False, schema=schema)
    admin = c.contract("Org1")
    parties = []
    for org in ("Org1", "Org2"):
        c.contract(org).submit_json("Join")
        parties.append(StatsParty(f"{org}MSP", c.contract(org), c.store,
                                  load_table(hospitals / f"hospital{org[-1]}.csv", schema)))
        parties[-1].publish_key(1)
    close_keys(admin, 1)
    for party in parties:
        party.commit(stats_status(admin))
    good = scaler_from_totals(total_statistics(c.store, stats_status(admin)), schema)
    lie = Scaler(good.features, (0,) * len(good.mean), good.scale, good.rows, good.counts)
    admin.submit_json("data:SetScaler", 1, lie.to_record())  # the contract cannot see the statistics...
    with pytest.raises(IntegrityError, match="not the one the members' statistics give"):
        verified_scaler(c.store, schema, stats_status(admin))  # ...but every member can
    c.close()

