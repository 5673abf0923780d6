"""What one consortium member does in each phase of a round.

A ``Member`` holds its organization's ledger contract, its own data and the
shared model store. Each method is one phase's action and one ledger
transaction; ``act`` picks the action the round's current phase calls for, so
the same code serves the in-process session driver and a member running as its
own process.

In the secure modes a member does a little more (docs/secure-aggregation.md):
with masking it advertises fresh X25519 keys at selection, shares its secrets
(Shamir, sealed to each selected member) at configuration, and reveals the
shares the recorded contributor set calls for once the aggregator has asked;
with Paillier it encrypts under the key pinned by the round. A ``KeyHolder``
(collaborator C) publishes its Paillier key and decrypts only the sums the
ledger authorizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blockfedml.crypto import secagg
from blockfedml.crypto.graph import graph_of_round
from blockfedml.crypto.masking import MaskSecrets
from blockfedml.crypto.paillier import PaillierPrivateKey, PaillierPublicKey
from blockfedml.crypto.randomness import DEFAULT_SOURCE, RandomSource, make_randomness
from blockfedml.errors import (ConflictError, ExchangeError, IntegrityError, NotAuthorizedError, NotFoundError,
                               PhaseError)
from blockfedml.exchange.transport import StoreTransport, Transport, commitment_problem
from blockfedml.fl.aggregation import (AggregationMode, MaskingAggregation, PaillierAggregation,
                                       PlaintextAggregation, RoundContext, SecureAggregation, make_aggregation)
from blockfedml.fl.attacks import HONEST, Behaviour
from blockfedml.fl.checkpoints import load_checkpoint
from blockfedml.fl.round_state import RoundSecrets
from blockfedml.ml.serialization import put_model
from blockfedml.fl.screening import Screener
from blockfedml.fl.strategy import ClientUpdate, Strategy
from blockfedml.fl.task import TaskSpec
from blockfedml.ledger.base import Contract
from blockfedml.ml.datasets import OrgData
from blockfedml.ml.models import Model
from blockfedml.store import BlobStore, ModelStore, sha256_hex

METRIC_SCALE = 1_000_000


def opening_size(min_group_size: int) -> int:
    """The fewest contributors an opened sum may have (the contract's ``rules.opening_size``):
    ``min_group_size`` others besides whoever sees it, and every contributor sees it."""
    return min_group_size + 1


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
    reference: tuple[Any, Any] | None = None  # the consortium's common labelled set (X, y): attribution endorses on it
    randomness_source: str = DEFAULT_SOURCE  # Paillier: where r^n comes from (blockfedml.crypto.randomness)
    secrets: dict[int, MaskSecrets] = field(default_factory=dict, repr=False)  # masking, per round
    round_secrets: RoundSecrets | None = None  # where they are kept so a restart picks up; None: memory only
    _randomness: dict[str, RandomSource] = field(default_factory=dict, repr=False)  # by key fingerprint
    _updates: dict[int, bytes] = field(default_factory=dict, repr=False)  # sealed update by round
    _delivered: dict[int, str] = field(default_factory=dict, repr=False)  # round -> aggregator it reached

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
        verdict, score = self.screening(round_)
        # One transaction for the whole selection phase: the screening, the round's terms accepted
        # ahead (its base checkpoint), and in a masking round this round's public mask keys.
        mask_key, share_key = self._mask_public_keys(round_) if round_.get("mode") == "masking" else ("", "")
        return self.contract.submit_json("EnterRound", round_["round"], verdict, score, round_["base_checkpoint"],
                                         mask_key, share_key)

    def screening(self, round_: dict[str, Any]) -> tuple[int, int]:
        """The verdict and score ``screen`` reports (see there)."""
        if self.screener is not None:  # label consistency with the reference SVM
            report = self.screener.screen(self.data.X_train, self.data.y_train)
            verdict, score = report.verdict, report.score
        else:
            verdict = 1 if len(self.data.y_train) > 0 else 0
            score = to_fixed(self._evaluate(round_["base_checkpoint"]))
        return self.behaviour.screening(verdict, score)

    def accept(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Configuration: accept the round's terms (its base checkpoint)."""
        return self.contract.submit_json("AcceptTerms", round_["round"], round_["base_checkpoint"])

    def train_and_commit(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Update: train locally from the base checkpoint, seal the update, commit its digest."""
        from blockfedml.fl.attribution import group_context, masking_group

        load_checkpoint(self.store, round_["base_checkpoint"], self.model)
        base = self.model.get_params()
        context = self.round_context(round_)
        group = masking_group(self, round_)
        if group is not None:  # masking with attribution: masks cancel within the group (docs/integrity.md)
            context = group_context(context, group)
        if context.randomness is not None:  # Paillier: r^n in the background while we train
            layout = PaillierAggregation().layout(context)
            context.randomness.prepare(layout.count(base.size))
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
        sealed = make_aggregation(round_["mode"]).seal(update, context)
        number = round_["round"]
        if round_["mode"] == "masking":  # every share bundle kept here before committing, as SecAgg
            self._bundles(round_)        # receives its shares first: a member that dies later is recoverable
        self._updates = {number: sealed}  # earlier rounds are over
        if self.round_secrets is not None:
            self.round_secrets.forget_before(number)
            self.round_secrets.save_update(number, sealed)
        # Delivered first: a send that fails for any reason but an unreachable aggregator commits
        # nothing. An aggregator that is down gets it later, or its replacement does (deliver()).
        self.deliver(round_)
        return self.contract.submit_json("CommitUpdate", number, sha256_hex(sealed), len(sealed), update.num_samples)

    def deliver(self, round_: dict[str, Any]) -> bool:
        """Send this member's sealed update to the round's aggregator unless it already has it.

        Called at every step of the update phase: after a restart (the update is
        kept in the member's folder), or when the ledger names a new aggregator
        because the first one vanished. False while the aggregator cannot be reached.
        """
        number = round_["round"]
        if round_["phase"] != "update" or self.msp_id not in remaining(round_):
            return False
        sealed = self._updates.get(number)
        if sealed is None and self.round_secrets is not None:
            sealed = self.round_secrets.load_update(number)
        if sealed is None or self._delivered.get(number) == round_["aggregator"]:
            return False
        try:
            self.transport.send(round_, sealed)
        except ExchangeError:
            return False  # tried again at the next step
        self._updates[number] = sealed
        self._delivered = {number: round_["aggregator"]}
        return True

    def aggregate(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Update (aggregator only): check every blob against its commitment, combine, propose.

        In a secure mode this is called until it proposes (it returns None
        while waiting): first it sums the blobs and asks the ledger to have
        that sum opened, then, once the opened sum is recorded, it proposes.

        With attribution on (setting ``attribution=1``) the aggregator first
        proposes one aggregate per group (in phase update), then, once the
        contract has scored them, the aggregate of the accepted groups only.
        """
        from blockfedml.fl.attribution import accepted_updates, attribution_on

        if round_["phase"] == "update" and attribution_on(self.contract):
            return self.propose_groups(round_)  # docs/integrity.md
        mode = make_aggregation(round_["mode"])
        if isinstance(mode, SecureAggregation) and round_.get("attribution") is not None:
            from blockfedml.fl.attribution import accepted_secure_aggregate  # the groups' sums are open

            self.model.set_params(accepted_secure_aggregate(self, round_, mode))
            digest = put_model(self.store, self.model)
            return self.contract.submit_json("ProposeAggregate", round_["round"], digest,
                                             round_["attribution"]["accepted"])
        if isinstance(mode, SecureAggregation):
            return self._aggregate_secure(round_, mode)

        usable = self.usable_contributions(round_, self.aggregation(round_), RoundContext(round_["round"], ()))
        if usable is None:
            return None  # the exclusions left too few: the round was aborted
        sealed = accepted_updates(round_, usable)  # with attribution: accepted groups only
        params = self.combine(round_, sealed)
        self.model.set_params(params)
        digest = put_model(self.store, self.model)
        return self.contract.submit_json("ProposeAggregate", round_["round"], digest, sorted(sealed))

    def endorse(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Feedback: evaluate the proposal and the base checkpoint on local validation data; endorse.

        Both metrics come from the same data, so the contract judges the change
        a member saw, not the noise between members' validation sets. With the
        consortium's common reference set the member validates on its own data
        and that set together: on 29 samples one sample is 0.034 of accuracy,
        more than the rollback tolerance, so one unlucky sample could vote for
        a rollback; on 129 it is 0.008. An accuracy change within the sampling
        noise of the data (``significant``) is endorsed as no change.
        """
        digest = round_["proposal"]["digest"]
        data = self._endorsement_data()
        metric = self._evaluate(digest, data)
        base_metric = self._evaluate(round_["base_checkpoint"], data)
        if self.metric == "accuracy" and not significant(metric, base_metric, len(data[1])):
            metric = base_metric  # sampling noise: no change to roll back or to reward
        metric, base_metric = self.behaviour.endorsement(metric, base_metric, round_["proposal"]["contributors"],
                                                         round_["round"])
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
        return self.transport.collect(round_["round"], self.commitments(round_))

    def usable_contributions(self, round_: dict[str, Any], mode: AggregationMode,
                             context: RoundContext) -> dict[str, bytes] | None:
        """The round's sealed updates that can be used; every other sender is excluded on the ledger
        (ExcludeContribution, with the reason) and the round goes on. None if that aborted the round."""
        from blockfedml.fl.contributions import contribution_problems, ledger_reason

        number = round_["round"]
        sealed, problems = self.transport.collect_checked(number, self.commitments(round_))
        problems.update(contribution_problems(mode, sealed, context, int(self.model.get_params().size)))
        for org, problem in sorted(problems.items()):
            if org == self.msp_id:
                raise IntegrityError(f"round {number}: this aggregator's own update is unusable: {problem}")
            record = self.contract.submit_json("ExcludeContribution", number, org, ledger_reason(problem))
            sealed.pop(org, None)
            if record["phase"] == "closed":
                return None
        return sealed

    def commitments(self, round_: dict[str, Any]) -> list[dict[str, Any]]:
        """The round's committed updates, without those of members recorded absent (docs/operations.md)."""
        return [u for u in self.contract.evaluate_json("GetUpdates", round_["round"])
                if u["msp_id"] in remaining(round_)]

    def aggregation(self, round_: dict[str, Any]) -> AggregationMode:
        """The round's aggregation mode; a plaintext round may use this member's own strategy."""
        if self.strategy is not None and round_["mode"] == "plaintext":
            return PlaintextAggregation(self.strategy)
        return make_aggregation(round_["mode"])

    def combine(self, round_: dict[str, Any], sealed: dict[str, bytes]) -> Any:
        """Parameters aggregated from these sealed updates (a group's, or the round's) through the seam."""
        return self.aggregation(round_).combine(sealed)

    # -- secure aggregation ------------------------------------------------------
    def advertise_mask_key(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Selection (masking): fresh X25519 keys for this round; only their public halves leave.
        (``screen`` advertises them in its own transaction; this is the separate one.)"""
        return self.contract.submit_json("AdvertiseMaskKey", round_["round"], *self._mask_public_keys(round_))

    def _mask_public_keys(self, round_: dict[str, Any]) -> tuple[str, str]:
        """This round's mask and share public keys (hex), the secrets made and kept first."""
        number = round_["round"]
        for old in [r for r in self.secrets if r < number]:  # earlier rounds are closed
            del self.secrets[old]
        secrets = self.mask_secrets(number)
        if secrets is None:  # kept before their public halves go out: a restart reuses them
            secrets = self.secrets[number] = MaskSecrets.generate()
            if self.round_secrets is not None:
                self.round_secrets.forget_before(number)
                self.round_secrets.save(number, secrets)
        return secrets.mask_public.hex(), secrets.share_public.hex()

    def share_mask_keys(self, round_: dict[str, Any]) -> dict[str, Any]:
        """Configuration (masking): Shamir shares of this round's secrets, sealed to each selected member."""
        number = round_["round"]
        context = self.round_context(round_, members=round_["selected"])
        bundle = MaskingAggregation().share_bundle(self.msp_id, context)
        digest = self.store.put(bundle)
        return self.contract.submit_json("ShareMaskKeys", number, digest, len(bundle))

    def reveal_mask_shares(self, round_: dict[str, Any]) -> dict[str, Any] | None:
        """Update (masking): release the shares the recorded contributor set calls for — self-mask
        seeds of contributors, mask keys of the others, never both — sealed to the aggregator.

        None when the sum is already unmasked: with members in their own processes the
        aggregator may unmask from the threshold of others' reveals before this one arrives.
        """
        from blockfedml.fl.attribution import masking_group, reveal_group_shares

        if masking_group(self, round_) is not None:  # one unmasking per attribution group
            return reveal_group_shares(self, round_)
        number = round_["round"]
        request = self.contract.evaluate_json("GetDecryptions", number)[0]
        if request["result"] is not None:
            return None
        context = self.round_context(round_)
        held = set(context.graph.holders(self.msp_id))  # whose shares this member holds (symmetric graph)
        reveal = MaskingAggregation().reveal(self.msp_id, self._bundles(round_, held), request["contributors"],
                                             round_["aggregator"], context)
        digest = self.store.put(reveal)
        try:
            return self.contract.submit_json("RevealMaskShares", number, digest, len(reveal))
        except PhaseError:
            if self.contract.evaluate_json("GetDecryptions", number)[0]["result"] is not None:
                return None  # unmasked meanwhile: this reveal is not needed
            raise

    def round_context(self, round_: dict[str, Any], weights: dict[str, int] | None = None,
                      members: list[str] | None = None) -> RoundContext:
        """What the round's mode needs, read from the ledger (keys) and this member's own secrets."""
        number, mode = round_["round"], round_["mode"]
        participants = tuple(members if members is not None else round_.get("participants", []))
        if mode == "paillier":
            public_key = self._public_key(round_["key"])
            if public_key.fingerprint not in self._randomness:
                self._randomness[public_key.fingerprint] = make_randomness(self.randomness_source, public_key)
            return RoundContext(number, participants, weights or {}, public_key=public_key,
                                randomness=self._randomness[public_key.fingerprint])
        if mode == "masking":
            advertised = {k["msp_id"]: k for k in self.contract.evaluate_json("GetMaskKeys", number)}
            keys = {m: k for m, k in advertised.items() if m in participants}
            if len(keys) != len(participants):
                raise PhaseError(f"round {number}: {sorted(set(participants) - set(keys))} advertised no mask keys")
            graph = graph_of_round(round_, advertised)
            return RoundContext(number, participants, weights or {},
                                mask_keys={m: bytes.fromhex(k["mask_key"]) for m, k in keys.items()},
                                share_keys={m: bytes.fromhex(k["share_key"]) for m, k in advertised.items()
                                            if m in graph.members},
                                threshold=graph.threshold, secrets=self.mask_secrets(number), graph=graph)
        return RoundContext(number, participants, weights or {})

    def mask_secrets(self, number: int) -> MaskSecrets | None:
        """This member's masking secrets of a round, from memory or from its folder after a restart."""
        if number not in self.secrets and self.round_secrets is not None:
            loaded = self.round_secrets.load(number)
            if loaded is not None:
                self.secrets[number] = loaded
        return self.secrets.get(number)

    def _aggregate_secure(self, round_: dict[str, Any], mode: SecureAggregation) -> dict[str, Any] | None:
        number = round_["round"]
        requests = self.contract.evaluate_json("GetDecryptions", number)
        if not requests:
            return self._request_opening(round_, mode)
        request = requests[0]
        if request["result"] is None:
            if not isinstance(mode, MaskingAggregation):
                return None  # the key holder has not decrypted it yet
            request = self._unmask(round_, mode, request)
            if request is None:
                return None  # fewer revealed shares than the threshold so far
        result = fetch(self.store, request["result"])
        self.model.set_params(mode.finish(result, number, request["contributors"], request["weight"]))
        digest = put_model(self.store, self.model)
        return self.contract.submit_json("ProposeAggregate", number, digest, request["contributors"])

    def _request_opening(self, round_: dict[str, Any], mode: SecureAggregation) -> dict[str, Any]:
        """Sum the verified blobs and ask the ledger to have that sum opened; check first, write after."""
        number = round_["round"]
        commitments = self.commitments(round_)
        context = self.round_context(round_, weights={c["msp_id"]: c["num_samples"] for c in commitments})
        sealed = self.usable_contributions(round_, mode, context)
        if sealed is None:
            return None  # the exclusions left too few: the round was aborted
        contributors = sorted(sealed)
        needed = opening_size(self.contract.evaluate_json("GetSettings")["min_group_size"])
        if round_["mode"] == "masking":
            needed = max(needed, round_["mask_threshold"])
        if len(contributors) < needed:
            raise PhaseError(f"round {number} has {len(contributors)} contributors {contributors}; opening a "
                             f"sum needs {needed} (min_group_size others besides the aggregator and each "
                             "contributor): too few survivors, nothing was written")
        summed = mode.sum(sealed, context)
        publish_for_opening(self.store, mode, sealed)
        digest = self.store.put(summed)
        return self.contract.submit_json("RequestDecryption", number, digest, contributors)

    def _unmask(self, round_: dict[str, Any], mode: MaskingAggregation,
                request: dict[str, Any]) -> dict[str, Any] | None:
        number = round_["round"]
        revealed = self.contract.evaluate_json("GetMaskReveals", number)
        if len(revealed) < round_["mask_threshold"]:
            return None
        context = self.round_context(round_)
        if secagg.short_of_shares(context.graph, [r["msp_id"] for r in revealed], round_["participants"]):
            return None  # some member's share holders have not revealed enough yet
        reveals = {r["msp_id"]: fetch(self.store, r) for r in revealed}
        result, opening = mode.unmask(fetch(self.store, request), reveals, self._bundles(round_), self.msp_id,
                                      request["contributors"], request["weight"], context)
        digest = self.store.put(result)
        return self.contract.submit_json("RecordDecryption", number, 0, digest, self.store.put(opening))

    def _bundles(self, round_: dict[str, Any], among: set[str] | None = None) -> dict[str, bytes]:
        """The participants' share bundles (only those ``among``, if given), each checked against its
        digest on the ledger."""
        wanted = set(round_["participants"]) if among is None else set(round_["participants"]) & among
        return {s["msp_id"]: fetch(self.store, s)
                for s in self.contract.evaluate_json("GetMaskShares", round_["round"]) if s["msp_id"] in wanted}

    def _public_key(self, pinned: dict[str, Any]) -> PaillierPublicKey:
        """The round's Paillier key from the store; its name is its fingerprint, so it is the pinned one."""
        key = PaillierPublicKey.from_bytes(self.store.get(pinned["fingerprint"]))
        if key.bits != pinned["bits"]:
            raise IntegrityError(f"the key {pinned['fingerprint'][:12]} has {key.bits} bits, the ledger says "
                                 f"{pinned['bits']}")
        return key

    # -- driving ------------------------------------------------------------------
    def act(self, round_: dict[str, Any]) -> str | None:
        """Do this member's actions for the round's current phase, each once; return their names."""
        names = []
        for action in self._actions_for(round_):
            key = (round_["round"], action.__name__)
            if key not in self.done:
                try:
                    action(round_)
                    names.append(action.__name__)
                except ConflictError as exc:  # taken before a restart: the ledger already has it
                    if "[EXISTS]" not in str(exc):
                        raise
                    names.append(f"{action.__name__} (already done)")
                self.done.add(key)
        if round_.get("phase") == "update" and (round_["round"], "train_and_commit") in self.done \
                and self.deliver(round_) and round_["aggregator"] != self.msp_id:
            names.append(f"update sent to {round_['aggregator']}")
        return "+".join(names) or None

    def ready_to_aggregate(self, round_: dict[str, Any]) -> bool:
        """This member aggregates the round and every participant that remains has committed."""
        if round_["phase"] != "update" or round_.get("aggregator") != self.msp_id or round_.get("proposal"):
            return False
        committed = {u["msp_id"] for u in self.commitments(round_)}
        return set(remaining(round_)) <= committed

    def _actions_for(self, round_: dict[str, Any]) -> list:
        masking = round_.get("mode") == "masking"
        phase = round_["phase"]
        if phase == "selection":
            return [self.screen]  # with the terms accepted and (masking) the mask keys: one transaction
        if self.msp_id not in round_.get("selected", []):
            return []
        if phase == "configuration":
            accept = [] if (round_["round"], "screen") in self.done else [self.accept]  # accepted at screening
            return accept + [self.share_mask_keys] if masking else accept
        if self.msp_id not in remaining(round_):  # not a participant, or recorded absent: nothing left to do
            return []
        if phase == "update":
            if masking and self._unmasking_requested(round_):
                return [self.train_and_commit, self.reveal_mask_shares]
            return [self.train_and_commit]
        if phase == "attribution" and round_["attribution"]["accepted"] and self.msp_id == round_["aggregator"]:
            return [self.endorse_groups, self.aggregate]  # groups scored: propose the accepted groups' aggregate
        action = self._action_for(round_)
        return [action] if action is not None else []

    def _unmasking_requested(self, round_: dict[str, Any]) -> bool:
        """Masking: the aggregator asked for the round's sum (with attribution: for every group's)."""
        from blockfedml.fl.attribution import group_unmasking_requested, masking_group

        if masking_group(self, round_) is not None:
            return group_unmasking_requested(self, round_)
        return bool(self.contract.evaluate_json("GetDecryptions", round_["round"]))

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

    def _endorsement_data(self) -> tuple[Any, Any]:
        """Local validation data, with the consortium's common reference set when the member holds one."""
        if self.reference is None:
            return self.data.X_val, self.data.y_val
        return (np.concatenate([self.data.X_val, self.reference[0]]),
                np.concatenate([self.data.y_val, self.reference[1]]))

    def _evaluate(self, digest: str, data: tuple[Any, Any] | None = None) -> float:
        """The task's metric of a checkpoint on local validation data, or on ``data``
        (>= 0, as the ledger needs)."""
        from blockfedml.data.metrics import score_model

        X, y = data if data is not None else (self.data.X_val, self.data.y_val)
        load_checkpoint(self.store, digest, self.model)
        result = self.model.evaluate(X, y)
        if self.metric not in result:  # e.g. AUC of a numpy model: score its predictions
            result[self.metric] = score_model(self.model, X, y, self.metric)
        return max(0.0, float(result[self.metric]))


def remaining(round_: dict[str, Any]) -> list[str]:
    """The round's participants not recorded absent when a phase closed at its deadline."""
    absent = set(round_.get("absent") or [])
    return [p for p in round_.get("participants", []) if p not in absent]


def publish_for_opening(store: ModelStore, mode: AggregationMode, sealed: dict[str, bytes]) -> None:
    """Paillier: put the contributors' committed ciphertexts where the key holder fetches them by
    digest (with the exchange they reached only the aggregator). The key holder multiplies them
    itself; ciphertexts tell nobody else anything."""
    if isinstance(mode, PaillierAggregation):
        for blob in sealed.values():
            store.put(blob)


def significant(metric: float, base_metric: float, samples: int) -> bool:
    """Whether an accuracy change on ``samples`` samples is more than sampling noise.

    Noise is one sample, or one binomial standard error of the base accuracy,
    whichever is larger: on the 20 samples of breast cancer's reference set
    every honest member would otherwise lose the same one sample and vote
    together for a rollback, round after round.
    """
    p = min(max(base_metric, 0.0), 1.0)
    noise = max(1.0 / samples, math.sqrt(p * (1.0 - p) / samples)) if samples else 0.0
    return abs(metric - base_metric) > noise + 1e-12


def fetch(store: ModelStore, record: dict[str, Any]) -> bytes:
    """The blob a ledger record names (``digest``, and ``size`` when recorded), re-hashed by the store."""
    producer = record.get("msp_id")
    blob = store.get(record["digest"], producer) if isinstance(store, BlobStore) else store.get(record["digest"])
    if "size" in record and len(blob) != record["size"]:
        raise IntegrityError(f"blob {record['digest'][:12]} has {len(blob)} bytes, the ledger says {record['size']}")
    return blob


@dataclass
class KeyHolder:
    """Collaborator C: holds a Paillier private key and decrypts only what the ledger authorizes.

    It never decrypts a blob someone hands it: it reads the request (round, index)
    from the ledger — the sum's digest, its contributors (at least
    ``min_group_size`` besides anyone who sees the result, checked by the
    contract) and their total weight — fetches each contributor's committed
    ciphertexts by digest, checks them against the commitments, multiplies them
    itself and decrypts only that product, whose sum blob must hash to the
    authorized digest (the aggregator's blob is at most a hint). With the result
    it publishes the randomness r of every decrypted ciphertext, so anyone can
    re-encrypt and check it. It is never a participant, so no sum it opens
    contains an update it already knows.
    """

    msp_id: str
    contract: Contract
    store: ModelStore
    private_key: PaillierPrivateKey
    done: set[tuple[int, int]] = field(default_factory=set)

    def join(self) -> dict[str, Any]:
        return self.contract.submit_json("Join")

    def publish_key(self) -> dict[str, Any]:
        """Put the public key in the store (named by its fingerprint) and the fingerprint on the ledger."""
        public = self.private_key.public_key
        fingerprint = self.store.put(public.to_bytes())
        try:
            current = self.contract.evaluate_json("GetPublicKey", self.msp_id)
        except NotFoundError:
            current = None
        if current is not None and current["fingerprint"] == fingerprint:
            return current
        epoch = 1 if current is None else current["epoch"] + 1
        return self.contract.submit_json("PublishKey", epoch, fingerprint, public.bits)

    def decrypt(self, round_number: int, index: int = 0) -> dict[str, Any]:
        """Decrypt sum ``index`` of the round and record the result; refuse anything not authorized."""
        round_ = self.contract.evaluate_json("GetRound", round_number)
        if round_["mode"] != "paillier" or round_.get("keyholder") != self.msp_id:
            raise NotAuthorizedError(f"{self.msp_id} is not the key holder of round {round_number} "
                                     f"(mode {round_['mode']}, key holder {round_.get('keyholder')}): refusing")
        fingerprint = self.private_key.public_key.fingerprint
        if round_["key"]["fingerprint"] != fingerprint:
            raise NotAuthorizedError(f"round {round_number} uses key {round_['key']['fingerprint'][:12]}, "
                                     f"not this key holder's {fingerprint[:12]}: refusing")
        requests = {r["index"]: r for r in self.contract.evaluate_json("GetDecryptions", round_number)}
        request = requests.get(index)
        if request is None:
            raise NotAuthorizedError(f"the ledger authorizes no decryption {index} in round {round_number}: "
                                     "refusing (only sums recorded by RequestDecryption are decrypted)")
        if request["result"] is not None:
            raise ConflictError(f"decryption {index} of round {round_number} is already recorded")
        minimum = opening_size(self.contract.evaluate_json("GetSettings")["min_group_size"])
        if len(set(request["contributors"])) < minimum:  # the contract refuses these; check anyway
            raise NotAuthorizedError(f"decryption {index} of round {round_number} covers "
                                     f"{len(request['contributors'])} contributors, fewer than {minimum}: refusing")
        blobs, weights = self._committed_ciphertexts(round_number, index, request)
        context = RoundContext(round_number, tuple(round_["participants"]), weights,
                               public_key=self.private_key.public_key)
        sum_blob, result, opening = PaillierAggregation().open(blobs, self.private_key, context)
        if sha256_hex(sum_blob) != request["digest"]:
            raise IntegrityError(f"decryption {index} of round {round_number}: the product of the committed "
                                 f"ciphertexts of {', '.join(request['contributors'])} is sum {sha256_hex(sum_blob)}, "
                                 f"but the aggregator asked to open {request['digest']}: refusing (nothing was "
                                 "decrypted; its sum blob is not the sum of what the contributors committed)")
        digest = self.store.put(result)
        return self.contract.submit_json("RecordDecryption", round_number, index, digest, self.store.put(opening))

    def _committed_ciphertexts(self, round_number: int, index: int,
                               request: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, int]]:
        """Each contributor's committed update, fetched by digest and checked against its commitment."""
        commitments = {u["msp_id"]: u for u in self.contract.evaluate_json("GetUpdates", round_number)}
        blobs, weights = {}, {}
        for org in request["contributors"]:
            commitment = commitments.get(org)
            if commitment is None:
                raise IntegrityError(f"decryption {index} of round {round_number} names {org}, which committed "
                                     "no update: refusing")
            try:
                blob = self.store.get(commitment["digest"])
            except NotFoundError:
                raise NotFoundError(f"decryption {index} of round {round_number}: the committed update "
                                    f"{commitment['digest'][:12]} of {org} is not in the store yet (the aggregator "
                                    "publishes the contributors' ciphertexts when it asks); try again") from None
            problem = commitment_problem(round_number, commitment, blob)
            if problem:
                raise IntegrityError(f"decryption {index}: {problem}: refusing")
            blobs[org], weights[org] = blob, commitment["num_samples"]
        if sum(weights.values()) != request["weight"]:
            raise IntegrityError(f"decryption {index} of round {round_number} records weight {request['weight']}, "
                                 f"the contributors committed {sum(weights.values())} samples: refusing")
        return blobs, weights

    def act(self, round_: dict[str, Any]) -> str | None:
        """Decrypt every authorized sum of the round still waiting for this key holder."""
        if round_.get("mode") != "paillier" or round_.get("keyholder") != self.msp_id or round_["phase"] != "update":
            return None
        number, opened = round_["round"], []
        for request in self.contract.evaluate_json("GetDecryptions", number):
            if request["result"] is None and (number, request["index"]) not in self.done:
                self.decrypt(number, request["index"])
                self.done.add((number, request["index"]))
                opened.append(request["index"])
        return f"decrypt {opened}" if opened else None
