"""What commit refuses: bad signatures, outsiders, foreign certificates,
replays, and MVCC conflicts (recorded invalid, changing nothing)."""

from __future__ import annotations

import pytest
from ledger_test_contract import CHANNEL, chaincodes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.common import common_pb2

from blockfedml.errors import ConflictError, IntegrityError, NotAuthorizedError, NotFoundError
from blockfedml.identity import SigningIdentity
from blockfedml.identity.signing import P256_ORDER
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded.blocks import MVCC_READ_CONFLICT, PHANTOM_READ_CONFLICT


def _flip(data: bytes, index: int = -1) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def _envelope_with(envelope: bytes, *, payload: bytes | None = None, signature: bytes | None = None) -> bytes:
    env = common_pb2.Envelope.FromString(envelope)
    if payload is not None:
        env.payload = payload
    if signature is not None:
        env.signature = signature
    return env.SerializeToString()


def test_tampered_envelope_signature_is_refused(ledger, contract) -> None:
    tx = contract.new_proposal("Put", "k", "v").endorse()
    sig = common_pb2.Envelope.FromString(tx.envelope).signature
    bad = _envelope_with(tx.envelope, signature=_flip(sig, 10))
    with pytest.raises(IntegrityError, match="envelope signature"):
        ledger.commit(bad, tx.proposal_signature)
    assert ledger.height() == 1
    tx.submit()  # the genuine one still commits
    assert ledger.height() == 2


def test_tampered_proposal_signature_is_refused(ledger, contract) -> None:
    tx = contract.new_proposal("Put", "k", "v").endorse()
    with pytest.raises(IntegrityError, match="proposal signature"):
        ledger.commit(tx.envelope, _flip(tx.proposal_signature, 12))
    assert ledger.height() == 1


def test_high_s_signature_is_refused(ledger, contract) -> None:
    tx = contract.new_proposal("Put", "k", "v").endorse()
    r, s = decode_dss_signature(tx.proposal_signature)
    with pytest.raises(IntegrityError, match="proposal signature"):
        ledger.commit(tx.envelope, encode_dss_signature(r, P256_ORDER - s))


def test_rewritten_payload_is_refused(ledger, contract) -> None:
    """Changing what was written (here: the value) breaks the envelope signature."""
    tx = contract.new_proposal("Put", "k", "honest").endorse()
    env = common_pb2.Envelope.FromString(tx.envelope)
    forged = env.payload.replace(b"honest", b"forged")
    assert forged != env.payload
    with pytest.raises(IntegrityError):
        ledger.commit(_envelope_with(tx.envelope, payload=forged), tx.proposal_signature)
    assert ledger.height() == 1


def test_org_outside_the_channel_is_refused(make_ledger, orgs) -> None:
    both = make_ledger(members=2, name="both.db")
    only_org1 = make_ledger(members=1, name="org1.db")
    outsider = only_org1.connect(orgs[1].admin()).network(CHANNEL).contract()
    with pytest.raises(NotAuthorizedError, match="Org2MSP is not a member"):
        outsider.submit("Put", "k", "v")
    with pytest.raises(NotAuthorizedError):
        outsider.evaluate("Whoami")
    # A transaction endorsed where Org2 is a member is refused at commit here.
    tx = both.connect(orgs[1].admin()).network(CHANNEL).contract().new_proposal("Put", "k", "v").endorse()
    with pytest.raises(NotAuthorizedError, match="Org2MSP is not a member"):
        only_org1.commit(tx.envelope, tx.proposal_signature)
    assert only_org1.height() == 1


def test_certificate_not_issued_by_the_org_ca_is_refused(make_ledger, orgs, tmp_path, ledger_node) -> None:
    org2_admin = orgs[1].admin()
    impostor = SigningIdentity("Org1MSP", org2_admin.certificate, org2_admin.private_key)
    ledger = make_ledger()
    with pytest.raises(NotAuthorizedError, match="not issued by the CA of Org1MSP"):
        ledger.connect(impostor).network(CHANNEL).contract().submit("Put", "k", "v")
    # A ledger that (wrongly) trusts Org2's CA for Org1MSP endorses it; ours refuses it at commit.
    rogue = EmbeddedLedger.create(tmp_path / "rogue.db", CHANNEL, [("Org1MSP", orgs[1].ca_cert_pem)],
                                  chaincodes=chaincodes(), node=ledger_node)
    tx = rogue.connect(impostor).network(CHANNEL).contract().new_proposal("Put", "k", "v").endorse()
    rogue.close()
    with pytest.raises(NotAuthorizedError, match="not issued"):
        ledger.commit(tx.envelope, tx.proposal_signature)
    assert ledger.height() == 1


