"""Block delivery, client side: ask a node for blocks with a signed seek request.

The request is Fabric's: a ``common.Envelope`` of type ``DELIVER_SEEK_INFO``
whose data is an ``orderer.SeekInfo`` (start, stop, and whether to wait for
blocks not yet cut), signed by the requester. A Fabric peer's ``Deliver``
service and the embedded ledger service (``embedded/service.py``) both answer
it with a stream of ``common.Block``; ``embedded_block`` reads the embedded
ledger's blocks back into what an auditor checks.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2
from google.protobuf import timestamp_pb2

from blockfedml.errors import IntegrityError
from blockfedml.identity.signing import SigningIdentity

NEWEST = -1  # a seek position: the newest block at the time of the request


def seek_envelope(identity: SigningIdentity, channel: str, start: int | None, stop: int | None,
                  wait: bool) -> common_pb2.Envelope:
    """A signed seek request for blocks ``start..stop`` (``NEWEST``: the newest block; a
    start of None: the next block to be cut; a stop of None: no end); ``wait`` blocks
    until they exist instead of failing."""
    def position(number: int | None) -> ab_pb2.SeekPosition:
        if number is None:
            return ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
        if number == NEWEST:
            return ab_pb2.SeekPosition(newest=ab_pb2.SeekNewest())
        return ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=number))

    seek = ab_pb2.SeekInfo(start=position(start), behavior=ab_pb2.SeekInfo.BLOCK_UNTIL_READY if wait
                           else ab_pb2.SeekInfo.FAIL_IF_NOT_READY)
    if stop is not None:
        seek.stop.CopyFrom(position(stop))
    else:
        seek.stop.CopyFrom(ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=2 ** 63 - 1)))
    now = time.time_ns()
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.DELIVER_SEEK_INFO, channel_id=channel,
        timestamp=timestamp_pb2.Timestamp(seconds=now // 10 ** 9, nanos=now % 10 ** 9)).SerializeToString()
    signature_header = common_pb2.SignatureHeader(creator=identity.serialize(),
                                                  nonce=os.urandom(24)).SerializeToString()
    payload = common_pb2.Payload(header=common_pb2.Header(channel_header=channel_header,
                                                          signature_header=signature_header),
                                 data=seek.SerializeToString()).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=identity.sign(payload))


@dataclass(frozen=True)
class DeliveredBlock:
    """An embedded ledger's block as delivered: what its hash and signature cover."""

    number: int
    previous_hash: bytes
    data_hash: bytes
    header: bytes                # DER header: what is hashed and what the orderer signed
    orderer_signature: bytes
    validation_code: int
    envelope: bytes              # the transaction (genesis: the channel configuration)
    proposal_signature: bytes

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.header).digest()

    @property
    def is_config(self) -> bool:
        return self.number == 0


def embedded_block(block: common_pb2.Block) -> DeliveredBlock:
    """Read a block of the embedded ledger service; ``IntegrityError`` naming what is malformed.
    Nothing is trusted yet: the caller checks hashes and signatures (``audit``)."""
    from blockfedml.ledger.embedded.blocks import block_header_bytes

    number = block.header.number
    try:
        metadata = list(block.metadata.metadata)
        signatures = common_pb2.Metadata.FromString(metadata[common_pb2.SIGNATURES]).signatures
        orderer_signature = bytes(signatures[0].signature) if signatures else b""
        code_bytes = metadata[common_pb2.TRANSACTIONS_FILTER]
        data = list(block.data.data)
    except Exception as exc:
        raise IntegrityError(f"block {number}: malformed metadata: {exc}") from exc
    if len(code_bytes) != 1 or not 1 <= len(data) <= 2:
        raise IntegrityError(f"block {number}: expected one validation code and one transaction")
    return DeliveredBlock(
        number=number, previous_hash=bytes(block.header.previous_hash), data_hash=bytes(block.header.data_hash),
        header=block_header_bytes(number, bytes(block.header.previous_hash), bytes(block.header.data_hash)),
        orderer_signature=orderer_signature, validation_code=code_bytes[0], envelope=bytes(data[0]),
        proposal_signature=bytes(data[1]) if len(data) > 1 else b"")


class BlockWatcher:
    """Follows a node's blocks over one open Deliver stream, in a thread, so that a process
    knows the ledger's height and wakes on the next block without a call each time.

    The stream starts at the newest block and waits for the next ones
    (``BLOCK_UNTIL_READY``), as Fabric's block event listeners do. If it breaks
    (the node restarted), ``alive`` turns false and the owner opens a new one.
    """

    def __init__(self, deliver_stub: Any, identity: SigningIdentity, channel: str) -> None:
        self._height = 0
        self._alive = True
        self._changed = threading.Condition()
        request = seek_envelope(identity, channel, NEWEST, None, wait=True)
        self._stream = deliver_stub.Deliver(iter([request]))
        self._thread = threading.Thread(target=self._follow, name="block-watcher", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            for response in self._stream:
                if response.WhichOneof("Type") == "block":
                    with self._changed:
                        self._height = max(self._height, response.block.header.number + 1)
                        self._changed.notify_all()
                elif response.status != common_pb2.SUCCESS:
                    break
        except Exception:  # grpc.RpcError when cancelled or the node went away
            pass
        finally:
            with self._changed:
                self._alive = False
                self._changed.notify_all()

    @property
    def alive(self) -> bool:
        return self._alive

    def height(self, timeout: float = 30.0) -> int | None:
        """The height seen so far (waiting for the first block); None if the stream broke."""
        with self._changed:
            self._changed.wait_for(lambda: self._height > 0 or not self._alive, timeout)
            return self._height if self._height > 0 and self._alive else None

    def wait_beyond(self, height: int, timeout: float) -> bool:
        """True once a block past ``height`` blocks was seen; False on timeout or a broken stream."""
        with self._changed:
            return self._changed.wait_for(lambda: self._height > height or not self._alive, timeout) \
                and self._height > height

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(timeout=5)
