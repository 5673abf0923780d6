"""A canary planted in one member's update is found nowhere the others can read.

One value of Org2's update is set to a marker. After a whole secure round, none of its
forms — the float, its fixed-point integer, weighted, offset, packed into a Paillier slot
— is in any file of the consortium's folder (the store every organization reads: blobs
received, sums, openings, checkpoints; the ledger), nor in any log line at debug level.
As a control, the same forms are found in the member's own encoded update.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from blockfedml.consortium import Consortium
from blockfedml.crypto import FixedPoint, SlotLayout, save_private_key
from blockfedml.fl.attacks import Behaviour
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

CANARY = 77.12345678901
VICTIM = "Org2MSP"  # round 1's aggregator is Org1MSP


class PlantsACanary(Behaviour):
    name = "canary"

    def update(self, params, base, round_):
        planted = np.array(params, dtype=np.float64)
        planted[3] = CANARY
        return planted


def canary_forms(weight: int) -> dict[str, bytes]:
    """Every form the canary takes on its way from the member: the float, its text, the fixed-point
    integer (alone, weighted), and the weighted offset value as it sits in a packed slot."""
    codec = FixedPoint()
    q = int(round(CANARY * codec.scale))
    slot_bytes = SlotLayout.for_round(codec, 2048, 3).slot_bytes
    offset_value = weight * (q + codec.offset)
    return {
        "float64": struct.pack("<d", CANARY),
        "float64-be": struct.pack(">d", CANARY),
        "text": f"{CANARY:.6f}".encode(),
        "fixed-point": struct.pack("<q", q),
        "weighted": struct.pack("<q", weight * q),
        "slot": offset_value.to_bytes(slot_bytes, "little"),
    }


def readable_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("mode", ["paillier", "masking"])
def test_a_canary_in_one_update_is_found_nowhere_others_can_read(tmp_path, private_key, caplog, mode):
    caplog.set_level(logging.DEBUG)
    c = Consortium.create(tmp_path / mode, n_orgs=3, task=TaskSpec(), collaborator=mode == "paillier")
    try:
        if mode == "paillier":
            save_private_key(c.workdir / "orgs" / "Collaborator" / "keys" / "paillier.key", private_key)
        session = Session(c, mode=mode)
        session.join_all()
        victim = next(m for m in session.members if m.msp_id == VICTIM)
        victim.behaviour = PlantsACanary()
        result = session.run_round()
        weight = len(victim.data.y_train)
    finally:
        c.close()
    # The canary spoils the model (the round may be rolled back), but the sum was opened and proposed.
    assert result.status in ("accepted", "rolled_back") and result.digest
    assert result.aggregator != VICTIM and VICTIM in result.participants
    forms = canary_forms(weight)
    # Control: the forms are what the member itself encodes (so a leak would be found).
    encoded = FixedPoint().encode(np.array([0.0, CANARY]), weight=weight).ints.astype("<i8").tobytes()
    assert forms["weighted"] in encoded
    # Nowhere on disk (store, ledger, every organization's folder) and nowhere in the logs.
    files = readable_files(c.workdir)
    assert any(p.parent.parent.name == "store" or p.parent.name == "store" for p in files)  # blobs were searched
    for path in files:
        data = path.read_bytes()
        for name, form in forms.items():
            assert form not in data, f"the canary ({name}) is readable in {path.relative_to(c.workdir)}"
    for name, form in forms.items():
        assert form.decode("latin-1") not in caplog.text, f"the canary ({name}) is in a log line"
