"""The CCaaS layer's fixes of fabric-chaincode-python, without a peer (FABRIC_NOTES items 5, 6, 8, 10)."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from fabric_protos.peer import chaincode_shim_pb2 as shim_pb2

import blockfedml_chaincode.contract as contract_module
from blockfedml_chaincode.shim import Handler
from blockfedml_chaincode.ccaas import SafeHandler, SerializedStream, ServerConfig


class OneWriteAtATime:
    """A stand-in for a grpc.aio stream: records whether two writes ever overlapped."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.overlapped = False
        self.written: list = []

    async def write(self, message) -> None:
        self.in_flight += 1
        self.overlapped |= self.in_flight > 1
        await asyncio.sleep(0.001)
        self.written.append(message)
        self.in_flight -= 1

    def peer(self) -> str:
        return "ipv4:127.0.0.1:7052"


async def _write_concurrently(stream, count: int = 20) -> None:
    await asyncio.gather(*(stream.write(i) for i in range(count)))


def test_unwrapped_concurrent_writes_overlap():
    """The defect the wrapper exists for: the shim's tasks write at the same time."""
    raw = OneWriteAtATime()
    asyncio.run(_write_concurrently(raw))
    assert raw.overlapped


def test_serialized_stream_never_has_two_writes_in_flight():
    raw = OneWriteAtATime()
    asyncio.run(_write_concurrently(SerializedStream(raw)))
    assert not raw.overlapped and sorted(raw.written) == list(range(20))
    assert SerializedStream(raw).peer() == "ipv4:127.0.0.1:7052"  # everything else passes through


def _queue_handler_class():
    """The shim's per-transaction request queue (the class its Handler uses)."""
    return inspect.getmodule(Handler).MsgQueueHandler


def _queue_message(*args):
    return inspect.getmodule(Handler).QueueMessage(*args)


async def _ask(handler: SafeHandler, reply_type: int, payload: bytes):
    """Queue a GET_STATE as the shim does, then deliver the peer's reply."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    request = shim_pb2.ChaincodeMessage(type=shim_pb2.ChaincodeMessage.GET_STATE, txid="tx1", channel_id="ch")
    await handler.msg_queue_handler.queue_msg(_queue_message(request, "GetState", future))
    reply = shim_pb2.ChaincodeMessage(type=reply_type, txid="tx1", channel_id="ch", payload=payload)
    await handler.handle_message_ready(reply)
    return await future


def _handler() -> SafeHandler:
    handler = SafeHandler("blockfedml_1.0:abc", None)
    handler.context = SerializedStream(OneWriteAtATime())
    handler.msg_queue_handler = _queue_handler_class()(handler)
    return handler


def test_a_peer_error_reply_raises_instead_of_being_returned_as_the_value():
    handler = _handler()
    with pytest.raises(Exception, match="peer refused GetState: key too long"):
        asyncio.run(_ask(handler, shim_pb2.ChaincodeMessage.ERROR, b"key too long"))
    assert handler.msg_queue_handler.tx_queues == {}  # the queue moved on


def test_a_peer_response_is_still_the_value():
    reply = asyncio.run(_ask(_handler(), shim_pb2.ChaincodeMessage.RESPONSE, b'{"a":1}'))
    assert reply.payload == b'{"a":1}'


def test_the_contract_sets_no_chaincode_events():
    """The shim drops events (item 6); the SDK waits by commit status, so none are set."""
    assert "set_event" not in inspect.getsource(contract_module)


def test_server_config_needs_id_and_address_and_says_where_they_come_from():
    with pytest.raises(SystemExit, match="CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS must be set"):
        ServerConfig.from_env({})
    with pytest.raises(SystemExit, match="both CHAINCODE_TLS_CERT and CHAINCODE_TLS_KEY"):
        ServerConfig.from_env({"CHAINCODE_ID": "x", "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:1",
                               "CHAINCODE_TLS_CERT": "/c"})
    config = ServerConfig.from_env({"CHAINCODE_ID": "blockfedml_1.0:ab", "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:9999"})
    assert (config.chaincode_id, config.address, config.tls_cert) == ("blockfedml_1.0:ab", "127.0.0.1:9999", None)
