"""The learning task a consortium agrees on, and each member's share of it.

In the demo every member derives the same federated split from the dataset
name and the seed and keeps only its own partition; a member bringing its own
data replaces ``member_data`` and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from blockfedml.errors import InvalidInputError
from blockfedml.ml.datasets import FederatedSplit, OrgData, make_federated_split
from blockfedml.ml.models import Model, default_kind, make_model

if TYPE_CHECKING:
    from blockfedml.data.schema import DataSchema

OWN_DATA = "own"
"""``TaskSpec.dataset`` of a consortium whose members bring their own files (blockfedml.data)."""


@dataclass(frozen=True)
class TaskSpec:
    """Dataset, partition, model and local-training settings of a session."""

    dataset: str = "breast_cancer"
    partition: str = "iid"
    alpha: float = 0.5
    model: str = "auto"
    seed: int = 0
    epochs: int = 2
    lr: float = 0.1
    batch_size: int = 16
    l2: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown task settings {unknown}; known: {sorted(known)}")
        return cls(**data)


@lru_cache(maxsize=8)
def _split(task: TaskSpec, n_orgs: int) -> FederatedSplit:
    if task.dataset == OWN_DATA:
        raise InvalidInputError("the members of this consortium bring their own data: each runs "
                                "`blockfedml member run --data FILE` (there is no demo split)")
    return make_federated_split(
        task.dataset, n_orgs=n_orgs, partition=task.partition, alpha=task.alpha, seed=task.seed
    )


def task_split(task: TaskSpec, n_orgs: int) -> FederatedSplit:
    """The whole federated split (all partitions plus the held-out test set)."""
    return _split(task, n_orgs)


def member_data(task: TaskSpec, n_orgs: int, index: int) -> OrgData:
    """The training and validation data of the member with this partition index."""
    split = _split(task, n_orgs)
    if not 0 <= index < len(split.orgs):
        raise InvalidInputError(f"partition index {index} is outside 0..{len(split.orgs) - 1}")
    return split.orgs[index]


def task_model(task: TaskSpec, n_orgs: int, schema: DataSchema | None = None) -> Model:
    """A fresh model of the agreed kind, initialised from the task's seed.

    With members' own data the model is sized by the agreed ``schema``, and
    ``task.model`` may also name a scikit-learn or PyTorch model
    (:func:`blockfedml.ml.adapters.make_model_for`).
    """
    if schema is not None or task.dataset == OWN_DATA:
        if schema is None:
            raise InvalidInputError("a consortium with its members' own data needs the data schema "
                                    "to build its model")
        from blockfedml.ml.adapters import make_model_for

        return make_model_for(task.model, schema, seed=task.seed)
    split = _split(task, n_orgs)
    kind = default_kind(split.n_classes) if task.model == "auto" else task.model
    return make_model(kind, split.n_features, split.n_classes, seed=task.seed)
