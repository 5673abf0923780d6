"""A member's own table, read and checked against the consortium's schema.

This runs before a member sends anything: a file that does not fit the schema
must fail here, with a message that names the file, the row and the column,
so the member fixes the file and nothing half-done reaches the ledger or the
store. The checks are whole-column (pandas, vectorized) and then report the
first offending cell in reading order, plus how many more there are.

Rows are numbered from 1 for the first data row; for CSV files the message
also gives the line of the file (the header is line 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blockfedml.data.schema import MISSING_MARKERS, DataSchema
from blockfedml.errors import InvalidInputError, NotFoundError

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataFileError(InvalidInputError):
    """A member's data file does not fit the schema (``path``, ``row``, ``column`` say where)."""

    def __init__(self, path: Path | str, message: str, row: int | None = None,
                 column: str | None = None, line: int | None = None) -> None:
        self.path, self.row, self.column = str(path), row, column
        where = [str(path)]
        if row is not None:
            where.append(f"row {row}" + (f" (line {line})" if line is not None else ""))
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True, eq=False)
class LocalTable:
    """A member's rows in the schema's feature order, before scaling.

    ``X`` is float64 with NaN for missing cells (only under ``impute_mean``:
    under ``drop`` those rows are already gone); ``y`` holds class indices
    (int64, the schema's class order) or targets (float64).
    """

    path: str
    schema: DataSchema
    X: np.ndarray
    y: np.ndarray
    rows_read: int
    rows_dropped: int

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_missing(self) -> int:
        """Missing feature cells left to impute."""
        return int(np.isnan(self.X).sum())


def load_table(path: Path | str, schema: DataSchema, label: str | None = None) -> LocalTable:
    """Read a CSV or Parquet file and check it against ``schema``.

    ``label``, when given, must be the schema's label column (a guard against
    pointing at the wrong consortium). Raises :class:`DataFileError` for every
    mismatch; never writes anything.
    """
    path = Path(path)
    if label is not None and label != schema.label:
        raise DataFileError(path, f"--label {label!r} is not the consortium's label column; "
                                  f"the agreed schema says {schema.label!r}")
    frame, is_csv = _read(path)
    _check_columns(path, frame.columns, schema)
    if len(frame) == 0:
        raise DataFileError(path, "the file has a header but no data rows")

    def fail(message: str, index: int, column: str, more: int = 0) -> DataFileError:
        extra = f" ({more} more such cells in this file)" if more else ""
        return DataFileError(path, message + extra, row=index + 1, column=column,
                             line=index + 2 if is_csv else None)

    columns = []
    missing_any = np.zeros(len(frame), dtype=bool)
    for feature in schema.features:
        values, missing, bad = _numeric(frame[feature.name])
        if feature.type == "int":
            bad |= ~missing & ~bad & (values != np.round(values))
        columns.append((feature, values, missing, bad))
        missing_any |= missing
    y, label_missing, label_bad, label_reason = _label(frame[schema.label], schema)

    # Report the first bad cell in reading order (row, then schema column order).
    problems = []
    for feature, values, missing, bad in columns:
        if bad.any():
            i = int(np.argmax(bad))
            raw = frame[feature.name].iloc[i]
            what = "an integer" if feature.type == "int" else "a finite number"
            problems.append((i, fail(f"{raw!r} is not {what} (feature type {feature.type})", i,
                                     feature.name, int(bad.sum()) - 1)))
    if label_bad.any():
        i = int(np.argmax(label_bad))
        problems.append((i, fail(label_reason(frame[schema.label].iloc[i]), i, schema.label,
                                 int(label_bad.sum()) - 1)))
    if label_missing.any() and schema.missing != "drop":
        i = int(np.argmax(label_missing))
        problems.append((i, fail("the label is missing; labels are never imputed (fill it in, or "
                                 "agree on missing: drop)", i, schema.label, int(label_missing.sum()) - 1)))
    if problems:
        raise min(problems, key=lambda p: p[0])[1]

    X = np.column_stack([values for _, values, _, _ in columns]).astype(np.float64)
    keep = np.ones(len(frame), dtype=bool)
    if schema.missing == "drop":
        keep = ~(missing_any | label_missing)
        if not keep.any():
            raise DataFileError(path, f"all {len(frame)} rows have a missing cell, and the schema "
                                      "drops such rows: nothing is left")
    return LocalTable(path=str(path), schema=schema, X=X[keep], y=y[keep],
                      rows_read=len(frame), rows_dropped=int((~keep).sum()))


