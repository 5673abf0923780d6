"""The consortium's data schema: what every member's table must look like.

Federated training only works when every organization means the same thing by
"column 3": the same features, in the same units, the same label with the
same classes. The schema is that agreement, written down once by the admin
and pinned on the ledger by its SHA-256 (``data:SetSchema``); its bytes live
in the content-addressed store, so a member that loads it by the ledger's
digest holds exactly the agreed text. Every member checks its own file against
it before it sends anything (:mod:`blockfedml.data.table`).

A schema file (JSON)::

    {
      "task": "classification",
      "label": {"name": "diagnosis", "classes": ["malignant", "benign"]},
      "features": [{"name": "mean radius", "type": "float"}, ...],
      "missing": "impute_mean",
      "metric": "accuracy"
    }

- ``task``: ``classification`` (``label.classes``: two or more distinct
  strings or integers, in the order the model numbers them) or ``regression``
  (``label.range``: ``[low, high]``, inclusive).
- ``features``: distinct names; ``type`` is ``float`` or ``int`` (an ``int``
  feature refuses 2.5). Columns may come in any order; the model sees them in
  this order.
- ``missing``: ``drop`` (rows with an empty cell are left out) or
  ``impute_mean`` (an empty feature cell gets the consortium-wide mean,
  computed by secure aggregation). Cells that count as empty:
  :data:`MISSING_MARKERS`. A missing label is never imputed.
- ``metric``: how members judge a model — ``accuracy``, ``auc``, ``f1``
  (classification) or ``rmse``, ``r2`` (regression). Default: ``accuracy`` or
  ``rmse``. ``rmse`` is lower-is-better; the contract's ``higher_is_better``
  setting follows the schema's metric.

The canonical form (sorted keys, no spaces, ASCII) is what is stored and
hashed, so two admins who write the same schema differently still agree on
one digest.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blockfedml.errors import InvalidInputError
from blockfedml.store.model_store import sha256_hex

TASKS = ("classification", "regression")
FEATURE_TYPES = ("float", "int")
MISSING_POLICIES = ("drop", "impute_mean")
METRICS: dict[str, tuple[str, bool]] = {
    # name: (task, higher is better)
    "accuracy": ("classification", True),
    "auc": ("classification", True),
    "f1": ("classification", True),
    "rmse": ("regression", False),
    "r2": ("regression", True),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
MISSING_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
"""Cell texts that mean "no value" (after stripping spaces)."""

_KEYS = {"task", "label", "features", "missing", "metric"}


@dataclass(frozen=True)
class Feature:
    name: str
    type: str = "float"


@dataclass(frozen=True)
class DataSchema:
    """A validated schema; build it with :func:`parse_schema` or :func:`load_schema`."""

    task: str
    label: str
    features: tuple[Feature, ...]
    classes: tuple[str | int, ...] = ()
    target_range: tuple[float, float] | None = None
    missing: str = "drop"
    metric: str = "accuracy"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.classes)

    @property
    def is_classification(self) -> bool:
        return self.task == "classification"

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric][1]

    def to_dict(self) -> dict[str, Any]:
        label: dict[str, Any] = {"name": self.label}
        if self.is_classification:
            label["classes"] = list(self.classes)
        else:
            label["range"] = list(self.target_range or ())
        return {
            "task": self.task,
            "label": label,
            "features": [{"name": f.name, "type": f.type} for f in self.features],
            "missing": self.missing,
            "metric": self.metric,
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes that are stored and hashed."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True, allow_nan=False).encode("ascii")

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical bytes: what the ledger records."""
        return sha256_hex(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "DataSchema":
        try:
            return parse_schema(json.loads(data.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"the schema is not valid JSON: {exc}") from None


def load_schema(path: Path | str) -> DataSchema:
    """Read and validate a schema file; errors name the file and the offending key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"schema file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"schema file {path} cannot be read: {exc}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"schema file {path} is not valid JSON: {exc}") from None
    try:
        return parse_schema(raw)
    except InvalidInputError as exc:
        raise InvalidInputError(f"schema file {path}: {exc}") from None


def parse_schema(raw: Any) -> DataSchema:
    """Check a decoded schema document and return the :class:`DataSchema`."""
    if not isinstance(raw, dict):
        raise InvalidInputError("the schema must be a JSON object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise InvalidInputError(f"unknown schema keys {unknown}; known: {sorted(_KEYS)}")
    task = raw.get("task", "classification")
    if task not in TASKS:
        raise InvalidInputError(f"task must be one of {list(TASKS)}, got {task!r}")
    features = _parse_features(raw.get("features"))
    label = raw.get("label")
    if not isinstance(label, dict) or not isinstance(label.get("name"), str) or not label["name"].strip():
        raise InvalidInputError('label must be an object with a non-empty "name", e.g. '
                                '{"name": "outcome", "classes": [0, 1]}')
    name = label["name"]
    if name in {f.name for f in features}:
        raise InvalidInputError(f"label {name!r} is also listed as a feature")
    classes: tuple[str | int, ...] = ()
    target_range = None
    if task == "classification":
        _only_keys("label", label, {"name", "classes"})
        classes = _parse_classes(label.get("classes"))
    else:
        _only_keys("label", label, {"name", "range"})
        target_range = _parse_range(label.get("range"))
    missing = raw.get("missing", "drop")
    if missing not in MISSING_POLICIES:
        raise InvalidInputError(f"missing must be one of {list(MISSING_POLICIES)}, got {missing!r}")
    metric = raw.get("metric", DEFAULT_METRIC[task])
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    if METRICS[metric][0] != task:
        allowed = [m for m, (t, _) in METRICS.items() if t == task]
        raise InvalidInputError(f"metric {metric!r} does not fit a {task} task; use one of {allowed}")
    return DataSchema(task=task, label=name, features=features, classes=classes,
                      target_range=target_range, missing=missing, metric=metric)


def _parse_features(raw: Any) -> tuple[Feature, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInputError('features must be a non-empty list like [{"name": "age", "type": "float"}]')
    features, seen = [], set()
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise InvalidInputError(f"features[{i}] must be an object with a non-empty name")
        _only_keys(f"features[{i}]", item, {"name", "type"})
        kind = item.get("type", "float")
        if kind not in FEATURE_TYPES:
            raise InvalidInputError(f"feature {item['name']!r}: type must be one of "
                                    f"{list(FEATURE_TYPES)}, got {kind!r}")
        if item["name"] in seen:
            raise InvalidInputError(f"feature {item['name']!r} is listed twice")
        seen.add(item["name"])
        features.append(Feature(item["name"], kind))
    return tuple(features)


def _parse_classes(raw: Any) -> tuple[str | int, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise InvalidInputError("a classification label needs classes: a list of at least two values")
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidInputError(f"label classes must be strings or integers, got {value!r}")
    texts = [str(v) for v in raw]
    if len(set(texts)) != len(texts):
        raise InvalidInputError(f"label classes must be distinct, got {raw}")
    return tuple(raw)


def _parse_range(raw: Any) -> tuple[float, float]:
    if (not isinstance(raw, list) or len(raw) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in raw)
            or raw[0] >= raw[1]):
        raise InvalidInputError(f"a regression label needs range: [low, high] with low < high, got {raw!r}")
    return (raw[0], raw[1])


def _only_keys(where: str, item: dict, allowed: set[str]) -> None:
    extra = sorted(set(item) - allowed)
    if extra:
        raise InvalidInputError(f"{where} has unknown keys {extra}; allowed: {sorted(allowed)}")
