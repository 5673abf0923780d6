"""Every injected fault is caught, named by round, transaction and object; no false alarm.

Each case tampers with a private copy of one finished session (conftest.py):
a stored model, an update blob, a world-state row, a block, a signature, a
reputation entry (in world state only, or rewritten in its block and re-signed
with its creator's own key), a decision re-signed by the admin.
"""

from __future__ import annotations

import json

import pytest
from tamper import corrupt_file, find_block, flip_stored_byte, rehash_from, rewrite_block, set_state, sql, state_value

from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.store import ModelStore


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


def test_an_untouched_ledger_passes_every_check(session_copy):
    report = run_audit(session_copy)
    assert report.ok, [str(f) for f in report.findings]
    assert [c.status for c in report.checks] == ["pass"] * 7
    assert not any(c.skipped for c in report.checks)
    assert report.check("aggregates").detail.startswith("3 of 3")
    assert report.check("decisions").detail == "3 decisions"


def test_a_tampered_accepted_model_is_caught(session_copy):
    digest = state(session_copy, "ckpt~00000001")["digest"]
    corrupt_file(ModelStore(session_copy / "store").path(digest))
    report = run_audit(session_copy)
    assert set(failed(report)) == {"checkpoints"}
    (finding,) = failed(report)["checkpoints"]
    assert (finding.round, finding.object) == (1, f"model {digest}")
    assert finding.tx == state(session_copy, "ckpt~00000001")["tx"]
    assert "tampered" in finding.message


def test_a_deleted_accepted_model_is_caught(session_copy):
    digest = state(session_copy, "ckpt~00000003")["digest"]
    ModelStore(session_copy / "store").path(digest).unlink()
    findings = failed(run_audit(session_copy))["checkpoints"]
    assert [(f.round, f.object) for f in findings] == [(3, f"model {digest}")]
    assert "missing" in findings[0].message


def test_a_tampered_update_blob_is_caught_with_its_commit_transaction(session_copy):
    digest = state(session_copy, "update~00000003~Org1MSP")["digest"]
    corrupt_file(ModelStore(session_copy / "store").path(digest))
    report = run_audit(session_copy)
    assert set(failed(report)) == {"aggregates"}
    (finding,) = failed(report)["aggregates"]
    commit = find_block(session_copy, "CommitUpdate", 3, "Org1MSP")
    assert (finding.round, finding.tx) == (3, commit["transaction"]["tx_id"])
    assert digest in finding.object and "Org1MSP" in finding.object


def test_an_update_blob_that_is_not_kept_is_skipped_with_a_reason_not_failed(session_copy):
    digest = state(session_copy, "update~00000002~Org3MSP")["digest"]
    ModelStore(session_copy / "store").path(digest).unlink()
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
    if how == "deleted":
        assert any("missing" in f.message and f.object == f"block {number + 1}" for f in findings)
    elif how == "flipped byte":  # it no longer inflates, or inflates to other bytes: either way named
        assert any(f.object == f"block {number}" and tx_id in f"{f.tx} {f.message}" for f in findings)
    else:
        assert any(f.tx == tx_id and f.round == 2 and f.object == f"block {number}"
                   and "envelope signature does not verify" in f.message for f in findings)


def test_a_swapped_signature_is_caught_even_when_the_chain_is_rehashed(session_copy):
    target = find_block(session_copy, "CommitUpdate", 2, "Org2MSP")["number"]
    other = find_block(session_copy, "CommitUpdate", 1, "Org2MSP")["number"]
    sql(session_copy, "UPDATE blocks SET proposal_signature = (SELECT proposal_signature FROM blocks "
                      "WHERE number = ?) WHERE number = ?", other, target)
    rehash_from(session_copy, target)
    findings = failed(run_audit(session_copy))["ledger"]
    assert (findings[0].object, findings[0].round) == (f"block {target}", 2)
    assert "proposal signature does not verify" in findings[0].message
    # Rehashing needs the orderer's key to re-sign: every block from the edit on is named.
    unsigned = {f.object for f in findings if "orderer signature does not verify" in f.message}
    height = find_block(session_copy, "Decide", 3)["number"]  # the last rounds' blocks are all there
    assert {f"block {n}" for n in range(target, height + 1)} <= unsigned


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


def test_a_reputation_entry_rewritten_in_its_block_and_re_signed_is_caught(session_copy):
    """The admin re-signs its own past transaction with its own key: the ledger node's
    endorsement no longer matches the write set, and the contract's rules disagree."""
    decide = find_block(session_copy, "Decide", 2)
    rewrite_block(session_copy, decide["number"], _forged_penalty(session_copy), resign=True)
    report = run_audit(session_copy)
    problems = failed(report)
    assert {"ledger", "replay", "reputation"} == set(problems)
    ledger = problems["ledger"]
    assert ledger[0].object == f"block {decide['number']}" and "endorsement" in ledger[0].message
    (replayed,) = problems["replay"]
    assert (replayed.round, replayed.tx, replayed.object) == (2, decide["transaction"]["tx_id"],
                                                              f"block {decide['number']}")
    assert "rephist~Org3MSP~00000001" in replayed.message
    rep = problems["reputation"]
    assert rep[0].object == "rephist~Org3MSP~00000001" and rep[0].tx == decide["transaction"]["tx_id"]


def test_a_decision_rewritten_and_re_signed_by_the_admin_is_caught(session_copy):
    decide = find_block(session_copy, "Decide", 2)
    record = state(session_copy, "round~00000002")
    assert record["decision"]["status"] == "rolled_back"
    forged = {**record, "decision": {**record["decision"], "status": "accepted"}}
    rewrite_block(session_copy, decide["number"], {"round~00000002": json.dumps(forged).encode()})
    problems = failed(run_audit(session_copy))
    assert {"replay", "decisions", "checkpoints"} <= set(problems)
    (decision,) = problems["decisions"]
    assert (decision.round, decision.tx, decision.object) == (2, decide["transaction"]["tx_id"], "round~00000002")
    assert "rolled_back" in decision.message
