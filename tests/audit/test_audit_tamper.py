"""Every injected fault is caught, named by round, transaction and object; no false alarm.

Each case tampers with a private copy of one finished session (conftest.py):
a stored model, an update blob, a world-state row, a block, a signature, a
reputation entry (in world state only, or rewritten in its block and re-signed
with its creator's own key), a decision re-signed by the admin.
"""

from __future__ import annotations

import json
import shutil

import pytest
from tamper import (
    corrupt_blob,
    delete_blob,
    corrupt_file,
    find_block,
    flip_stored_byte,
    ledger_operator,
    rehash_from,
    rewrite_block,
    set_state,
    sql,
    state_value,
)

from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.store import ModelStore


def run_audit(workdir, witnesses=None):
    consortium = Consortium.open(workdir)
    try:
        return audit_consortium(consortium, witnesses=witnesses)
    finally:
        consortium.close()


def failed(report) -> dict[str, list]:
    return {c.name: c.findings for c in report.checks if c.status == "fail"}


def state(workdir, key) -> dict:
    return json.loads(state_value(workdir, key))


def test_an_untouched_ledger_passes_every_check(session_copy):
    report = run_audit(session_copy)
    assert report.ok, [str(f) for f in report.findings]
    assert [c.status for c in report.checks] == ["pass"] * 7
    assert not any(c.skipped for c in report.checks)
    assert report.check("aggregates").detail.startswith("3 of 3")
    assert report.check("decisions").detail == "3 decisions"


def test_a_tampered_accepted_model_is_caught(session_copy):
    digest = state(session_copy, "ckpt~00000001")["digest"]
    corrupt_blob(session_copy, digest)
    report = run_audit(session_copy)
    assert set(failed(report)) == {"checkpoints"}
    (finding,) = failed(report)["checkpoints"]
    assert (finding.round, finding.object) == (1, f"model {digest}")
    assert finding.tx == state(session_copy, "ckpt~00000001")["tx"]
    assert "tampered" in finding.message


def test_a_deleted_accepted_model_is_caught(session_copy):
    digest = state(session_copy, "ckpt~00000003")["digest"]
    delete_blob(session_copy, digest)
    findings = failed(run_audit(session_copy))["checkpoints"]
    assert [(f.round, f.object) for f in findings] == [(3, f"model {digest}")]
    assert "missing" in findings[0].message


def test_a_tampered_update_blob_is_caught_with_its_commit_transaction(session_copy):
    digest = state(session_copy, "update~00000003~Org1MSP")["digest"]
    corrupt_blob(session_copy, digest)
    report = run_audit(session_copy)
    assert set(failed(report)) == {"aggregates"}
    (finding,) = failed(report)["aggregates"]
    commit = find_block(session_copy, "CommitUpdate", 3, "Org1MSP")
    assert (finding.round, finding.tx) == (3, commit["transaction"]["tx_id"])
    assert digest in finding.object and "Org1MSP" in finding.object


def test_an_update_blob_that_is_not_kept_is_skipped_with_a_reason_not_failed(session_copy):
    digest = state(session_copy, "update~00000002~Org3MSP")["digest"]
    delete_blob(session_copy, digest)
    report = run_audit(session_copy)
    assert report.ok
    aggregates = report.check("aggregates")
    assert aggregates.status == "pass" and aggregates.detail.startswith("2 of 3")
    assert aggregates.skipped == ["round 2: the update blobs of Org3MSP are not kept in the store, "
                                  "so the aggregate cannot be recomputed"]


def test_an_edited_world_state_row_is_caught(session_copy):
    record = state(session_copy, "ckpt~00000001")
    set_state(session_copy, "ckpt~00000001", json.dumps({**record, "metric": 999999}).encode())
    problems = failed(run_audit(session_copy))
    assert {"ledger", "checkpoints"} <= set(problems)
    (finding,) = problems["ledger"]
    assert (finding.round, finding.object) == (1, "state key ckpt~00000001")
    assert "differs" in finding.message and finding.tx


def test_a_world_state_row_the_contract_cannot_read_is_a_finding_not_a_crash(session_copy):
    set_state(session_copy, "ckpt~00000002", b"{not json")
    report = run_audit(session_copy)
    problems = failed(report)
    assert set(problems) == {"ledger", "checkpoints", "rounds", "aggregates", "reputation", "decisions"}
    assert [f.object for f in problems["ledger"]] == ["state key ckpt~00000002"]
    assert "cannot be read through the contract" in problems["checkpoints"][0].message