def test_replayed_tx_id_is_refused(ledger, contract) -> None:
    tx = contract.new_proposal("Incr", "n").endorse()
    tx.submit()
    with pytest.raises(ConflictError, match="already on the ledger"):
        ledger.commit(tx.envelope, tx.proposal_signature)
    assert ledger.height() == 2
    assert contract.evaluate("Get", "n") == b"1"


def test_mvcc_conflict_is_recorded_invalid_and_changes_nothing(ledger, contract, orgs) -> None:
    contract.submit("Put", "n", "10")
    other = ledger.connect(orgs[1].admin()).network(CHANNEL).contract()
    first = contract.new_proposal("Incr", "n").endorse()
    second = other.new_proposal("Incr", "n").endorse()   # read n at the same version
    assert first.result == second.result == b"11"
    first.submit()
    with pytest.raises(ConflictError) as err:
        second.submit()
    assert second.tx_id in str(err.value) and "'n'" in str(err.value)
    assert "MVCC_READ_CONFLICT" in str(err.value)
    assert err.value.block_number == 3  # type: ignore[attr-defined]
    block = ledger.block(3)
    assert block["validation_code"] == "MVCC_READ_CONFLICT"
    assert block["transaction"]["tx_id"] == second.tx_id
    assert ledger.transaction_status(second.tx_id).validation_code == MVCC_READ_CONFLICT
    assert contract.evaluate("Get", "n") == b"11"
    with pytest.raises(ConflictError, match="already on the ledger"):
        second.submit()  # an invalid tx_id is spent too, as on Fabric
    assert other.submit("Incr", "n") == b"12"  # simulate again and it goes through
    assert ledger.verify().ok


def test_read_of_absent_key_conflicts_when_it_appears(ledger, contract) -> None:
    late = contract.new_proposal("Incr", "fresh").endorse()
    contract.submit("Put", "fresh", "5")
    with pytest.raises(ConflictError):
        late.submit()
    assert contract.evaluate("Get", "fresh") == b"5"


def test_phantom_in_a_range_conflicts(ledger, contract) -> None:
    contract.submit("Put", "m~a", "1")
    count = contract.new_proposal("CountInto", "m~", "m~~", "total").endorse()
    contract.submit("Put", "m~b", "2")  # a new key inside the scanned range
    with pytest.raises(ConflictError, match="PHANTOM_READ_CONFLICT"):
        count.submit()
    assert ledger.transaction_status(count.tx_id).validation_code == PHANTOM_READ_CONFLICT
    with pytest.raises(NotFoundError):
        contract.evaluate("Get", "total")
    assert contract.submit("CountInto", "m~", "m~~", "total") == b"2"
    assert ledger.verify().ok


def test_disjoint_keys_do_not_conflict(ledger, contract, orgs) -> None:
    other = ledger.connect(orgs[1].admin()).network(CHANNEL).contract()
    a = contract.new_proposal("Incr", "org1~n").endorse()
    b = other.new_proposal("Incr", "org2~n").endorse()
    b.submit()
    a.submit()
    assert contract.evaluate_json("Scan", "", "") == {"org1~n": "1", "org2~n": "1"}


def test_transaction_for_another_channel_is_refused(tmp_path, orgs, ledger, ledger_node) -> None:
    elsewhere = EmbeddedLedger.create(tmp_path / "x.db", "otherchannel",
                                      [(orgs[0].msp_id, orgs[0].ca_cert_pem)], chaincodes=chaincodes(),
                                      node=ledger_node)
    tx = elsewhere.connect(orgs[0].admin()).network("otherchannel").contract().new_proposal(
        "Put", "k", "v").endorse()
    elsewhere.close()
    with pytest.raises(NotFoundError, match="otherchannel"):
        ledger.commit(tx.envelope, tx.proposal_signature)
