"""Bring your own model: scikit-learn estimators and PyTorch modules as federated models.

Every adapter is a :class:`blockfedml.ml.models.Model` (flat parameters,
``fit`` for epochs, ``evaluate``), so the round driver, the aggregation modes,
the checkpoint chain and the audit handle it like the numpy models.

From Python, wrap your own object::

    from sklearn.linear_model import SGDClassifier
    model = SklearnModel(SGDClassifier(loss="log_loss"), n_features=30, n_classes=2)

From the command line (and in ``consortium.json``) a model is a spec string,
see :func:`make_model_for`:

- ``auto``, ``logreg``, ``softmax``, ``mlp``: the numpy models;
- ``sklearn:<Estimator>`` or ``sklearn:<Estimator>{"option": value}`` with
  the estimator's constructor options as JSON, e.g.
  ``sklearn:MLPClassifier{"hidden_layer_sizes": [32]}``;
- ``torch:<file.py or module>:<Class>``: a ``torch.nn.Module`` class called
  as ``Class(n_features, n_outputs)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blockfedml.errors import InvalidInputError
from blockfedml.ml.adapters.base import AdapterModel
from blockfedml.ml.adapters.sklearn import SklearnModel
from blockfedml.ml.models import MODEL_KINDS, Model, default_kind, make_model

if TYPE_CHECKING:
    from blockfedml.data.schema import DataSchema

SKLEARN_ESTIMATORS = {
    "LogisticRegression": "sklearn.linear_model",
    "SGDClassifier": "sklearn.linear_model",
    "Ridge": "sklearn.linear_model",
    "SGDRegressor": "sklearn.linear_model",
    "LinearRegression": "sklearn.linear_model",
    "MLPClassifier": "sklearn.neural_network",
    "MLPRegressor": "sklearn.neural_network",
}
AUTO_REGRESSOR = "sklearn:Ridge"


def make_model_for(spec: str, schema: "DataSchema", seed: int = 0) -> Model:
    """The model ``spec`` names, sized for ``schema`` (features, classes or regression)."""
    if not isinstance(spec, str) or not spec:
        raise InvalidInputError(f"model spec must be a non-empty string, got {spec!r}")
    n_classes = schema.n_classes if schema.is_classification else None
    if spec == "auto" and not n_classes:
        spec = AUTO_REGRESSOR
    if spec == "auto" or spec in MODEL_KINDS:
        if not n_classes:
            raise InvalidInputError(f"the numpy model {spec!r} is a classifier; for regression use "
                                    "sklearn:Ridge, sklearn:SGDRegressor or a torch module")
        kind = default_kind(n_classes) if spec == "auto" else spec
        return make_model(kind, schema.n_features, n_classes, seed=seed)
    framework, _, rest = spec.partition(":")
    if framework == "sklearn":
        return SklearnModel(sklearn_estimator(rest), schema.n_features, n_classes, seed)
    if framework == "torch":
        factory = torch_factory(rest)  # a wrong path fails before torch is imported
        from blockfedml.ml.adapters.torch import TorchModel

        return TorchModel(factory, schema.n_features, n_classes, seed)
    raise InvalidInputError(f"model {spec!r} is unknown; use one of {', '.join(MODEL_KINDS)}, auto, "
                            "sklearn:<Estimator>[{options}] or torch:<file.py>:<Class>")


def sklearn_estimator(text: str) -> Any:
    """``Name`` or ``Name{json options}`` -> a fresh estimator of one of :data:`SKLEARN_ESTIMATORS`."""
    name, brace, options_text = text.partition("{")
    options: dict[str, Any] = {}
    if brace:
        try:
            options = json.loads("{" + options_text)
        except ValueError as exc:
            raise InvalidInputError(f"options of sklearn:{name} are not a JSON object: {exc}") from None
        if not isinstance(options, dict):
            raise InvalidInputError(f"options of sklearn:{name} must be a JSON object")
    if name not in SKLEARN_ESTIMATORS:
        raise InvalidInputError(f"sklearn estimator {name!r} is not supported; use one of "
                                f"{', '.join(SKLEARN_ESTIMATORS)}")
    cls = getattr(importlib.import_module(SKLEARN_ESTIMATORS[name]), name)
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        return cls(**options)
    except TypeError as exc:
        raise InvalidInputError(f"bad options for sklearn:{name}: {exc}") from None


def torch_factory(text: str) -> Any:
    """``path/to/file.py:Class`` or ``package.module:Class`` -> that class (or function)."""
    source, _, attr = text.rpartition(":")
    if not source or not attr:
        raise InvalidInputError(f"torch model {text!r} must be <file.py or module>:<Class>")
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(f"torch model file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"blockfedml_user_model_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the member's own code, run on its own machine
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise InvalidInputError(f"cannot import torch model module {source!r}: {exc}") from None
    if not hasattr(module, attr):
        raise InvalidInputError(f"{source} defines no {attr!r}")
    return getattr(module, attr)


__all__ = ["AdapterModel", "SklearnModel", "make_model_for", "sklearn_estimator", "torch_factory"]