@pytest.mark.parametrize("how", ["flipped byte", "deleted", "rewritten and rehashed"])
def test_a_tampered_block_is_caught(session_copy, how):
    block = find_block(session_copy, "Endorse", 2, "Org1MSP")
    number, tx_id = block["number"], block["transaction"]["tx_id"]
    if how == "flipped byte":
        flip_stored_byte(session_copy, number)
    elif how == "deleted":
        sql(session_copy, "DELETE FROM blocks WHERE number = ?", number)
    else:
        key = "endorse~00000002~Org1MSP"
        forged = {**state(session_copy, key), "metric": 1_000_000}
        rewrite_block(session_copy, number, {key: json.dumps(forged).encode()}, resign=False)
    findings = failed(run_audit(session_copy))["ledger"]
    # The auditor's first pull stops at the block that fails its checks and keeps nothing after it.
    if how == "deleted":
        assert any("missing" in f.message and f.object == f"block {number}" for f in findings)
    elif how == "flipped byte":  # it no longer inflates, or inflates to other bytes: either way named
        assert any(f.object == f"block {number}" and "data hash" in f.message for f in findings)
    else:
        assert any(f.tx == tx_id and f.object == f"block {number}"
                   and "orderer signature does not verify" in f.message for f in findings)


@pytest.mark.parametrize("how", ["rewritten by the ledger operator", "tail cut"])
def test_history_changed_after_the_auditor_copied_it_is_caught(session_copy, how):
    """The auditor pulled the chain once; then the history it holds is rewritten (even with the
    ledger node's own keys) or its tail is cut (what is left still carries valid signatures)."""
    assert run_audit(session_copy).ok
    block = find_block(session_copy, "Endorse", 3, "Org1MSP")
    number = block["number"]
    if how == "tail cut":
        sql(session_copy, "DELETE FROM blocks WHERE number >= ?", number)
        message = "the chain's tail was cut"
    else:
        key = "endorse~00000003~Org1MSP"
        rewrite_block(session_copy, number, {key: json.dumps({**state(session_copy, key), "metric": 1}).encode()},
                      node=ledger_operator(session_copy))
        message = "another block at this height than the auditor's copy holds"
    findings = failed(run_audit(session_copy))["ledger"]
    assert any(f.object == f"block {number}" and message in f.message for f in findings), findings


def test_a_chain_shorter_than_a_members_signed_tip_is_caught(session_copy, tmp_path):
    """A fresh auditor is handed a cut chain: only the member's signed tip shows it."""
    consortium = Consortium.open(session_copy)
    tip = consortium.record_tip("Org2")
    witness = tmp_path / "org2-tip.json"
    witness.write_text(json.dumps(tip))
    assert run_audit(session_copy, witnesses={"org2": tip}).ok
    shutil.rmtree(consortium.audit_folder("Auditor"))  # a new auditor, with no copy yet
    sql(session_copy, "DELETE FROM blocks WHERE number >= ?", tip["number"] - 3)
    problems = failed(run_audit(session_copy, witnesses={"org2": tip}))["ledger"]
    assert any(f.object == f"block {tip['number']}" and "its tail was cut" in f.message for f in problems)
    forged = {**tip, "orderer_signature": tip["orderer_signature"][:-2] + "00"}
    problems = failed(run_audit(session_copy, witnesses={"forged": forged}))["ledger"]
    assert any("tip forged: its orderer signature does not verify" in f.message for f in problems)


def test_a_swapped_signature_is_caught_even_when_the_chain_is_rehashed(session_copy):
    target = find_block(session_copy, "CommitUpdate", 2, "Org2MSP")["number"]
    other = find_block(session_copy, "CommitUpdate", 1, "Org2MSP")["number"]
    sql(session_copy, "UPDATE blocks SET proposal_signature = (SELECT proposal_signature FROM blocks "
                      "WHERE number = ?) WHERE number = ?", other, target)
    rehash_from(session_copy, target)
    findings = failed(run_audit(session_copy))["ledger"]
    # Rehashing needs the orderer's key to re-sign: the first block edited is named.
    assert findings[0].object == f"block {target}"
    assert "orderer signature does not verify" in findings[0].message


