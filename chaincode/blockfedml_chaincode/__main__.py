"""``python -m blockfedml_chaincode``: run the contract as a chaincode server (CCaaS).

Needs ``CHAINCODE_ID`` and ``CHAINCODE_SERVER_ADDRESS``; see ``ccaas.py``.
"""

from .ccaas import main

if __name__ == "__main__":
    main()
