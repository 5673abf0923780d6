"""Secure rounds audited without any secret: sums recomputed from the committed blobs, openings
decoded with the round's public facts; attribution rounds rescored and settled with the rules.

Four small sessions, each built once for this module (3 organizations, 2 rounds): Paillier
(with a Collaborator key holder), masking, Paillier with attribution (4 organizations) and masking
with attribution (6 organizations: each group's sum unmasked alone).
Every test tampers with a private copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tamper import blob_copies, corrupt_blob, delete_blob, set_state, state_value

from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.crypto import generate_keypair, save_private_key
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec
from blockfedml.store import ModelStore

BUILDS = {"paillier": ("paillier", 3, {}), "masking": ("masking", 3, {}),
          "attribution": ("paillier", 4, {"attribution": 1}),
          "masked_groups": ("masking", 6, {"attribution": 1})}  # masks scoped to each group, one sum per group


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[str, Path]:
    key = generate_keypair(2048)
    built = {}
    for name, (mode, orgs, settings) in BUILDS.items():
        workdir = tmp_path_factory.mktemp("secure") / name
        c = Consortium.create(workdir, n_orgs=orgs, task=TaskSpec(), collaborator=mode == "paillier",
                              settings=settings or None)
        try:
            if mode == "paillier":
                save_private_key(workdir / "orgs" / "Collaborator" / "keys" / "paillier.key", key)
            assert [r.status for r in Session(c, mode=mode).run(2)] == ["accepted", "accepted"]
        finally:
            c.close()
        built[name] = workdir
    return built


@pytest.fixture
def copy_of(sessions, tmp_path):
    return lambda name: Path(shutil.copytree(sessions[name], tmp_path / name, ignore=shutil.ignore_patterns("audit")))


def run_audit(workdir):
    consortium = Consortium.open(workdir)
    try:
        return audit_consortium(consortium)
    finally:
        consortium.close()


def failed(report) -> dict[str, list]:
    return {c.name: c.findings for c in report.checks if c.status == "fail"}


def state(workdir, key) -> dict:
    return json.loads(state_value(workdir, key))


def request(workdir, number=2, index=0) -> dict:
    return state(workdir, f"decrypt~{number:08d}~{index:04d}")


@pytest.mark.parametrize("name", list(BUILDS))
def test_an_untouched_secure_session_passes_with_nothing_skipped(copy_of, name):
    report = run_audit(copy_of(name))
    assert report.ok, [str(f) for f in report.findings]
    assert [c.status for c in report.checks] == ["pass"] * 7
    assert not any(c.skipped for c in report.checks)
    aggregates = report.check("aggregates").detail
    assert aggregates.startswith("2 of 2 aggregates recomputed") and "authorized sums re-summed" in aggregates
    if name == "masked_groups":
        assert "4 group aggregates, 4 authorized sums" in aggregates  # 2 rounds x 2 groups of 3, each unmasked
    if name == "attribution":
        assert "group aggregates" in aggregates
        assert report.check("decisions").detail == "2 decisions, groups of 2 rounds rescored"
        assert "2 attribution settlements" in report.check("reputation").detail


@pytest.mark.parametrize("name", ["paillier", "masking"])
def test_a_tampered_ciphertext_blob_is_caught_with_its_commit(copy_of, name):
    workdir = copy_of(name)
    digest = state(workdir, "update~00000002~Org1MSP")["digest"]
    corrupt_blob(workdir, digest)
    problems = failed(run_audit(workdir))
    assert set(problems) == {"aggregates"}
    (finding,) = problems["aggregates"]
    assert finding.round == 2 and finding.object == f"update blob {digest} of Org1MSP" and finding.tx
    assert "does not match its commitment" in finding.message


@pytest.mark.parametrize("name", ["paillier", "masking"])
def test_a_tampered_stored_sum_is_caught(copy_of, name):
    workdir = copy_of(name)
    wanted = request(workdir)
    corrupt_blob(workdir, wanted["digest"])
    (finding,) = failed(run_audit(workdir))["aggregates"]
    assert (finding.round, finding.tx, finding.object) == (2, wanted["tx"], f"sum blob {wanted['digest']}")
    assert "corrupt" in finding.message


@pytest.mark.parametrize("name", ["paillier", "masking"])
def test_a_tampered_decryption_result_is_caught(copy_of, name):
    workdir = copy_of(name)
    result = request(workdir)["result"]
    corrupt_blob(workdir, result["digest"])
    (finding,) = failed(run_audit(workdir))["aggregates"]
    assert (finding.round, finding.tx) == (2, result["tx"])
    assert finding.object == f"sum-result blob {result['digest']} (request 0)"
    assert "decryption result does not match its digest" in finding.message


@pytest.mark.parametrize("name", ["paillier", "masking"])
def test_a_decryption_record_pointing_at_another_opened_sum_is_caught(copy_of, name):
    """World state edited to name round 1's (genuine, well-formed) result as round 2's."""
    workdir = copy_of(name)
    forged = {**request(workdir), "result": {**request(workdir)["result"],
                                             "digest": request(workdir, 1)["result"]["digest"]}}
    set_state(workdir, "decrypt~00000002~0000", json.dumps(forged).encode())
    problems = failed(run_audit(workdir))
    assert {"ledger", "aggregates"} <= set(problems)
    (finding,) = problems["aggregates"]
    assert finding.round == 2 and "cannot be decoded with the round's facts" in finding.message


def test_a_sum_request_over_other_contributors_is_caught(copy_of):
    """The request names a digest that is not the homomorphic sum of its contributors' ciphertexts."""
    workdir = copy_of("paillier")
    forged = {**request(workdir), "digest": request(workdir, 1)["digest"]}
    set_state(workdir, "decrypt~00000002~0000", json.dumps(forged).encode())
    (finding,) = failed(run_audit(workdir))["aggregates"]
    assert finding.round == 2 and "hashes to" in finding.message and forged["digest"] in finding.message


