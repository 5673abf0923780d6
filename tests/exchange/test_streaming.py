"""Chunked streaming, size limits, deadlines, retries and admission."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from exchange_helpers import FAST, client_of

from blockfedml.errors import ExchangeError, InvalidInputError, NotAuthorizedError
from blockfedml.exchange import ExchangeClient, ExchangeOptions, ExchangeServer


def test_a_multi_megabyte_blob_streams_in_chunks_larger_than_any_message(orgs):
    # gRPC refuses any single message above 256 KiB here; the 5 MB blob travels as 20 chunks.
    small = ExchangeOptions(chunk_bytes=256 * 1024, max_message_bytes=256 * 1024, retries=0)
    blob = os.urandom(5 * 1024 * 1024 + 123)
    with ExchangeServer(orgs.tls["Org1"], orgs.trust, "127.0.0.1:0", options=small) as server:
        with client_of(orgs, server, "Org2", options=small) as client:
            receipt = client.send(7, blob)
        assert receipt["size"] == len(blob)
        assert server.inbox.wait(7, ["Org2MSP"], timeout=1) == {"Org2MSP": blob}


def test_a_blob_above_the_servers_limit_is_refused_before_it_is_read(orgs):
    limited = ExchangeOptions(max_blob_bytes=1 << 20, retries=0)
    with ExchangeServer(orgs.tls["Org1"], orgs.trust, "127.0.0.1:0", options=limited) as server:
        with client_of(orgs, server, "Org2") as client:
            with pytest.raises(InvalidInputError, match=r"has 2097152 bytes; Org1MSP accepts at most 1048576"):
                client.send(1, bytes(2 << 20))
            client.send(1, bytes(1 << 20))  # exactly the limit is fine
        assert server.inbox.senders(1) == ["Org2MSP"]


def test_a_client_refuses_to_send_above_its_own_limit(orgs, server):
    with client_of(orgs, server, "Org2", options=ExchangeOptions(max_blob_bytes=10)) as client:
        with pytest.raises(InvalidInputError, match="sends at most 10"):
            client.send(1, bytes(11))
    assert server.inbox.senders(1) == []


def test_a_peer_that_never_answers_is_a_clear_error_after_the_deadline(orgs):
    # A socket that accepts connections (the kernel's backlog) but never speaks TLS.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = "127.0.0.1:%d" % silent.getsockname()[1]
        options = ExchangeOptions(send_timeout=0.3, retries=1, retry_backoff=0.01)
        with ExchangeClient(orgs.tls["Org2"], orgs.peer("Org1", address), options) as client:
            started = time.monotonic()
            with pytest.raises(ExchangeError, match=r"did not answer within the deadline of 0.3 s \(2 attempts\)"):
                client.send(3, b"update")
            assert time.monotonic() - started < 3


def test_an_unreachable_peer_is_retried_until_it_comes_up(orgs):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = "127.0.0.1:%d" % probe.getsockname()[1]
    servers: list[ExchangeServer] = []
    late = threading.Timer(0.3, lambda: servers.append(
        ExchangeServer(orgs.tls["Org1"], orgs.trust, address, options=FAST).start()))
    late.start()
    try:
        patient = ExchangeOptions(retries=6, retry_backoff=0.1, send_timeout=2)
        with ExchangeClient(orgs.tls["Org2"], orgs.peer("Org1", address), patient) as client:
            assert client.send(2, b"update")["round"] == 2
        assert servers[0].inbox.senders(2) == ["Org2MSP"]
    finally:
        late.join()
        for server in servers:
            server.stop()
    with ExchangeClient(orgs.tls["Org2"], orgs.peer("Org1", address), FAST) as client:
        with pytest.raises(ExchangeError, match="cannot reach Org1MSP .*2 attempts"):
            client.ping()


def test_sending_the_same_blob_again_is_idempotent(orgs, server):
    with client_of(orgs, server, "Org2") as client:
        first = client.send(4, b"same bytes")
        assert client.send(4, b"same bytes") == first
    assert server.inbox.wait(4, ["Org2MSP"], timeout=1) == {"Org2MSP": b"same bytes"}


def test_the_admission_policy_refuses_before_the_stream_is_read(orgs):
    def admit(round_number: int, sender: str) -> None:
        if sender != "Org3MSP":
            raise NotAuthorizedError(f"{sender} is not a participant of round {round_number}")

    with ExchangeServer(orgs.tls["Org1"], orgs.trust, "127.0.0.1:0", admit=admit, options=FAST) as server:
        with client_of(orgs, server, "Org2") as client:
            with pytest.raises(NotAuthorizedError, match="Org2MSP is not a participant of round 5"):
                client.send(5, b"update")
        with client_of(orgs, server, "Org3") as client:
            client.send(5, b"update")
        assert server.inbox.senders(5) == ["Org3MSP"]
