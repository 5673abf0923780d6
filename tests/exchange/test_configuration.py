"""Endpoints in consortium.json, TLS material on disk, and option checks: bad input is
a clear error that changes nothing."""

from __future__ import annotations

import pytest

from blockfedml.consortium import Consortium
from blockfedml.errors import ExchangeError, InvalidInputError
from blockfedml.exchange import ExchangeOptions, ExchangeServer, TLSMaterial, open_transport


def test_members_get_distinct_endpoints_and_their_tls_material(consortium):
    peers = consortium.exchange_peers()
    assert sorted(peers) == ["Org1MSP", "Org2MSP", "Org3MSP"]  # the auditor has none
    assert len({p.address for p in peers.values()}) == 3
    tls = consortium.tls_material("Org2")
    assert tls.server_name == "peer0.org2.blockfedml.local" and tls.client_cert.is_file()
    assert peers["Org2MSP"].tls_ca_pem == tls.ca_cert.read_bytes()


def test_an_endpoint_moves_in_consortium_json_and_a_bad_one_changes_nothing(consortium):
    config = consortium.workdir / "consortium.json"
    before = config.read_text()
    for bad in ("no-port", "host:99999", ":80"):
        with pytest.raises(InvalidInputError, match="must be host:port"):
            consortium.set_exchange_endpoint("Org2", bad)
    assert config.read_text() == before
    consortium.set_exchange_endpoint("Org2", "127.0.0.1:7351")
    assert Consortium.open(consortium.workdir).org("Org2MSP").exchange == "127.0.0.1:7351"


def test_missing_tls_files_and_bad_options_are_named(consortium, tmp_path):
    tls = consortium.tls_material("Org3")
    tls.client_key.rename(tmp_path / "moved")
    with pytest.raises(InvalidInputError, match="client.key of Org3MSP is missing"):
        TLSMaterial.from_org_dir(tls.ca_cert.parents[2], "Org3MSP")
    with pytest.raises(InvalidInputError, match="chunk_bytes"):
        ExchangeOptions(chunk_bytes=8 << 20, max_message_bytes=4 << 20)
    with pytest.raises(InvalidInputError, match="unknown transport 'carrier-pigeon'"):
        open_transport(consortium, "Org1", "carrier-pigeon")


def test_a_second_server_on_an_endpoint_in_use_fails_to_start(orgs, server):
    with pytest.raises(ExchangeError, match=f"Org1MSP cannot listen on {server.address}"):
        ExchangeServer(orgs.tls["Org1"], orgs.trust, server.address)