def test_a_tampered_group_score_is_caught(copy_of):
    workdir = copy_of("attribution")
    record = state(workdir, "round~00000001")
    record["attribution"]["groups"][0]["score"] += 1
    set_state(workdir, "round~00000001", json.dumps(record).encode())
    problems = failed(run_audit(workdir))
    assert "decisions" in problems
    (finding,) = problems["decisions"]
    assert (finding.round, finding.object) == (1, "round~00000001 group 0")
    assert finding.tx == record["attribution"]["tx"] and "score" in finding.message


def test_a_tampered_group_reputation_entry_is_caught(copy_of):
    workdir = copy_of("attribution")
    key = "rephist~Org1MSP~00000001"
    entry = state(workdir, key)
    assert (entry["round"], entry["reason"]) == (1, "group_reward")
    set_state(workdir, key, json.dumps({**entry, "delta": entry["delta"] + 5,
                                        "balance": entry["balance"] + 5}).encode())
    problems = failed(run_audit(workdir))
    assert {"ledger", "reputation"} == set(problems)
    assert problems["reputation"][0].object == key and problems["reputation"][0].round == 1


def test_a_tampered_group_record_is_caught(copy_of):
    workdir = copy_of("attribution")
    record = state(workdir, "attr~Org2MSP")
    set_state(workdir, "attr~Org2MSP", json.dumps({**record, "harmful": record["harmful"] + 1}).encode())
    (finding,) = failed(run_audit(workdir))["reputation"]
    assert finding.object == "attr~Org2MSP"


