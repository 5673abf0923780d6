"""Organizations make their own keys and cards; the founder builds a signed bundle from cards alone;
each organization joins it. Every bad input is refused naming the file and field, writing nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blockfedml.cli.main import app
from blockfedml.consortium import Consortium, create_ledger
from blockfedml.errors import ConflictError, IntegrityError, InvalidInputError
from blockfedml.membership.bundle import init_ledger_node, read_bundle
from blockfedml.membership.cards import init_org, read_card

runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    """Three hospitals, an auditor and a ledger node, each in its own folder (as on their own machines)."""
    base = tmp_path_factory.mktemp("orgs")
    folders = {name: init_org(base / name, name, roles=roles, exchange=f"127.0.0.1:{7400 + i}" if i < 3 else None)
               for i, (name, roles) in enumerate([("Hospital1", ("member",)), ("Hospital2", ("member",)),
                                                  ("Hospital3", ("member", "keyholder")),
                                                  ("Auditor", ("auditor",))])}
    init_ledger_node(base / "ledger", "127.0.0.1:7500")
    return base, folders


def _bundle(base: Path, out: Path, *extra: str) -> object:
    return _invoke("admin", "consortium", "create", "--founder", str(base / "Hospital1"),
                   "--card", str(base / "Hospital2" / "card.json"), "--card", str(base / "Hospital3" / "card.json"),
                   "--card", str(base / "Auditor" / "card.json"), "--ledger-card", str(base / "ledger" / "ledger-card.json"),
                   "-o", str(out), *extra)


def test_an_organization_folder_is_private_and_its_card_is_public_and_signed(cards):
    base, folders = cards
    root = folders["Hospital2"].root
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    card = read_card(root / "card.json")
    assert (card.msp_id, card.exchange, card.roles) == ("Hospital2MSP", "127.0.0.1:7401", ("member",))
    text = (root / "card.json").read_text()
    assert "PRIVATE KEY" not in text
    keys = [p for p in root.rglob("priv_sk")]
    assert keys and all(stat.S_IMODE(os.stat(k).st_mode) & 0o077 == 0 for k in keys)


def test_init_refuses_an_existing_folder_and_a_bad_endpoint(cards, tmp_path):
    base, _ = cards
    with pytest.raises(ConflictError, match="already holds an organization"):
        init_org(base / "Hospital1", "Hospital1")
    with pytest.raises(InvalidInputError, match="host:port"):
        init_org(tmp_path / "x", "X", exchange="no-port")
    assert not (tmp_path / "x").exists()
    result = _invoke("org", "init", "--name", "Y", "-o", str(tmp_path / "y"), "--exchange", "host:99999")
    assert result.exit_code == 1 and "host:port" in result.output and not (tmp_path / "y").exists()


def test_the_founder_builds_a_bundle_from_cards_and_every_organization_joins_it(cards, tmp_path):
    base, folders = cards
    out = tmp_path / "bundle.json"
    result = _bundle(base, out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    bundle = read_bundle(out, info["genesis_hash"])
    assert [m.card.name for m in bundle.members] == ["Hospital1", "Hospital2", "Hospital3", "Auditor"]
    assert bundle.member("Hospital1MSP").roles == ("admin", "member")
    assert [m.partition for m in bundle.members] == [0, 1, 2, None]
    assert "PRIVATE KEY" not in out.read_text()

    joined = _invoke("org", "join", "--bundle", str(out), "-d", str(folders["Hospital2"].root),
                     "--genesis", info["genesis_hash"], "--json")
    assert joined.exit_code == 0, joined.output
    view = Consortium.open(folders["Hospital2"].root)
    assert [o.name for o in view.orgs if o.is_local] == ["Hospital2"]
    assert view.genesis_hash == info["genesis_hash"]
    assert view.exchange_peers()["Hospital1MSP"].address == "127.0.0.1:7400"  # public, from the card
    with pytest.raises(Exception, match="belong to Hospital1"):
        view.signing_identity("Hospital1")
    ledger = create_ledger(base / "ledger", bundle)
    assert ledger.is_file()
    with pytest.raises(ConflictError):
        create_ledger(base / "ledger", bundle)


def test_a_bundle_altered_after_signing_or_with_another_genesis_is_refused_and_nothing_is_written(cards, tmp_path):
    base, folders = cards
    out = tmp_path / "bundle.json"
    assert _bundle(base, out).exit_code == 0
    data = json.loads(out.read_text())
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**data, "settings": {"min_participants": 1}}))
    with pytest.raises(IntegrityError, match=r"forged.json: field 'signature'"):
        read_bundle(forged)
    result = _invoke("org", "join", "--bundle", str(forged), "-d", str(folders["Hospital3"].root))
    assert result.exit_code == 1 and "signature" in result.output
    assert not (folders["Hospital3"].root / "consortium.json").exists()
    wrong = _invoke("org", "join", "--bundle", str(out), "-d", str(folders["Hospital3"].root), "--genesis", "ab" * 32)
    assert wrong.exit_code == 1 and "not the" in wrong.output and "pinned" in wrong.output
    assert not (folders["Hospital3"].root / "consortium.json").exists()
    swapped = json.loads(out.read_text())
    swapped["orgs"][1]["card"]["exchange"] = "evil.example.org:7401"  # the card's own signature breaks
    (tmp_path / "swapped.json").write_text(json.dumps(swapped))
    with pytest.raises(IntegrityError, match=r"orgs\[1\]\.card: field 'signature'"):
        read_bundle(tmp_path / "swapped.json")


def test_a_malformed_card_is_refused_naming_the_file_and_field(cards, tmp_path):
    base, _ = cards
    card = json.loads((base / "Hospital2" / "card.json").read_text())
    bad = tmp_path / "bad-card.json"
    bad.write_text(json.dumps({**card, "tls_ca_cert": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"}))
    with pytest.raises(InvalidInputError, match=r"bad-card.json: field 'tls_ca_cert'"):
        read_card(bad)
    bad.write_text(json.dumps({**card, "exchange": "nowhere"}))
    with pytest.raises(InvalidInputError, match=r"bad-card.json: field 'exchange' must be host:port"):
        read_card(bad)
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="bad-card.json is not a card"):
        read_card(bad)
    out = tmp_path / "b.json"
    result = _invoke("admin", "consortium", "create", "--founder", str(base / "Hospital1"), "--card", str(bad),
                     "--ledger-card", str(base / "ledger" / "ledger-card.json"), "-o", str(out))
    assert result.exit_code == 1 and "bad-card.json" in result.output and not out.exists()


def test_a_card_the_bundle_does_not_carry_unchanged_cannot_join(cards, tmp_path):
    base, _ = cards
    out = tmp_path / "bundle.json"
    assert _bundle(base, out).exit_code == 0
    stranger = init_org(tmp_path / "Stranger", "Stranger", exchange="127.0.0.1:7499")
    result = _invoke("org", "join", "--bundle", str(out), "-d", str(stranger.root))
    assert result.exit_code == 1 and "StrangerMSP is not in this consortium bundle" in result.output
