"""PyTorch ``nn.Module``s as federated models (optional: ``pip install 'blockfedml[torch]'``).

Flat layout: the module's ``parameters()`` in registration order (the order
of ``named_parameters()``, recorded in the checkpoint's metadata), each
flattened row-major, as float64. Buffers (BatchNorm running statistics) are
not averaged: they stay each member's own.

Training is minibatch SGD (or Adam) on CPU for ``epochs`` passes, with
cross-entropy for classifiers (the module outputs one logit per class) and
mean squared error for regressors (one output). Shuffling and any dropout
are driven by the round's seed through a private ``torch.Generator`` and
``torch.manual_seed``, so the same seed gives the same update. ``l2`` is
weight decay.

The module is built by a factory (the class itself, usually) called as
``factory(n_features, n_outputs)`` under ``torch.manual_seed(seed)``, so
every member constructs the same initial weights.

Threads: by default the adapter runs PyTorch on one thread
(``torch.set_num_threads(1)``, process-wide). Members' models are small and
machines are shared; measured on the 2-core development machine under load,
a 64-32-10 network's minibatch step took 0.9 ms on one thread and 11.7 ms on
two (the threads spin against each other and the other processes). Pass
``threads=None`` to keep PyTorch's own choice for large models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from blockfedml.errors import InvalidInputError
from blockfedml.ml.adapters.base import AdapterModel

try:
    import torch
except ImportError as exc:  # the optional extra is not installed
    raise InvalidInputError("PyTorch models need the torch extra: pip install 'blockfedml[torch]'") from exc

OPTIMIZERS = ("sgd", "adam")


class TorchModel(AdapterModel):
    """A ``torch.nn.Module`` behind the flat-vector interface."""

    kind = "torch"

    def __init__(self, factory: Callable[..., Any], n_features: int, n_classes: int | None,
                 seed: int = 0, optimizer: str = "sgd", threads: int | None = 1) -> None:
        if optimizer not in OPTIMIZERS:
            raise InvalidInputError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
        outputs = n_classes if n_classes else 1
        torch.manual_seed(seed)
        module = factory(n_features, outputs) if not isinstance(factory, torch.nn.Module) else factory
        if not isinstance(module, torch.nn.Module):
            raise InvalidInputError(f"the model factory returned {type(module).__name__}, not a torch.nn.Module")
        self.module = module.to(torch.float32)
        self.name = type(module).__name__
        self.optimizer_name = optimizer
        self.threads = threads
        self._optimizer: Any = None
        self._optimizer_lr: tuple[float, float] | None = None
        super().__init__(n_features, n_classes, seed)

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "module": self.name,
                "names": [name for name, _ in self.module.named_parameters()]}

    def _param_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(p.shape) for p in self.module.parameters()]

    def _init_params(self, rng: np.random.Generator) -> np.ndarray:
        return self._pull()

    def _push(self) -> None:
        with torch.no_grad():
            vector = torch.from_numpy(self._params).to(torch.float32)
            torch.nn.utils.vector_to_parameters(vector, self.module.parameters())

    def _pull(self) -> np.ndarray:
        with torch.no_grad():
            return torch.nn.utils.parameters_to_vector(self.module.parameters()).double().numpy().copy()

    def _fit_framework(self, X: np.ndarray, y: np.ndarray, epochs: int, lr: float,
                       batch_size: int, seed: int, l2: float) -> None:
        self._use_threads()
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.from_numpy(X).to(torch.float32)
        targets = torch.from_numpy(y).long() if self.n_classes else torch.from_numpy(y).to(torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss() if self.n_classes else torch.nn.MSELoss()
        optimizer = self._optimizer_for(lr, l2)
        self.module.train()
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), batch_size):
                batch = order[start:start + batch_size]
                optimizer.zero_grad()
                out = self.module(inputs[batch])
                loss = loss_fn(out if self.n_classes else out.reshape(-1), targets[batch])
                loss.backward()
                optimizer.step()
        self.module.eval()

    def _optimizer_for(self, lr: float, l2: float) -> Any:
        """One optimizer for the adapter's life (Adam keeps its moments between rounds)."""
        if self._optimizer is None or self._optimizer_lr != (lr, l2):
            cls = torch.optim.SGD if self.optimizer_name == "sgd" else torch.optim.Adam
            self._optimizer = cls(self.module.parameters(), lr=lr, weight_decay=l2)
            self._optimizer_lr = (lr, l2)
        return self._optimizer

    def _use_threads(self) -> None:
        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _forward(self, X: np.ndarray) -> Any:
        self._use_threads()
        self.module.eval()
        with torch.no_grad():
            return self.module(torch.from_numpy(X).to(torch.float32))

    def _predict_framework(self, X: np.ndarray) -> np.ndarray:
        out = self._forward(X)
        return out.argmax(dim=1).numpy() if self.n_classes else out.reshape(-1).double().numpy()

    def _proba_framework(self, X: np.ndarray) -> np.ndarray:
        return torch.softmax(self._forward(X).double(), dim=1).numpy()

    def to_module(self) -> Any:
        """The ``nn.Module`` holding the current parameters, ready to use in PyTorch."""
        self._push()
        return self.module
