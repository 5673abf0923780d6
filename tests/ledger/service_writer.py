"""A client that commits through the ledger service in a loop (the service crash test).

    python service_writer.py WORKDIR

Prints ``committed <tx_id>`` after each commit the service acknowledged, flushed;
exits at the first call that fails (the service was killed).
"""

from __future__ import annotations

import json
import sys

from blockfedml.consortium import Consortium
from blockfedml.errors import BlockFedMLError


def main() -> None:
    consortium = Consortium.open(sys.argv[1], ledger_access="service")
    contract = consortium.contract("Org1")
    i = 0
    while True:
        i += 1
        try:
            tx = contract.new_proposal("SetSettings", json.dumps({"reward": 1 + i % 90})).endorse()
            tx.submit()
        except BlockFedMLError as exc:
            print(f"stopped: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)
        print(f"committed {tx.tx_id}", flush=True)


if __name__ == "__main__":
    main()
