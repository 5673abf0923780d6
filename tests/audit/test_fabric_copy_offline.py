"""The Fabric auditor's comparison of peers and its bad-input errors, without a network.

Blocks here are Fabric ``common.Block`` messages linked by their header hashes;
what a real network serves is tested in ``tests/fabric/test_fabric_network.py``.
"""

from __future__ import annotations

import hashlib

import pytest
from fabric_protos.common import common_pb2

from blockfedml.audit.fabric_chain import block_hash, read_block_file
from blockfedml.audit.fabric_copy import pull_and_compare
from blockfedml.errors import InvalidInputError, LedgerError


def chain(n: int) -> list[common_pb2.Block]:
    blocks, previous = [], b""
    for number in range(n):
        block = common_pb2.Block()
        block.header.number = number
        block.header.previous_hash = previous
        block.data.data.append(f"transaction {number}".encode())
        block.header.data_hash = hashlib.sha256(b"".join(block.data.data)).digest()
        block.metadata.metadata.extend([b"", b"", bytes([0])])
        blocks.append(block)
        previous = block_hash(block)
    return blocks


def source(blocks: list[common_pb2.Block]):
    def serve(start: int, stop: int | None, wait: bool):
        return [b for b in blocks if b.header.number >= start and (stop is None or b.header.number <= stop)]
    return serve


def test_agreeing_peers_give_every_block_and_a_peer_behind_is_waited_for():
    blocks = chain(5)
    served = {"peer0.org1": blocks, "peer0.org2": blocks[:3]}
    calls = []

    def behind(start: int, stop: int | None, wait: bool):
        calls.append((start, stop, wait))
        return source(blocks)(start, stop, wait) if calls[1:] else served["peer0.org2"]

    pulled = pull_and_compare({"peer0.org1": source(blocks), "peer0.org2": behind})
    assert pulled.problems == [] and [b.header.number for b in pulled.blocks] == [0, 1, 2, 3, 4]
    assert calls == [(0, None, False), (3, 4, True)]  # asked again for the two it lacked, waiting for them


def test_a_block_one_peer_serves_differently_is_named_with_both_peers():
    honest = chain(6)
    altered = [common_pb2.Block.FromString(b.SerializeToString()) for b in honest]
    altered[4].data.data[0] = b"transaction 4, edited"
    pulled = pull_and_compare({"peer0.org1": source(honest), "peer0.org2": source(altered)})
    assert pulled.problems == ["block 4: the peers disagree: peer0.org1 and peer0.org2 serve different "
                               "transactions (transaction 0)"]
    assert len(pulled.blocks) == 4  # nothing from the first disagreement on


def test_different_validation_codes_are_a_disagreement_too():
    honest = chain(3)
    flipped = [common_pb2.Block.FromString(b.SerializeToString()) for b in honest]
    flipped[2].metadata.metadata[common_pb2.TRANSACTIONS_FILTER] = bytes([11])
    pulled = pull_and_compare({"a": source(honest), "b": source(flipped)})
    assert pulled.problems == ["block 2: the peers disagree: a and b serve different validation codes"]


def test_one_peer_answering_is_not_enough_and_the_silent_one_is_named():
    def down(start: int, stop: int | None, wait: bool):
        raise LedgerError("cannot reach the peer at 127.0.0.1:9051")

    pulled = pull_and_compare({"peer0.org1": source(chain(3)), "peer0.org3": down})
    assert pulled.notes == ["peer0.org3 did not deliver blocks: cannot reach the peer at 127.0.0.1:9051"]
    assert pulled.problems == ["block 0: blocks came from 1 peer(s) (peer0.org1); the auditor compares at least "
                               "two organizations' peers"]


def test_a_genesis_block_file_that_is_not_one_is_refused_naming_it(tmp_path):
    junk = tmp_path / "fedchannel.block"
    junk.write_bytes(b"not a block")
    with pytest.raises(InvalidInputError, match=f"{junk} is not a Fabric block"):
        read_block_file(junk)
    later = tmp_path / "block1.block"
    later.write_bytes(chain(2)[1].SerializeToString())
    with pytest.raises(InvalidInputError, match="is not a channel genesis block"):
        read_block_file(later)
    with pytest.raises(InvalidInputError, match="cannot read the genesis block"):
        read_block_file(tmp_path / "missing.block")