def test_a_swapped_signature_re_signed_by_the_ledger_operator_is_caught(session_copy):
    """Even the ledger node's own keys cannot make a swapped proposal signature pass."""
    target = find_block(session_copy, "CommitUpdate", 2, "Org2MSP")["number"]
    other = find_block(session_copy, "CommitUpdate", 1, "Org2MSP")["number"]
    sql(session_copy, "UPDATE blocks SET proposal_signature = (SELECT proposal_signature FROM blocks "
                      "WHERE number = ?) WHERE number = ?", other, target)
    rehash_from(session_copy, target, ledger_operator(session_copy))
    findings = failed(run_audit(session_copy))["ledger"]
    assert [(f.object, f.round) for f in findings] == [(f"block {target}", 2)]
    assert "proposal signature does not verify" in findings[0].message


def _forged_penalty(workdir) -> dict[str, bytes]:
    """Org3's round-2 penalty made small (-65 -> -5): it would not have been banned."""
    entry = state(workdir, "rephist~Org3MSP~00000001")
    assert (entry["round"], entry["delta"], entry["reason"]) == (2, -65, "penalty")
    return {"rephist~Org3MSP~00000001": json.dumps({**entry, "delta": -5, "balance": 95},
                                                    sort_keys=True, separators=(",", ":")).encode(),
            "rep~Org3MSP": json.dumps({"balance": 95, "entries": 2}, sort_keys=True,
                                      separators=(",", ":")).encode()}


def test_a_reputation_entry_edited_in_world_state_is_caught(session_copy):
    for key, value in _forged_penalty(session_copy).items():
        set_state(session_copy, key, value)
    problems = failed(run_audit(session_copy))
    assert {"ledger", "reputation"} == set(problems)
    assert {f.object for f in problems["ledger"]} == {"state key rephist~Org3MSP~00000001", "state key rep~Org3MSP"}
    assert problems["reputation"][0].object == "rephist~Org3MSP~00000001"
    assert problems["reputation"][0].round == 2


def test_a_reputation_entry_rewritten_in_its_block_and_re_signed_by_its_creator_is_caught(session_copy):
    """The admin re-signs its own past transaction with its own key, not the ledger node's: the
    block's orderer signature no longer verifies (and its endorsement would not either)."""
    decide = find_block(session_copy, "Decide", 2)
    rewrite_block(session_copy, decide["number"], _forged_penalty(session_copy), resign=True)
    problems = failed(run_audit(session_copy))
    ledger = problems["ledger"]
    assert ledger[0].object == f"block {decide['number']}" and "orderer signature" in ledger[0].message


def test_a_reputation_entry_rewritten_and_re_signed_by_the_ledger_operator_is_caught(session_copy):
    """With the node's keys too, hashes, signatures and endorsements all agree: only the
    contract's own rules, re-executed by the auditor, disagree."""
    decide = find_block(session_copy, "Decide", 2)
    rewrite_block(session_copy, decide["number"], _forged_penalty(session_copy), resign=True,
                  node=ledger_operator(session_copy))
    report = run_audit(session_copy)
    problems = failed(report)
    assert report.check("ledger").status == "pass"
    assert {"replay", "reputation"} == set(problems)
    (replayed,) = problems["replay"]
    assert (replayed.round, replayed.tx, replayed.object) == (2, decide["transaction"]["tx_id"],
                                                              f"block {decide['number']}")
    assert "rephist~Org3MSP~00000001" in replayed.message
    rep = problems["reputation"]
    assert rep[0].object == "rephist~Org3MSP~00000001" and rep[0].tx == decide["transaction"]["tx_id"]


def test_a_decision_rewritten_and_re_signed_by_the_admin_and_the_ledger_operator_is_caught(session_copy):
    decide = find_block(session_copy, "Decide", 2)
    record = state(session_copy, "round~00000002")
    assert record["decision"]["status"] == "rolled_back"
    forged = {**record, "decision": {**record["decision"], "status": "accepted"}}
    rewrite_block(session_copy, decide["number"], {"round~00000002": json.dumps(forged).encode()},
                  node=ledger_operator(session_copy))
    problems = failed(run_audit(session_copy))
    assert {"replay", "decisions", "checkpoints"} <= set(problems)
    (decision,) = problems["decisions"]
    assert (decision.round, decision.tx, decision.object) == (2, decide["transaction"]["tx_id"], "round~00000002")
    assert "rolled_back" in decision.message
