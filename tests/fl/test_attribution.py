"""Attribution in whole sessions: group aggregates through the seam, harmful groups kept out,
reputation flowing from groups, and rounds whose every group harms."""

from __future__ import annotations

import numpy as np
import pytest

from blockfedml.consortium import Consortium
from blockfedml.errors import IntegrityError
from blockfedml.fl.aggregation import make_aggregation
from blockfedml.fl.attacks import HONEST, Attack, AttackPlan
from blockfedml.fl.attribution import accepted_updates, group_aggregates, summary
from blockfedml.fl.session import Session
from blockfedml.fl.strategy import ClientUpdate, FedAvg
from blockfedml.fl.task import TaskSpec
from blockfedml.ml.serialization import load_params


def sealed_updates(values: dict[str, float]) -> dict[str, bytes]:
    mode = make_aggregation("plaintext")
    return {org: mode.seal(ClientUpdate(org, np.full(3, v), 10 + i)) for i, (org, v) in enumerate(values.items())}


def test_group_aggregates_are_the_seams_combine_over_each_group() -> None:
    sealed = sealed_updates({"A": 1.0, "B": 3.0, "C": 10.0, "D": 20.0})
    mode = make_aggregation("plaintext")
    groups = [["A", "B"], ["C", "D"], ["C", "E"]]
    first, second, missing = group_aggregates(mode.combine, sealed, groups)
    assert np.allclose(first, (10 * 1.0 + 11 * 3.0) / 21)          # FedAvg of the group, by sample counts
    assert np.allclose(second, (12 * 10.0 + 13 * 20.0) / 25)
    assert missing is None                                           # E sent nothing: no partial group


def test_accepted_updates_keep_only_the_accepted_groups() -> None:
    sealed = sealed_updates({"A": 1.0, "B": 2.0, "C": 3.0})
    assert accepted_updates({"round": 1}, sealed) == sealed
    round_ = {"round": 1, "attribution": {"accepted": ["A", "C"]}}
    assert sorted(accepted_updates(round_, sealed)) == ["A", "C"]
    with pytest.raises(IntegrityError, match="did not receive"):
        accepted_updates({"round": 1, "attribution": {"accepted": ["A", "Z"]}}, sealed)


def test_a_lying_attacker_is_kept_out_of_every_aggregate_and_banned_while_honest_members_gain(tmp_path) -> None:
    c = Consortium.create(tmp_path / "c", n_orgs=9, task=TaskSpec(dataset="digits"), auditor=False,
                          settings={"attribution": 1, "penalty": 30})  # three groups of three
    attacker = "Org9MSP"
    try:
        session = Session(c, attack=AttackPlan("sign_flip", 1 / 9, lie=True))
        session.join_all()
        results = []
        while attacker not in sum((r.banned for r in results), []) and len(results) < 12:
            results.append(session.run_round())
        auditor = c.contract("Org1")
        rows = {row["msp_id"]: row for row in summary(auditor, [m.msp_id for m in session.members])}
        for result in results:
            record = auditor.evaluate_json("GetRound", result.round)
            assert [h["phase"] for h in record["history"]][3:5] == ["update", "attribution"]
            assert all(len(g["members"]) >= 3 for g in record["attribution"]["groups"])  # 2 others for each member
            assert attacker not in record["proposal"]["contributors"]
            assert record["proposal"]["contributors"] == record["attribution"]["accepted"]
            # Each group aggregate is exactly the FedAvg of that group's committed updates.
            commits = {u["msp_id"]: u["digest"] for u in auditor.evaluate_json("GetUpdates", result.round)}
            for group in record["attribution"]["groups"]:
                updates = [ClientUpdate(m, load_params(c.store, commits[m])[0], 1) for m in group["members"]]
                weights = {u["msp_id"]: u["num_samples"] for u in auditor.evaluate_json("GetUpdates", result.round)}
                expected = FedAvg().aggregate([ClientUpdate(u.org, u.params, weights[u.org]) for u in updates])
                assert np.allclose(load_params(c.store, group["digest"])[0], expected)
        final = session.run_round()                                     # the banned attacker is out
    finally:
        c.close()
    assert attacker in sum((r.banned for r in results), []), [r.groups for r in results]
    assert rows[attacker]["status"] == "banned" and rows[attacker]["blamed"] >= 1
    assert attacker not in final.participants
    for msp, row in rows.items():
        if msp != attacker:
            assert row["status"] == "active" and row["blamed"] == 0 and row["balance"] >= 100, row  # no gain: no reward
    assert final.head_accuracy > 0.85


