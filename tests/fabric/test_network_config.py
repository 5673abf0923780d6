"""The network definition is consistent: crypto config, configtx, node configs, compose, builder, script."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
NETWORK = REPO / "network"
SCRIPT = REPO / "scripts" / "network.sh"
PEER_PORTS = {"Org1MSP": 7051, "Org2MSP": 8051, "Org3MSP": 9051}


def load(name: str):
    return yaml.safe_load((NETWORK / name).read_text())


def test_crypto_config_has_an_orderer_org_and_three_peer_orgs_with_loopback_sans():
    config = load("crypto-config.yaml")
    (orderers,) = config["OrdererOrgs"]
    assert [spec["Hostname"] for spec in orderers["Specs"]] == ["orderer", "orderer2", "orderer3"]
    assert [o["Name"] for o in config["PeerOrgs"]] == ["Org1", "Org2", "Org3"]
    for org in config["PeerOrgs"]:
        assert org["EnableNodeOUs"] and org["Template"]["Count"] == 1
        assert "127.0.0.1" in org["Template"]["SANS"]
    assert all("127.0.0.1" in spec["SANS"] for spec in orderers["Specs"])


def test_configtx_defines_a_raft_channel_of_three_orgs_with_a_majority_policy():
    config = load("configtx.yaml")
    profile = config["Profiles"]["BlockFedMLChannel"]
    orgs = profile["Application"]["Organizations"]
    assert {o["ID"]: o["AnchorPeers"][0]["Port"] for o in orgs} == PEER_PORTS
    assert profile["Application"]["Policies"]["Endorsement"]["Rule"] == "MAJORITY Endorsement"
    orderer = profile["Orderer"]
    assert orderer["OrdererType"] == "etcdraft" and "Addresses" not in orderer  # v3: no global endpoints
    # Three raft nodes, each also an endpoint of the orderer organization: one may be lost.
    assert [c["Port"] for c in orderer["EtcdRaft"]["Consenters"]] == [7050, 7150, 7250]
    assert orderer["Organizations"][0]["OrdererEndpoints"] == ["127.0.0.1:7050", "127.0.0.1:7150", "127.0.0.1:7250"]
    assert all("orderer" in c["ServerTLSCert"] for c in orderer["EtcdRaft"]["Consenters"])
    timeout = orderer["BatchTimeout"]
    assert timeout.endswith("ms") and int(timeout[:-2]) <= 250
    assert profile["Capabilities"] == {"V3_0": True}


def test_peer_config_runs_chaincode_as_a_service_without_docker():
    core = load("config/core.yaml")
    assert core["vm"]["endpoint"] == ""
    assert core["chaincode"]["externalBuilders"][0]["path"] == "/opt/blockfedml/builders/ccaas"
    assert core["peer"]["gossip"]["reconnectInterval"] == "2s"
    assert core["metrics"]["provider"] == "prometheus" and core["peer"]["tls"]["enabled"] is True
    orderer = load("config/orderer.yaml")
    assert orderer["General"]["BootstrapMethod"] == "none" and orderer["ChannelParticipation"]["Enabled"]
    assert orderer["General"]["TLS"]["Enabled"] and orderer["Admin"]["TLS"]["ClientAuthRequired"]


def test_compose_uses_the_same_config_files_and_ports():
    compose = load("docker-compose.yaml")
    services = compose["services"]
    assert set(services) == {"orderer.blockfedml.local", "orderer2.blockfedml.local", "orderer3.blockfedml.local",
                             "peer0.org1.blockfedml.local", "peer0.org2.blockfedml.local", "peer0.org3.blockfedml.local"}
    consenters = load("configtx.yaml")["Profiles"]["BlockFedMLChannel"]["Orderer"]["EtcdRaft"]["Consenters"]
    ports = {}
    builder_path = load("config/core.yaml")["chaincode"]["externalBuilders"][0]["path"]
    for name, service in services.items():
        assert service["image"].startswith("hyperledger/fabric-") and service["network_mode"] == "host"
        mounts = dict(v.rsplit(":", 2)[:2] if v.endswith(":ro") else v.split(":", 1) for v in service["volumes"])
        for host in mounts:
            if host.startswith("./"):
                assert (NETWORK / host).exists(), f"{name} mounts missing {host}"
        env = dict(e.split("=", 1) for e in service["environment"])
        if name.startswith("orderer"):
            assert mounts["./config/orderer.yaml"] == "/etc/hyperledger/fabric/orderer.yaml"
            ports[name.split(".")[0]] = int(env["ORDERER_GENERAL_LISTENPORT"])
            tls = f"../runs/fabric/crypto/ordererOrganizations/blockfedml.local/orderers/{name}/tls"
            assert mounts[tls] == "/var/hyperledger/orderer/tls"  # each node its own TLS identity
        else:
            assert mounts["./config/core.yaml"] == "/etc/hyperledger/fabric/core.yaml"
            assert mounts["./builders/ccaas"] == builder_path
            assert env["CORE_PEER_ADDRESS"] == f"127.0.0.1:{PEER_PORTS[env['CORE_PEER_LOCALMSPID']]}"
    assert sorted(ports.values()) == [c["Port"] for c in consenters]  # the raft cluster's three nodes


def _package(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    source, metadata = tmp_path / "src", tmp_path / "meta"
    source.mkdir()
    metadata.mkdir()
    (source / "connection.json").write_text(json.dumps({"address": "127.0.0.1:9999"}))
    (metadata / "metadata.json").write_text(json.dumps({"type": kind, "label": "blockfedml_1.0"}))
    return source, metadata


def test_the_ccaas_builder_detects_builds_and_releases_connection_json(tmp_path):
    bin_dir = NETWORK / "builders" / "ccaas" / "bin"
    source, metadata = _package(tmp_path, "ccaas")
    build, release = tmp_path / "build", tmp_path / "release"
    build.mkdir()
    release.mkdir()
    subprocess.run([bin_dir / "detect", source, metadata], check=True)
    subprocess.run([bin_dir / "build", source, metadata, build], check=True)
    subprocess.run([bin_dir / "release", build, release], check=True)
    assert json.loads((release / "chaincode/server/connection.json").read_text())["address"] == "127.0.0.1:9999"
    (tmp_path / "go").mkdir()
    other_source, other_meta = _package(tmp_path / "go", "golang")
    assert subprocess.run([bin_dir / "detect", other_source, other_meta]).returncode != 0


def _script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], **env})


def test_the_script_explains_a_missing_or_incomplete_fabric_bin(tmp_path):
    missing = _script("up", env={"FABRIC_RUN_DIR": str(tmp_path / "run")})
    assert missing.returncode != 0 and "FABRIC_BIN is not set" in missing.stderr
    partial = tmp_path / "bin"
    partial.mkdir()
    (partial / "peer").write_text("#!/bin/sh\n")
    (partial / "peer").chmod(0o755)
    incomplete = _script("up", env={"FABRIC_BIN": str(partial), "FABRIC_RUN_DIR": str(tmp_path / "run")})
    assert incomplete.returncode != 0
    assert "lacks orderer configtxgen cryptogen osnadmin" in incomplete.stderr


def test_the_script_refuses_a_taken_port_before_touching_anything(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("peer", "orderer", "configtxgen", "cryptogen", "osnadmin"):
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(0o755)
    with socket.socket() as listener:
        try:
            listener.bind(("127.0.0.1", 9999))  # the chaincode server's port
        except OSError:
            pytest.skip("port 9999 is already in use here (a running network?)")
        listener.listen()
        result = _script("up", env={"FABRIC_BIN": str(fake), "FABRIC_RUN_DIR": str(tmp_path / "run")})
    assert result.returncode != 0 and "9999" in result.stderr and "taken" in result.stderr
    assert not (tmp_path / "run").exists()
