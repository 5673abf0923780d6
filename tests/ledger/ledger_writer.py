"""A separate process submitting to a shared ledger file (multi-process and crash tests).

    python ledger_writer.py LEDGER MSP_DIR MSP_ID PREFIX COUNT NODE_DIR   (COUNT 0: until killed)

NODE_DIR is the ledger node's organization folder: this process writes the file itself.

Prints ``committed <i>`` after each commit returns, flushed, so the parent
knows what the ledger has promised.
"""

from __future__ import annotations

import sys

import ledger_test_contract
from blockfedml.identity import load_signing_identity
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded.node import LedgerNode


def main() -> None:
    path, msp_dir, msp_id, prefix, count, node_dir = sys.argv[1:7]
    ledger = EmbeddedLedger.open(path, {"blockfedml": ledger_test_contract.new_chaincode()},
                                 node=LedgerNode.load(node_dir))
    contract = ledger.connect(load_signing_identity(msp_dir, msp_id)).network(ledger.channel).contract()
    i = 0
    while int(count) == 0 or i < int(count):
        contract.submit("Put", f"{prefix}-{i:06d}", str(i))
        print(f"committed {i}", flush=True)
        i += 1
    ledger.close()


if __name__ == "__main__":
    main()
