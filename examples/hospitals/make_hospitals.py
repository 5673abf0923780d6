"""Write three hospitals' CSV files (and a held-out test file) from scikit-learn's breast-cancer data.

    python examples/hospitals/make_hospitals.py runs/hospitals-data

The 569 patients are shuffled (seed 7), 20% are held out as ``test.csv``
and the rest are split by rows between ``hospital1.csv``, ``hospital2.csv``
and ``hospital3.csv`` (of different sizes, as real hospitals are). About 1%
of the feature cells are left empty, the way records have gaps; the
consortium's schema (``schema.json`` beside this script) imputes them with
the federated mean. Labels are written as text (``malignant``/``benign``).
Deterministic: the same files every time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def write_hospitals(out: Path, seed: int = 7, missing: float = 0.01) -> dict[str, int]:
    """Write the four CSV files into ``out``; returns the number of rows of each."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    frame = pd.DataFrame(data.data, columns=[str(f) for f in data.feature_names]).round(6)
    rng = np.random.default_rng(seed)
    gaps = rng.random(frame.shape) < missing
    frame = frame.astype(object).mask(gaps, "")
    frame["diagnosis"] = [str(data.target_names[t]) for t in data.target]
    order = rng.permutation(len(frame))
    n_test = len(frame) // 5
    parts = {"test.csv": order[:n_test]}
    for i, rows in enumerate(np.split(order[n_test:], [140, 290]), start=1):  # 140, 150, 166 rows
        parts[f"hospital{i}.csv"] = rows
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        frame.iloc[np.sort(rows)].to_csv(out / name, index=False)
    return {name: len(rows) for name, rows in parts.items()}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/hospitals-data")
    for name, rows in write_hospitals(target).items():
        print(f"{target / name}: {rows} rows")