def test_a_key_holder_that_lies_about_one_slot_is_caught_by_audit_verify(tmp_path, monkeypatch):
    """Round 2's key holder publishes a wrong plaintext for slot 0 (its first ciphertext) (and a sum-result that agrees with
    its lie): the ledger is genuine, the model was built from the lie, yet `audit verify` re-encrypts
    the published plaintext with its r, finds another ciphertext, and names round, sum and slot."""
    from typer.testing import CliRunner

    from blockfedml.cli.main import app
    from blockfedml.crypto.paillier import PaillierPrivateKey

    workdir = tmp_path / "liar"
    c = Consortium.create(workdir, n_orgs=3, task=TaskSpec(), collaborator=True)
    try:
        session = Session(c, mode="paillier")
        assert session.run(1)[0].status == "accepted"
        honest = PaillierPrivateKey.decrypt

        def lying_decrypt(self, ciphertexts, workers=None):
            plaintexts = honest(self, ciphertexts)
            plaintexts[0] += 1 << 40  # one packed value in slot 0, shifted: a plausible-looking lie
            return plaintexts

        monkeypatch.setattr(PaillierPrivateKey, "decrypt", lying_decrypt)
        session.run_round()
    finally:
        c.close()
    report = run_audit(workdir)
    problems = failed(report)
    assert set(problems) == {"aggregates"}
    (finding,) = problems["aggregates"]
    assert finding.round == 2 and "round 2, sum 0, slot 0:" in finding.message and "re-encrypt" in finding.message
    opening = request(workdir)["result"]["opening"]
    assert finding.object == f"opening {opening} of sum 0 of round 2"
    result = CliRunner().invoke(app, ["audit", "verify", "-w", str(workdir)], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "slot 0" in result.output


def test_a_mask_opening_with_a_wrong_seed_is_caught(copy_of):
    """The aggregator's published seeds must hash to their owners' commitments (an edited opening,
    stored under its own digest and named by an edited record, is caught by the recomputation)."""
    workdir = copy_of("masking")
    record = request(workdir)
    store = Consortium.open(workdir).store  # the admin's: it fetches what it lacks
    blob = store.get(record["result"]["opening"])
    body = json.loads(blob[blob.index(b"\n", 20) + 1:])
    first = sorted(body["self_seeds"])[0]
    body["self_seeds"][first] = "00" * (len(body["self_seeds"][first]) // 2)
    forged = blob[:blob.index(b"\n", 20) + 1] + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    forged_record = {**record, "result": {**record["result"], "opening": store.put(forged)}}
    set_state(workdir, "decrypt~00000002~0000", json.dumps(forged_record).encode())
    problems = failed(run_audit(workdir))
    (finding,) = problems["aggregates"]
    assert finding.round == 2 and f"the published self-mask seed of {first} does not match its commitment" \
        in finding.message


def test_masked_updates_kept_only_by_the_aggregator_still_have_their_opening_redone(copy_of):
    """Over the exchange, masked updates reach only the aggregator: the audit notes that it cannot
    re-sum them, takes the stored masked sum (re-hashed against the request) and still redoes the
    unmasking; a masked sum edited behind the ledger's back then fails."""
    workdir = copy_of("masking")
    for number in (1, 2):
        delete_blob(workdir, state(workdir, f"update~{number:08d}~Org2MSP")["digest"])
    report = run_audit(workdir)
    aggregates = report.check("aggregates")
    assert aggregates.status == "pass" and aggregates.detail.startswith("2 of 2 aggregates recomputed")
    assert any("reached only the aggregator" in reason for reason in aggregates.skipped)
    corrupt_blob(workdir, request(workdir)["digest"])
    (finding,) = failed(run_audit(workdir))["aggregates"]
    assert finding.round == 2 and "masked sum does not match its digest" in finding.message


@pytest.mark.parametrize("name", ["paillier", "masking"])
def test_a_missing_opening_is_a_failure_never_a_skip(copy_of, name):
    workdir = copy_of(name)
    opening = request(workdir)["result"]["opening"]
    delete_blob(workdir, opening)
    (finding,) = failed(run_audit(workdir))["aggregates"]
    assert finding.round == 2 and finding.object == f"opening {opening} of sum 0 of round 2"
    assert "the opening is not available" in finding.message