def test_a_round_whose_only_group_harms_is_rejected_and_the_head_stays(tmp_path) -> None:
    settings = {"attribution": 1, "min_group_size": 2, "min_participants": 3}  # one group of three
    c = Consortium.create(tmp_path / "c", n_orgs=3, task=TaskSpec(), auditor=False, settings=settings)
    try:
        session = Session(c)
        first = session.run(1)[0]
        assert first.status == "accepted" and first.head == first.digest
        session.members[2].behaviour = Attack("noise", member="Org3MSP", strength=5.0)  # it turns
        second = session.run_round()
        record = c.contract("Org1").evaluate_json("GetRound", second.round)
        session.members[2].behaviour = HONEST
        third = session.run_round()
    finally:
        c.close()
    assert second.status == "rejected" and second.digest == "" and record["proposal"] is None
    assert second.head == first.head and second.head_accuracy == first.head_accuracy
    assert [g["verdict"] for g in second.groups] == ["harmful"]
    assert record["decision"]["banned"] == [] and set(second.reputation.values()) == {110}  # nobody singled out
    assert third.status == "accepted"


@pytest.mark.parametrize("secure", ["paillier", "masking"])
def test_under_encryption_group_aggregates_are_opened_group_sums_and_match_plaintext(tmp_path, secure) -> None:
    """The same round twice, in plaintext and under a secure mode: one authorized sum per group is
    opened (the key holder decrypts it, or the members reveal the self-mask shares of that group's
    members only), never one update, and the groups' aggregates and verdicts are the same."""
    from blockfedml.crypto import generate_keypair, save_private_key
    from blockfedml.crypto.secagg import mask_opening_from_bytes, unpack

    key = generate_keypair(2048)
    runs = {}
    for mode in ("plaintext", secure):
        c = Consortium.create(tmp_path / mode, n_orgs=6, task=TaskSpec(), auditor=False, collaborator=True,
                              settings={"attribution": 1})  # two groups of three
        save_private_key(c.workdir / "orgs" / "Collaborator" / "keys" / "paillier.key", key)
        try:
            result = Session(c, mode=mode, attack=AttackPlan("noise", 1 / 6, strength=5.0)).run(1)[0]
            contract = c.contract("Org1")
            record = contract.evaluate_json("GetRound", 1)
            opened = contract.evaluate_json("GetDecryptions", 1) if mode != "plaintext" else []
            groups = [load_params(c.store, g["digest"])[0] for g in record["attribution"]["groups"]]
            if mode == "masking":  # each member masked against its own group only; no mask key was revealed
                for update in contract.evaluate_json("GetUpdates", 1):
                    header, _ = unpack(c.store.get(update["digest"]), "masked-update")
                    own = next(sorted(g) for g in record["groups"] if update["msp_id"] in g)
                    assert header["participants"] == own
                for request in opened:
                    _, seeds, dropped_keys = mask_opening_from_bytes(c.store.get(request["result"]["opening"]))
                    assert sorted(seeds) == request["contributors"] and dropped_keys == {}
            runs[mode] = (result, record, opened, groups, load_params(c.store, record["proposal"]["digest"])[0])
        finally:
            c.close()
    (plain, plain_record, _, plain_groups, plain_model) = runs["plaintext"]
    (result, record, opened, groups, model) = runs[secure]
    assert sorted(r["contributors"] for r in opened) == sorted(sorted(g) for g in record["groups"])
    assert all(len(r["contributors"]) >= 3 and r["result"] for r in opened)
    assert [g["verdict"] for g in record["attribution"]["groups"]] == \
        [g["verdict"] for g in plain_record["attribution"]["groups"]]
    assert "Org6MSP" not in record["proposal"]["contributors"]
    for exact, decrypted in zip(plain_groups, groups):
        assert np.allclose(exact, decrypted, atol=1e-5)          # fixed point, 20 fractional bits
    assert np.allclose(plain_model, model, atol=1e-5)
    assert result.status == plain.status == "accepted"
