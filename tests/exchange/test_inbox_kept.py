"""An aggregator's inbox kept in its own folder survives a restart (docs/operations.md)."""

from __future__ import annotations

import stat

from blockfedml.exchange.server import Inbox


def test_a_restarted_inbox_has_what_was_received_and_forgets_old_rounds(tmp_path):
    folder = tmp_path / "keys" / "Org1" / "inbox"
    first = Inbox(folder)
    first.put(1, "Org2MSP", b"old round")
    first.put(2, "Org2MSP", b"blob of Org2")
    first.put(2, "Org3MSP", b"blob of Org3")
    first.discard(2, "Org3MSP")                      # failed its check: gone from disk too
    assert stat.S_IMODE((folder / "00000002~Org2MSP").stat().st_mode) == 0o600
    again = Inbox(folder)                            # the process was killed and started again
    assert again.wait(2, ["Org2MSP"], timeout=0) == {"Org2MSP": b"blob of Org2"}
    assert again.senders(2) == ["Org2MSP"]
    again.forget_before(2)
    assert Inbox(folder).senders(1) == []
    assert Inbox().senders(2) == []                  # without a folder nothing is kept
