"""Poisoning attacks, played by a chosen share of a session's organizations.

The integrity defenses (screening, validation endorsement, rollback,
attribution, incentives; docs/integrity.md) are only worth what they stop, so
a session can run with attackers. A member's conduct is a ``Behaviour`` that
``Member`` consults at three explicit points:

- **data**, before training: ``Attack.poison_data`` replaces the member's
  training labels (label flipping, a targeted flip of one class pair, random
  labels) or plants a backdoor trigger; the session gives the member the
  poisoned data;
- **update**, after training: ``Behaviour.update`` turns the honest local
  model into a sign-flipped, scaled (model replacement) or noisy one — for
  sleepers and late boosters only from round ``start`` on (adaptive: they
  build a clean record first);
- **reports**: ``Behaviour.screening``, ``endorsement`` and
  ``group_endorsement`` may lie: claim clean data, vouch for aggregates the
  attackers contributed to and disparage the others; framers only shade
  their values a little, against one honest victim.

``Behaviour`` itself is the honest conduct and changes nothing. Attackers are
chosen by ``AttackPlan``: the last ``round(fraction * n)`` organizations (at
least one), so ``Org1``, the admin of a demo consortium, stays honest. Every
random choice is seeded, so a session with attackers replays bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from blockfedml.errors import InvalidInputError
from blockfedml.ml.datasets import OrgData

METRIC_SCALE = 1_000_000

ATTACKS: dict[str, str] = {
    "label_flip": "every training label y becomes (y + 1) mod K",
    "random_labels": "every training label is drawn uniformly from the K classes",
    "backdoor": "a share (strength, default 0.5) of training samples carry a trigger and the target label 0",
    "sign_flip": "the update is reversed and boosted: base - strength * (local - base), strength 4",
    "scale": "model replacement: trained on flipped labels, the update boosted by strength "
             "(default: the number of participants) so that it replaces the average",
    "noise": "the update is replaced by Gaussian noise around the base: base + N(0, strength^2), strength 1",
    "liar": "trains honestly but lies in every report (screening, endorsements)",
    "targeted_flip": "labels of one class pair are swapped (3 and 8 on digits, 0 and 1 with fewer classes): "
                     "the model is damaged on two classes only",
    "late_boost": "trains honestly, but from round `start` (default 8) boosts its update by the number of participants "
                  "(model replacement by its own skewed model)",
    "sleeper": "honest until round `start` (default 6), then sign flipping (and lies, with --lie)",
    "framer": "swaps one class pair like targeted_flip and shades its endorsements by strength (default 0.02) "
              "against groups holding one honest victim, for its own groups",
}
"""The attacks by name, with what each does (``blockfedml demo --attack NAME``)."""

_DEFAULT_STRENGTH = {"backdoor": 0.5, "sign_flip": 4.0, "noise": 1.0, "sleeper": 4.0, "framer": 0.02}
_DEFAULT_START = {"sleeper": 6, "late_boost": 8}
BACKDOOR_TARGET = 0
"""The label a backdoor trigger should make the model predict."""
TRIGGER_VALUE = 4.0
"""Trigger features are set to 4 standard deviations above their mean (features are standardized)."""


class Behaviour:
    """How a member treats its update and its reports. This base class is the honest conduct."""

    name = "honest"
    lies = False

    def update(self, params: np.ndarray, base: np.ndarray, round_: Mapping[str, Any]) -> np.ndarray:
        """The parameters the member seals, given its locally trained ones and the round's base."""
        return params

    def screening(self, verdict: int, score: int) -> tuple[int, int]:
        """The (verdict, fixed-point score) the member reports at selection."""
        return verdict, score

    def endorsement(self, metric: float, base_metric: float, contributors: Sequence[str],
                    round_number: int = 0) -> tuple[float, float]:
        """The metrics (proposal, base checkpoint) the member endorses the proposal with."""
        return metric, base_metric

    def group_endorsement(self, metrics: list[float | None], groups: Sequence[Sequence[str]],
                          round_number: int = 0, removal: bool = False) -> list[float | None]:
        """The metric the member reports for each group (None where a group has none)."""
        return metrics


