"""What one consortium member does in each phase of a round.

A ``Member`` holds its organization's ledger contract, its own data and the
shared model store. Each method is one phase's action and one ledger
transaction; ``act`` picks the action the round's current phase calls for, so
the same code serves the in-process session driver and a member running as its
own process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blockfedml.errors import PhaseError
from blockfedml.exchange.transport import StoreTransport, Transport
from blockfedml.fl.aggregation import AggregationMode, PlaintextAggregation, make_aggregation
from blockfedml.fl.attacks import HONEST, Behaviour
from blockfedml.fl.checkpoints import load_checkpoint
from blockfedml.ml.serialization import put_model
from blockfedml.fl.screening import Screener
from blockfedml.fl.strategy import ClientUpdate, Strategy
from blockfedml.fl.task import TaskSpec
from blockfedml.ledger.base import Contract
from blockfedml.ml.datasets import OrgData
from blockfedml.ml.models import Model
from blockfedml.store import ModelStore

METRIC_SCALE = 1_000_000


def to_fixed(value: float) -> int:
    """A metric as the contract's fixed-point integer."""
    return int(round(float(value) * METRIC_SCALE))


def from_fixed(value: int | None) -> float | None:
    return None if value is None else value / METRIC_SCALE


@dataclass
class Member:
    """One organization taking part in rounds."""

    msp_id: str
    contract: Contract
    store: ModelStore
    data: OrgData
    model: Model
    task: TaskSpec
    done: set[tuple[int, str]] = field(default_factory=set)
    transport: Transport | None = None  # how sealed updates reach the aggregator; None: the store
    metric: str = "accuracy"  # what this member endorses with: the data schema's metric
    behaviour: Behaviour = HONEST  # honest, or an attack (blockfedml.fl.attacks)
    screener: Screener | None = None  # label-consistency screening at selection (blockfedml.fl.screening)
    strategy: Strategy | None = None  # a plaintext rule other than FedAvg when this member aggregates

    def __post_init__(self) -> None:
        if self.transport is None:
            self.transport = StoreTransport(self.store)

    # -- phase actions ------------------------------------------------------------
    def join(self) -> dict[str, Any]:
        """Activate the organization; it starts at the consortium's reputation baseline."""
        return self.contract.submit_json("Join")

    def screen(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Selection: screen this member's own contribution and report a verdict and a score.

        With a screener, the verdict and score are the label consistency of the
        training data with the reference SVM (blockfedml.fl.screening); without
        one, the verdict is 1 whenever the member has data and the score is the
        base checkpoint's metric on local validation data.
        """
        if self.screener is not None:  # label consistency with the reference SVM
            report = self.screener.screen(self.data.X_train, self.data.y_train)
            verdict, score = report.verdict, report.score
        else:
            verdict = 1 if len(self.data.y_train) > 0 else 0
            score = to_fixed(self._evaluate(round_["base_checkpoint"]))
        verdict, score = self.behaviour.screening(verdict, score)
        return self.contract.submit_json("ReportScreening", round_["round"], verdict, score)

    def accept(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Configuration: accept the round's terms (its base checkpoint)."""
        return self.contract.submit_json("AcceptTerms", round_["round"], round_["base_checkpoint"])

    def train_and_commit(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Update: train locally from the base checkpoint, seal the update, commit its digest."""
        load_checkpoint(self.store, round_["base_checkpoint"], self.model)
        base = self.model.get_params()
        self.model.fit(
            self.data.X_train,
            self.data.y_train,
            epochs=self.task.epochs,
            lr=self.task.lr,
            batch_size=self.task.batch_size,
            seed=self.task.seed * 1_000_003 + round_["round"],
            l2=self.task.l2,
        )
        params = self.behaviour.update(self.model.get_params(), base, round_)  # honest: unchanged
        update = ClientUpdate(org=self.msp_id, params=params, num_samples=len(self.data.y_train))
        sealed = make_aggregation(round_["mode"]).seal(update)
        digest = self.transport.send(round_, sealed)  # delivered first: a failed send commits nothing
        return self.contract.submit_json("CommitUpdate", round_["round"], digest, len(sealed), update.num_samples)

    def aggregate(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Update (aggregator only): check every blob against its commitment, combine, propose."""
        from blockfedml.fl.attribution import accepted_updates

        sealed = accepted_updates(round_, self.collect(round_))  # with attribution: accepted groups only
        params = self.combine(round_, sealed)
        self.model.set_params(params)
        digest = put_model(self.store, self.model)
        return self.contract.submit_json("ProposeAggregate", round_["round"], digest, sorted(sealed))

    def endorse(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Feedback: evaluate the proposal and the base checkpoint on local validation data; endorse.

        Both metrics come from the same data, so the contract judges the change
        a member saw, not the noise between members' validation sets.
        """
        digest = round_["proposal"]["digest"]
        metric = self._evaluate(digest)
        base_metric = self._evaluate(round_["base_checkpoint"])
        metric, base_metric = self.behaviour.endorsement(metric, base_metric, round_["proposal"]["contributors"])
        return self.contract.submit_json(
            "Endorse", round_["round"], digest, to_fixed(metric), to_fixed(base_metric)
        )

    def propose_groups(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Update (aggregator, attribution on): propose one aggregate per group (blockfedml.fl.attribution)."""
        from blockfedml.fl.attribution import propose_groups

        return propose_groups(self, round_)

    def endorse_groups(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Attribution: endorse each group's aggregate with its metric on local validation data."""
        from blockfedml.fl.attribution import endorse_groups

        return endorse_groups(self, round_)

    def collect(self, round_: dict[str, Any]) -> dict[str, bytes]:
        """The round's sealed updates by organization (aggregator only).

        Every blob is checked against its commitment (digest and size) before it
        is used; a mismatch is an IntegrityError and the blob is discarded.
        """
        return self.transport.collect(round_["round"], self.contract.evaluate_json("GetUpdates", round_["round"]))

    def aggregation(self, round_: dict[str, Any]) -> AggregationMode:
        """The round's aggregation mode; a plaintext round may use this member's own strategy."""
        if self.strategy is not None and round_["mode"] == "plaintext":
            return PlaintextAggregation(self.strategy)
        return make_aggregation(round_["mode"])

    def combine(self, round_: dict[str, Any], sealed: dict[str, bytes]) -> Any:
        """Parameters aggregated from these sealed updates (a group's, or the round's) through the seam."""
        return self.aggregation(round_).combine(sealed)

    # -- driving ------------------------------------------------------------------
    def act(self, round_: dict[str, Any]) -> str | None:
        """Do this member's action for the round's current phase, once; return its name."""
        number, phase = round_["round"], round_["phase"]
        if (number, phase) in self.done:
            return None
        action = self._action_for(round_)
        if action is None:
            return None
        action(round_)
        self.done.add((number, phase))
        return action.__name__

    def _action_for(self, round_: dict[str, Any]):
        phase = round_["phase"]
        if phase == "selection":
            return self.screen
        if self.msp_id not in round_.get("selected", []):
            return None
        if phase == "configuration":
            return self.accept
        if self.msp_id not in round_.get("participants", []):
            return None
        if phase == "update":
            return self.train_and_commit
        if phase == "attribution":
            return self.endorse_groups
        if phase == "feedback":
            return self.endorse
        return None

    def _evaluate(self, digest: str) -> float:
        """The task's metric of a checkpoint on local validation data (>= 0, as the ledger needs)."""
        from blockfedml.data.metrics import score_model

        load_checkpoint(self.store, digest, self.model)
        result = self.model.evaluate(self.data.X_val, self.data.y_val)
        if self.metric not in result:  # e.g. AUC of a numpy model: score its predictions
            result[self.metric] = score_model(self.model, self.data.X_val, self.data.y_val, self.metric)
        return max(0.0, float(result[self.metric]))
