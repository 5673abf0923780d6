"""Pieces the benchmarks share: the same-run storage reference and a per-step clock.

The scripts run as ``python bench/bench_x.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def raw_sqlite_rate(folder: Path, n: int = 1000, value_bytes: int = 400) -> float:
    """INSERT + COMMIT per row, WAL, synchronous=FULL: the storage's own ceiling on this machine now
    (printed beside a benchmark's figures, so a loaded machine shows as such)."""
    db = sqlite3.connect(folder / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (i, b"v" * value_bytes))
        db.execute("COMMIT")
    rate = n / (time.perf_counter() - t0)
    db.close()
    return rate


class Clock:
    """Seconds per step and party: ``with clock("seal", org):``."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    def __call__(self, step: str, party: str = "") -> "Clock":
        self._key = (step, party)
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        step, party = self._key
        self.steps.setdefault(step, {})[party] = time.perf_counter() - self._start

    def add(self, step: str, party: str, seconds: float) -> None:
        self.steps.setdefault(step, {})[party] = seconds

    def total(self, skip: tuple[str, ...] = ()) -> float:
        """Every party's time added up (what the machines spend in all)."""
        return sum(sum(p.values()) for s, p in self.steps.items() if s not in skip)

    def critical_path(self, skip: tuple[str, ...] = ()) -> float:
        """The slowest party of each step, added up (what the round waits for)."""
        return sum(max(p.values()) for s, p in self.steps.items() if s not in skip)
