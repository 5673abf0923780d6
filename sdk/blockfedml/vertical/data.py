"""A party's table for vertical learning, and the demo datasets split by columns.

A party holds an ID per entity and some numeric columns; party B also holds
the label. Files are CSV with a header: the ID column first, then features
(and, for B, a label column named on the command line). Every cell of a
feature or label column must be a number: the error names the file, the row
and the column. IDs are integers when every ID cell is an integer, strings
otherwise; A and B must agree on the type (checked during alignment).

``split_dataset`` builds the demo and benchmark data from scikit-learn's
bundled datasets: diabetes (regression) and breast cancer (classification),
columns split between A and B, each party holding a seeded random share of
the entities (so the intersection is a strict subset of both), IDs as strings.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blockfedml.errors import InvalidInputError, NotFoundError

VERTICAL_DATASETS = {"diabetes": "linear", "breast_cancer": "logistic"}


@dataclass(frozen=True, eq=False)
class PartyData:
    """One party's entities: IDs, feature columns and (party B) labels, all checked numeric and finite."""

    ids: list[Any]
    X: np.ndarray
    columns: tuple[str, ...]
    y: np.ndarray | None = None

    def __post_init__(self) -> None:
        X = np.asarray(self.X)
        if X.ndim != 2 or X.shape[0] != len(self.ids) or X.shape[1] != len(self.columns):
            raise InvalidInputError(f"features must be a matrix of {len(self.ids)} rows and {len(self.columns)} "
                                    f"columns, got shape {X.shape}")
        if X.shape[1] == 0:
            raise InvalidInputError("a party needs at least one feature column")
        try:
            numeric = X.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError("features must be numeric; convert or drop the non-numeric columns") from None
        bad = ~np.isfinite(numeric)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise InvalidInputError(f"feature {self.columns[col]!r} of ID {self.ids[row]!r} is {numeric[row, col]}; "
                                    "every feature must be a finite number")
        object.__setattr__(self, "X", numeric)
        if self.y is not None:
            y = np.asarray(self.y, dtype=np.float64)
            if y.shape != (len(self.ids),) or not np.all(np.isfinite(y)):
                raise InvalidInputError("labels must be one finite number per ID")
            object.__setattr__(self, "y", y)

    @property
    def n(self) -> int:
        return len(self.ids)

    def rows(self, ids: Sequence[Any]) -> np.ndarray:
        """Row indices of ``ids`` (``NotFoundError`` for an ID this party does not hold)."""
        index = {v: i for i, v in enumerate(self.ids)}
        missing = [v for v in ids if v not in index]
        if missing:
            raise NotFoundError(f"this party does not hold the IDs {missing[:5]}{'...' if len(missing) > 5 else ''}")
        return np.array([index[v] for v in ids], dtype=np.int64)


def load_party_csv(path: Path | str, label: str | None = None) -> PartyData:
    """Read a party's CSV: ID column first; ``label`` names party B's label column."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror}") from None
    if len(rows) < 2:
        raise InvalidInputError(f"{path} needs a header and at least one row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if len(header) < 2 or len(set(header)) != len(header):
        raise InvalidInputError(f"{path}: the header needs an ID column and at least one more, all distinct")
    if label is not None and label not in header[1:]:
        raise InvalidInputError(f"{path} has no label column {label!r}; columns: {header[1:]}")
    values = np.empty((len(body), len(header) - 1))
    ids: list[Any] = []
    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InvalidInputError(f"{path}, row {r}: {len(row)} cells, the header has {len(header)}")
        ids.append(row[0].strip())
        for c, cell in enumerate(row[1:]):
            try:
                values[r - 2, c] = float(cell)
            except ValueError:
                raise InvalidInputError(f"{path}, row {r}, column {header[c + 1]!r}: {cell!r} is not a number; "
                                        "features and labels must be numeric") from None
    if all(_is_int(v) for v in ids):
        ids = [int(v) for v in ids]
    columns = header[1:]
    if label is None:
        return PartyData(ids, values, tuple(columns))
    at = columns.index(label)
    return PartyData(ids, np.delete(values, at, axis=1), tuple(c for c in columns if c != label), values[:, at])


def save_party_csv(data: PartyData, path: Path | str, label: str = "label") -> Path:
    """Write ``data`` as CSV (atomically: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", *data.columns, *([label] if data.y is not None else [])])
            for i, entity in enumerate(data.ids):
                extra = [repr(float(data.y[i]))] if data.y is not None else []
                writer.writerow([entity, *(repr(float(v)) for v in data.X[i]), *extra])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() and text not in ("-", "")


@dataclass(frozen=True, eq=False)
class VerticalSplit:
    """A dataset split by columns: A's table, B's table (with labels), and B's held-out test IDs."""

    name: str
    model: str
    a: PartyData
    b: PartyData
    test_ids: list[str]


def split_dataset(name: str, share: float = 0.9, test_fraction: float = 0.2, seed: int = 0) -> VerticalSplit:
    """Split ``diabetes`` or ``breast_cancer`` by columns (first half to A, the rest and the label to B).

    Each party holds a random ``share`` of the entities; B holds out
    ``test_fraction`` of its IDs for evaluation (it never trains on them).
    Breast-cancer labels are 0/1; diabetes targets are raw (B standardizes).
    """
    from sklearn import datasets as skd

    if name not in VERTICAL_DATASETS:
        raise InvalidInputError(f"dataset {name!r} is unknown; choose one of {list(VERTICAL_DATASETS)}")
    if not 0 < share <= 1 or not 0 <= test_fraction < 1:
        raise InvalidInputError("share must be in (0, 1] and test_fraction in [0, 1)")
    bunch = skd.load_diabetes() if name == "diabetes" else skd.load_breast_cancer()
    X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.float64)
    columns = [str(c) for c in bunch.feature_names]
    rng = np.random.default_rng(seed)
    ids = np.array([f"E{i:05d}" for i in range(len(y))])
    half = len(columns) // 2
    a_rows = np.sort(rng.permutation(len(y))[: round(share * len(y))])
    b_rows = np.sort(rng.permutation(len(y))[: round(share * len(y))])
    test = rng.permutation(b_rows)[: round(test_fraction * len(b_rows))]
    a = PartyData(ids[a_rows].tolist(), X[a_rows, :half], tuple(columns[:half]))
    b = PartyData(ids[b_rows].tolist(), X[b_rows, half:], tuple(columns[half:]), y[b_rows])
    return VerticalSplit(name, VERTICAL_DATASETS[name], a, b, sorted(ids[test].tolist()))