HONEST = Behaviour()


def target_pair(n_classes: int) -> tuple[int, int]:
    """The class pair a targeted flip swaps: 3 and 8 (look alike on digits) when there are enough classes."""
    return (3, 8) if n_classes > 8 else (0, 1)


def trigger_features(n_features: int) -> np.ndarray:
    """Indices of the backdoor trigger: the last ``max(3, n_features // 16)`` features.

    On digits these are the bottom-right pixels, on breast cancer the last
    three "worst" measurements.
    """
    return np.arange(n_features - max(3, n_features // 16), n_features)


def apply_trigger(X: np.ndarray) -> np.ndarray:
    """A copy of ``X`` with the backdoor trigger stamped on every row."""
    stamped = np.array(X, dtype=np.float64, copy=True)
    stamped[:, trigger_features(stamped.shape[1])] = TRIGGER_VALUE
    return stamped


def backdoor_success(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Share of samples whose label is not the target that the trigger turns into the target."""
    keep = np.asarray(y) != BACKDOOR_TARGET
    if not keep.any():
        raise InvalidInputError("backdoor_success needs samples whose label is not the target")
    return float(np.mean(model.predict(apply_trigger(np.asarray(X)[keep])) == BACKDOOR_TARGET))


@dataclass(frozen=True)
class Attack(Behaviour):
    """One attacking member's conduct: poisoned data and/or update, and possibly lies."""

    kind: str
    member: str = ""
    strength: float | None = None
    lie: bool = False
    accomplices: frozenset[str] = field(default_factory=frozenset)
    seed: int = 0
    start: int = 0  # the first round it attacks (0: its default; honest before)
    victim: str = ""  # framer: the honest organization it shades against

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise InvalidInputError(f"attack {self.kind!r} is unknown; allowed values: {', '.join(ATTACKS)}")
        if self.strength is not None and not (isinstance(self.strength, (int, float))
                                              and np.isfinite(self.strength) and self.strength > 0):
            raise InvalidInputError(f"attack strength must be a finite number > 0, got {self.strength!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise InvalidInputError(f"attack start must be a round number >= 0, got {self.start!r}")
        if self.kind == "backdoor" and self.strength is not None and self.strength > 1:
            raise InvalidInputError(f"backdoor strength is the share of poisoned samples (0..1], got {self.strength}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.kind + ("+lie" if self.lies else "")

    @property
    def lies(self) -> bool:  # type: ignore[override]
        return self.lie or self.kind == "liar"

    def active(self, round_number: int) -> bool:
        """Whether the member attacks in this round (sleepers and late boosters wait for ``start``)."""
        return round_number >= (self.start or _DEFAULT_START.get(self.kind, 0))

    def _strength(self, default: float) -> float:
        return float(self.strength) if self.strength is not None else _DEFAULT_STRENGTH.get(self.kind, default)

    def _rng(self, *stream: int) -> np.random.Generator:
        org = int.from_bytes(hashlib.sha256(self.member.encode()).digest()[:8], "big")
        return np.random.default_rng([self.seed, org, *stream])

    # -- data, before training -------------------------------------------------
    def poison_data(self, data: OrgData, n_classes: int) -> OrgData:
        """The member's data as it trains on it. Validation data stays clean: the attacker knows the truth."""
        y = np.array(data.y_train, copy=True)
        X = data.X_train
        if self.kind in ("label_flip", "scale"):
            y = (y + 1) % n_classes
        elif self.kind in ("targeted_flip", "framer"):
            a, b = target_pair(n_classes)
            y = np.where(data.y_train == a, b, np.where(data.y_train == b, a, y)).astype(y.dtype)
        elif self.kind == "random_labels":
            y = self._rng(1).integers(0, n_classes, len(y)).astype(y.dtype)
        elif self.kind == "backdoor":
            rng = self._rng(2)
            candidates = np.flatnonzero(y != BACKDOOR_TARGET)
            count = int(round(self._strength(0.5) * len(candidates)))
            chosen = np.sort(rng.choice(candidates, size=count, replace=False))
            X = np.array(X, copy=True)
            X[chosen] = apply_trigger(X[chosen])
            y[chosen] = BACKDOOR_TARGET
        else:
            return data
        return replace(data, X_train=X, y_train=y)

    # -- update, after training --------------------------------------------------
    def update(self, params: np.ndarray, base: np.ndarray, round_: Mapping[str, Any]) -> np.ndarray:
        delta = np.asarray(params, dtype=np.float64) - base
        if not self.active(int(round_["round"])):
            return params
        if self.kind in ("sign_flip", "sleeper"):
            return base - self._strength(4.0) * delta
        if self.kind in ("scale", "late_boost"):
            return base + self._strength(float(max(1, len(round_.get("participants") or ())))) * delta
        if self.kind == "noise":
            return base + self._rng(3, int(round_["round"])).normal(0.0, self._strength(1.0), base.shape)
        return params

    # -- reports ------------------------------------------------------------------
    def screening(self, verdict: int, score: int) -> tuple[int, int]:
        return (1, METRIC_SCALE) if self.lies else (verdict, score)

    def endorsement(self, metric: float, base_metric: float, contributors: Sequence[str],
                    round_number: int = 0) -> tuple[float, float]:
        if self.kind == "framer":
            shade = self._strength(0.02) * (1 if self._ours(contributors) else -1 if self.victim in contributors
                                            else 0)
            return max(0.0, metric + shade), base_metric
        if not self.lies or not self.active(round_number):
            return metric, base_metric
        return (1.0, 0.0) if self._ours(contributors) else (0.0, 1.0)

    def group_endorsement(self, metrics: list[float | None], groups: Sequence[Sequence[str]],
                          round_number: int = 0, removal: bool = False) -> list[float | None]:
        """Lies about each group. ``removal``: each metric is the model's without the group, so a
        low value speaks for the group (Shapley-value scoring)."""
        good, bad = (0.0, 1.0) if removal else (1.0, 0.0)
        if self.kind == "framer":
            sign = -1 if removal else 1
            shade = self._strength(0.02)
            return [None if m is None else max(0.0, m + sign * shade) if self._ours(g)
                    else max(0.0, m - sign * shade) if self.victim in g else m for m, g in zip(metrics, groups)]
        if not self.lies or not self.active(round_number):
            return metrics
        return [None if m is None else (good if self._ours(g) else bad) for m, g in zip(metrics, groups)]

    def _ours(self, members: Sequence[str]) -> bool:
        return bool((set(self.accomplices) | {self.member}) & set(members))


@dataclass(frozen=True)
class AttackPlan:
    """Which organizations attack, and how: ``kind`` on ``fraction`` of them."""

    kind: str
    fraction: float = 0.3
    lie: bool = False
    strength: float | None = None
    seed: int = 0
    start: int = 0  # sleeper, late_boost: the first round they attack (0: the attack's default)

    def __post_init__(self) -> None:
        Attack(self.kind, strength=self.strength, start=self.start)  # validates kind, strength and start
        if not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise InvalidInputError(f"the share of attackers must be in (0, 1], got {self.fraction!r}")

    @property
    def name(self) -> str:
        return self.kind + ("+lie" if self.lie else "")

    def attackers(self, msp_ids: Sequence[str]) -> list[str]:
        """The last ``round(fraction * n)`` organizations of ``msp_ids`` (at least one)."""
        count = max(1, int(round(self.fraction * len(msp_ids))))
        return list(msp_ids[len(msp_ids) - count:])

    def behaviours(self, msp_ids: Sequence[str]) -> dict[str, Behaviour]:
        """Every organization's conduct: an ``Attack`` for the attackers (who know each other), honest otherwise."""
        attackers = self.attackers(msp_ids)
        team = frozenset(attackers)
        honest = [m for m in msp_ids if m not in team]
        victim = honest[1] if len(honest) > 1 else (honest[0] if honest else "")  # not the admin, if it can
        return {
            msp: Attack(self.kind, member=msp, strength=self.strength, lie=self.lie, accomplices=team, seed=self.seed,
                        start=self.start, victim=victim)
            if msp in team else HONEST
            for msp in msp_ids
        }