def _read(path: Path):
    import pandas as pd

    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    if not path.is_file():
        raise DataFileError(path, "is not a file")
    name = path.name.lower()
    try:
        if name.endswith(PARQUET_SUFFIXES):
            frame = pd.read_parquet(path)
            frame.columns = [str(c) for c in frame.columns]
            return frame, False
        if name.endswith(CSV_SUFFIXES):
            if path.stat().st_size == 0:
                raise DataFileError(path, "the file is empty (no header, no rows)")
            sep = "\t" if name.endswith(".tsv") else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
            # pandas renames a repeated column ("a", "a.1"); the file's own header is what counts
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
            frame.columns = [str(c) for c in header.iloc[0]]
            return frame, True
    except DataFileError:
        raise
    except pd.errors.EmptyDataError:
        raise DataFileError(path, "the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataFileError(path, f"cannot be read: {str(exc).strip()}") from None
    except Exception as exc:  # pyarrow's own errors for a damaged Parquet file
        raise DataFileError(path, f"cannot be read as Parquet: {exc}") from None
    raise DataFileError(path, f"unsupported file type; use CSV ({', '.join(CSV_SUFFIXES)}) "
                              f"or Parquet ({', '.join(PARQUET_SUFFIXES)})")


def _check_columns(path: Path, columns, schema: DataSchema) -> None:
    names = [str(c).strip() for c in columns]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataFileError(path, f"column {dupes[0]!r} appears more than once in the header")
    expected = schema.feature_names + [schema.label]
    missing = [n for n in expected if n not in names]
    if missing:
        what = "the label column" if missing[0] == schema.label else "a feature column the schema requires"
        raise DataFileError(path, f"{what} is missing from the header"
                                  + (f" ({len(missing)} columns missing in all: {missing})" if len(missing) > 1 else ""),
                            column=missing[0])
    extra = [n for n in names if n not in expected]
    if extra:
        raise DataFileError(path, "this column is not in the consortium's schema; remove it (or ask the "
                                  "admin to add it to the schema)"
                                  + (f" ({len(extra)} extra columns: {extra})" if len(extra) > 1 else ""),
                            column=extra[0])
    padded = [str(c) for c in columns if str(c) != str(c).strip()]
    if padded:
        raise DataFileError(path, "the column name has leading or trailing spaces; remove them",
                            column=padded[0])


def _numeric(series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, missing, bad) for one column: floats, empty cells, cells that are not finite numbers."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        values = np.full(len(series), np.nan)
        return values, np.zeros(len(series), bool), np.ones(len(series), bool)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, np.isinf(values)
    text = series.astype("string").str.strip()
    missing = (text.isna() | text.isin(MISSING_MARKERS)).to_numpy(dtype=bool)
    values = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~missing & ~np.isfinite(values)
    return values, missing, bad


def _label(series, schema: DataSchema):
    """(y, missing, bad, reason(raw) -> message) for the label column."""
    values, missing, bad = _numeric(series)
    if not schema.is_classification:
        low, high = schema.target_range
        outside = ~missing & ~bad & ((values < low) | (values > high))
        reason = (lambda raw: f"label {raw!r} is not a number" if not _is_number(raw)
                  else f"label {raw!r} is outside the agreed target range [{low}, {high}]")
        return values, missing, bad | outside, reason
    index = {str(c): i for i, c in enumerate(schema.classes)}
    y = np.array([index.get(t, index.get(_as_integer_text(v), -1))
                  for t, v in zip(_texts(series), values)], dtype=np.int64)
    bad = ~missing & (y < 0)
    allowed = ", ".join(repr(c) for c in schema.classes)
    return y, missing, bad, lambda raw: f"label {raw!r} is not one of the agreed classes ({allowed})"


def _texts(series) -> list[str]:
    return [str(t) for t in series.astype("string").str.strip().fillna("")]


def _as_integer_text(value: float) -> str:
    """1.0 reads as "1", so a numeric label column matches integer classes."""
    return str(int(value)) if np.isfinite(value) and value == int(value) else ""


def _is_number(raw) -> bool:
    try:
        return np.isfinite(float(raw))
    except (TypeError, ValueError):
        return False
