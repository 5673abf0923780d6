"""A tiny key-value contract for the embedded ledger's own tests and bench.

It exercises exactly what the ledger must support (reads, writes, deletes,
ranges, events, the creator, the transaction timestamp, refusals) without
depending on the federation contract, which is developed separately.
"""

from __future__ import annotations

import json
import logging

from fabric_chaincode_python.fabric_contract_api import (
    Contract,
    ContractChaincode,
    TransactionContextInterface,
)

# Importing the Fabric package turns the root logger to DEBUG (FABRIC_NOTES item 7).
logging.getLogger().setLevel(logging.WARNING)
logging.getLogger("asyncio").setLevel(logging.WARNING)


class KVContract(Contract):
    Name = "kv"

    async def Put(self, ctx: TransactionContextInterface, key: str, value: str) -> str:
        await ctx.get_stub().put_state(key, value.encode())
        return value

    async def Get(self, ctx: TransactionContextInterface, key: str) -> str:
        value = await ctx.get_stub().get_state(key)
        if not value:
            raise Exception(f"[NOT_FOUND] key {key} does not exist")
        return value.decode()

    async def Delete(self, ctx: TransactionContextInterface, key: str) -> str:
        await ctx.get_stub().delete_state(key)
        return key

    async def Incr(self, ctx: TransactionContextInterface, key: str) -> str:
        """Read-modify-write: two concurrent Incr of one key conflict (MVCC)."""
        stub = ctx.get_stub()
        current = int((await stub.get_state(key)) or b"0")
        await stub.put_state(key, str(current + 1).encode())
        return str(current + 1)

    async def PutThenRead(self, ctx: TransactionContextInterface, key: str, value: str) -> str:
        """Reads do not see the transaction's own writes (as on Fabric)."""
        stub = ctx.get_stub()
        await stub.put_state(key, value.encode())
        return (await stub.get_state(key)).decode()

    async def PutThenFail(self, ctx: TransactionContextInterface, key: str) -> str:
        await ctx.get_stub().put_state(key, b"must not be written")
        raise Exception(f"[PHASE] refused after writing {key}")

    async def Fail(self, ctx: TransactionContextInterface, code: str, message: str) -> str:
        raise Exception(f"[{code}] {message}")

    async def Scan(self, ctx: TransactionContextInterface, start: str, end: str) -> str:
        iterator = await ctx.get_stub().get_state_by_range(start, end)
        return json.dumps({kv.key: kv.value.decode() async for kv in iterator}, sort_keys=True)

    async def CountInto(self, ctx: TransactionContextInterface, start: str, end: str, target: str) -> str:
        """Range read then a write elsewhere: a key added to the range meanwhile is a phantom."""
        stub = ctx.get_stub()
        count = len([kv async for kv in await stub.get_state_by_range(start, end)])
        await stub.put_state(target, str(count).encode())
        return str(count)

    async def Whoami(self, ctx: TransactionContextInterface) -> str:
        stub = ctx.get_stub()
        ts = stub.get_tx_timestamp()
        return json.dumps({"msp": ctx.get_client_identity().get_mspid(), "tx_id": stub.get_txid(),
                           "channel": stub.get_channel_id(), "seconds": ts.seconds})

    async def Emit(self, ctx: TransactionContextInterface, name: str, payload: str) -> str:
        ctx.get_stub().set_event(name, payload.encode())
        return name


def new_chaincode() -> ContractChaincode:
    return ContractChaincode.new_chaincode(KVContract())


CHANNEL = "fedchannel"


def chaincodes() -> dict:
    """What tests pass to ``EmbeddedLedger.open/create``: this contract as ``blockfedml``."""
    return {"blockfedml": new_chaincode()}
