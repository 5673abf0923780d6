"""Local machine learning: datasets and their federated split, numpy models, parameter bytes."""

from blockfedml.ml.baseline import fit_centralized, train_centralized
from blockfedml.ml.datasets import (
    DATASETS,
    PARTITIONS,
    Dataset,
    FederatedSplit,
    OrgData,
    load_dataset,
    make_federated_split,
    partition_indices,
)
from blockfedml.ml.models import (
    MLP,
    MODEL_KINDS,
    LogisticRegression,
    Model,
    SoftmaxRegression,
    default_kind,
    make_model,
    model_from_meta,
)
from blockfedml.ml.serialization import (
    load_model,
    load_params,
    model_from_bytes,
    model_to_bytes,
    params_from_bytes,
    params_to_bytes,
    put_model,
)

__all__ = [
    "DATASETS", "PARTITIONS", "Dataset", "FederatedSplit", "OrgData", "load_dataset",
    "make_federated_split", "partition_indices",
    "MLP", "MODEL_KINDS", "LogisticRegression", "Model", "SoftmaxRegression",
    "default_kind", "make_model", "model_from_meta",
    "load_model", "load_params", "model_from_bytes", "model_to_bytes",
    "params_from_bytes", "params_to_bytes", "put_model",
    "fit_centralized", "train_centralized",
]
