"""The data contract (``data:<Function>``) driven through ContractChaincode.invoke on an in-memory stub."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from typing import Any

import pytest

from blockfedml_chaincode.errors import EXISTS, INVALID, NOT_FOUND, PHASE, UNAUTHORIZED

from .memstub import MemStub, MemWorld, Result

ADMIN, ORG2, ORG3, AUDITOR, OUTSIDER = "Org1MSP", "Org2MSP", "Org3MSP", "AuditMSP", "EvilMSP"
MEMBERS = [ADMIN, ORG2, ORG3]


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


SCHEMA, GENESIS = digest("schema"), digest("genesis")
SCALER = {"features": ["age", "bmi"], "mean": [51000000, -250000], "scale": [12000000, 1000000],
          "rows": 300, "counts": [300, 297], "fixed_point": 1000000}


class DataWorld(MemWorld):
    def call(self, msp_id: str, function: str, *args: str) -> Result:
        self._count += 1
        self._time += 1
        name = function if ":" in function else f"blockfedml:{function}"
        stub = MemStub(self.state, name, list(args), msp_id, f"tx{self._count:04d}", self._time)
        response = asyncio.run(self.chaincode.invoke(stub))
        if response.status == 200:
            self.state.update({k: v for k, v in stub.writes.items() if v is not None})
        return Result(response.status, bytes(response.payload), response.message, dict(stub.writes))


def ok(world: DataWorld, msp: str, fn: str, *args: Any) -> Any:
    args = tuple(a if isinstance(a, str) else json.dumps(a) for a in args)
    result = world.call(msp, fn, *args)
    assert result.status == 200, f"{fn}{args} as {msp} failed: {result.message}"
    return json.loads(result.payload)


def refused(world: DataWorld, msp: str, fn: str, *args: Any, code: str) -> str:
    """A refused call with this code that leaves the world state exactly as it was."""
    args = tuple(a if isinstance(a, str) else json.dumps(a) for a in args)
    before = copy.deepcopy(world.state)
    result = world.call(msp, fn, *args)
    assert result.status == 500, f"{fn}{args} as {msp} unexpectedly succeeded"
    assert result.message.startswith(f"[{code}] "), result.message
    assert world.state == before
    return result.message


@pytest.fixture
def world() -> DataWorld:
    world = DataWorld()
    ok(world, ADMIN, "InitConsortium", "{}", GENESIS, "0")
    for msp, roles in [(ADMIN, ["admin", "member"]), (ORG2, ["member"]), (ORG3, ["member"]), (AUDITOR, ["auditor"])]:
        ok(world, ADMIN, "RegisterOrg", msp, roles)
    for msp in MEMBERS:
        ok(world, msp, "Join")
    return world


def fix_parties(world: DataWorld, parties: list[str] = MEMBERS) -> None:
    for i, msp in enumerate(parties):
        ok(world, msp, "data:PublishStatsKey", "1", f"{i + 1:02x}" * 32)
    ok(world, ADMIN, "data:CloseStatsKeys", "1")


def test_schema_sets_the_metric_direction_and_starts_an_epoch(world: DataWorld) -> None:
    record = ok(world, ADMIN, "data:SetSchema", SCHEMA, "rmse")
    assert record["digest"] == SCHEMA and record["epoch"] == 1 and record["higher_is_better"] == 0
    assert ok(world, ORG2, "GetSettings")["higher_is_better"] == 0  # rollbacks judge lower-is-better
    assert ok(world, AUDITOR, "data:GetSchema") == record
    again = ok(world, ADMIN, "data:SetSchema", SCHEMA, "accuracy")
    assert again["epoch"] == 2 and ok(world, ORG2, "GetSettings")["higher_is_better"] == 1


def test_schema_refusals_change_nothing(world: DataWorld) -> None:
    refused(world, ADMIN, "data:GetSchema", code=NOT_FOUND)
    refused(world, ADMIN, "data:SetSchema", "not-a-digest", "accuracy", code=INVALID)
    refused(world, ADMIN, "data:SetSchema", SCHEMA, "precision", code=INVALID)
    refused(world, ORG2, "data:SetSchema", SCHEMA, "accuracy", code=UNAUTHORIZED)
    refused(world, AUDITOR, "data:SetSchema", SCHEMA, "accuracy", code=UNAUTHORIZED)
    ok(world, ADMIN, "OpenRound", "plaintext")
    assert "before the first round" in refused(world, ADMIN, "data:SetSchema", SCHEMA, "accuracy", code=PHASE)


def test_statistics_epoch_from_keys_to_scaler(world: DataWorld) -> None:
    ok(world, ADMIN, "data:SetSchema", SCHEMA, "accuracy")
    fix_parties(world)
    status = ok(world, AUDITOR, "data:GetStats")
    assert status["parties"] == MEMBERS and status["scaler"] is None and set(status["keys"]) == set(MEMBERS)
    for msp in MEMBERS:
        ok(world, msp, "data:CommitStats", "1", digest(f"stats:{msp}"), "5880")
    record = ok(world, ORG3, "data:SetScaler", "1", SCALER)  # any party may record it
    canonical = json.dumps(SCALER, sort_keys=True, separators=(",", ":"))
    assert record["digest"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert record["scaler"] == SCALER and record["contributors"] == MEMBERS
    assert ok(world, AUDITOR, "data:GetScaler") == record
    assert ok(world, AUDITOR, "data:GetStats")["commits"][ORG2] == {"digest": digest(f"stats:{ORG2}"), "size": 5880}


def test_statistics_refusals_change_nothing(world: DataWorld) -> None:
    refused(world, ORG2, "data:PublishStatsKey", "1", "ab" * 32, code=NOT_FOUND)  # no schema yet
    ok(world, ADMIN, "data:SetSchema", SCHEMA, "accuracy")
    refused(world, ORG2, "data:PublishStatsKey", "1", "zz" * 32, code=INVALID)
    refused(world, ORG2, "data:PublishStatsKey", "2", "ab" * 32, code=PHASE)  # not the current epoch
    refused(world, AUDITOR, "data:PublishStatsKey", "1", "ab" * 32, code=UNAUTHORIZED)
    refused(world, OUTSIDER, "data:PublishStatsKey", "1", "ab" * 32, code=UNAUTHORIZED)
    ok(world, ORG2, "data:PublishStatsKey", "1", "ab" * 32)
    refused(world, ORG2, "data:PublishStatsKey", "1", "cd" * 32, code=EXISTS)
    assert "needs at least 2" in refused(world, ADMIN, "data:CloseStatsKeys", "1", code=PHASE)
    refused(world, ORG2, "data:CommitStats", "1", digest("x"), "10", code=PHASE)  # parties not fixed
    ok(world, ORG3, "data:PublishStatsKey", "1", "cd" * 32)
    refused(world, ORG2, "data:CloseStatsKeys", "1", code=UNAUTHORIZED)
    ok(world, ADMIN, "data:CloseStatsKeys", "1")
    refused(world, ADMIN, "data:CloseStatsKeys", "1", code=EXISTS)
    refused(world, ADMIN, "data:PublishStatsKey", "1", "ef" * 32, code=PHASE)  # too late to join
    refused(world, ADMIN, "data:CommitStats", "1", digest("x"), "10", code=UNAUTHORIZED)  # not a party
    ok(world, ORG2, "data:CommitStats", "1", digest("x"), "10")
    refused(world, ORG2, "data:CommitStats", "1", digest("y"), "10", code=EXISTS)
    assert ORG3 in refused(world, ADMIN, "data:SetScaler", "1", SCALER, code=PHASE)  # Org3 has not committed
    ok(world, ORG3, "data:CommitStats", "1", digest("z"), "10")
    bad = [{**SCALER, "scale": [0, 1]}, {**SCALER, "mean": [1.5, 2]}, {**SCALER, "counts": [301, 1]},
           {**SCALER, "mean": [1]}, {k: v for k, v in SCALER.items() if k != "rows"}, {**SCALER, "extra": 1}]
    for scaler in bad:
        refused(world, ADMIN, "data:SetScaler", "1", scaler, code=INVALID)
    refused(world, AUDITOR, "data:SetScaler", "1", SCALER, code=UNAUTHORIZED)
    refused(world, ADMIN, "data:GetScaler", code=NOT_FOUND)
    ok(world, ADMIN, "data:SetScaler", "1", SCALER)  # the admin, not a party, may record it too
    refused(world, ORG2, "data:SetScaler", "1", SCALER, code=EXISTS)


def test_a_new_schema_starts_a_new_epoch(world: DataWorld) -> None:
    ok(world, ADMIN, "data:SetSchema", SCHEMA, "accuracy")
    fix_parties(world, [ADMIN, ORG2])
    ok(world, ADMIN, "data:SetSchema", digest("schema v2"), "accuracy")
    status = ok(world, ADMIN, "data:GetStats")
    assert status == {"epoch": 2, "keys": {}, "parties": None, "commits": {}, "scaler": None}
    refused(world, ORG2, "data:CommitStats", "1", digest("x"), "10", code=PHASE)  # the old epoch is over
