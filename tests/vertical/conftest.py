"""Small vertical datasets, one Paillier key for the whole directory, message recorders."""

from __future__ import annotations

import numpy as np
import pytest

from blockfedml.vertical.data import PartyData
from blockfedml.vertical.he import PaillierKeyPair
from blockfedml.vertical.transport import Endpoint
from blockfedml.vertical.wire import Message


def synthetic(n: int = 60, model: str = "linear", seed: int = 0, overlap: float = 0.8,
              id_type: str = "str") -> tuple[PartyData, PartyData, list]:
    """A with 3 features, B with 2 features and the label; each holds ``overlap`` of the entities."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)) * [1.0, 3.0, 0.5, 2.0, 1.0] + [0.0, 10.0, -2.0, 0.0, 5.0]
    score = X @ np.array([0.8, -0.3, 1.5, 0.4, -0.7]) + rng.normal(scale=0.3, size=n)
    y = (score > np.median(score)).astype(float) if model == "logistic" else score
    ids = [f"user-{i:04d}" if id_type == "str" else 1000 + i for i in range(n)]
    a_rows = np.sort(rng.permutation(n)[: round(overlap * n)])
    b_rows = np.sort(rng.permutation(n)[: round(overlap * n)])
    a = PartyData([ids[i] for i in a_rows], X[a_rows, :3], ("a0", "a1", "a2"))
    b = PartyData([ids[i] for i in b_rows], X[b_rows, 3:], ("b0", "b1"), y[b_rows])
    common = sorted(set(a.ids) & set(b.ids))
    return a, b, common


@pytest.fixture(scope="session")
def keys() -> PaillierKeyPair:
    """One 2048-bit key pair for every test of the directory (key generation takes seconds)."""
    return PaillierKeyPair(2048)


class Recorder(Endpoint):
    """Passes messages through and keeps every one its party receives."""

    def __init__(self, inner: Endpoint) -> None:
        self.inner, self.party = inner, inner.party
        self.received: list[tuple[str, Message, bytes]] = []
        self.sent: list[tuple[str, Message, bytes]] = []

    def send(self, to: str, data: bytes) -> None:
        self.sent.append((to, Message.from_bytes(data), data))
        self.inner.send(to, data)

    def recv(self, sender: str, timeout: float) -> bytes:
        data = self.inner.recv(sender, timeout)
        self.received.append((sender, Message.from_bytes(data), data))
        return data

    def messages(self, kind: str, direction: str = "received") -> list[Message]:
        return [m for _, m, _ in getattr(self, direction) if m.kind == kind]
