"""The one place that imports fabric-chaincode-python.

Importing the package (2.5.4) calls ``logging.basicConfig(level=DEBUG)`` on the
root logger and logs every ``put_state`` value through the ``asyncio`` logger
(FABRIC_NOTES.md, defect 7). That would flood the SDK's own logging and leak
ledger values into logs, so this module imports the package, puts the root
logger back the way it was and quiets the package's logger. Everything else in
the chaincode imports Fabric names from here.
"""

from __future__ import annotations

import logging

_root = logging.getLogger()
_handlers_before = list(_root.handlers)
_level_before = _root.level

from fabric_chaincode_python.fabric_contract_api import (  # noqa: E402
    Contract,
    ContractChaincode,
)
from fabric_chaincode_python.fabric_contract_api.contractapi.transaction_context import (  # noqa: E402
    TransactionContextInterface,
)
from fabric_chaincode_python.fabric_shim.handler import Handler  # noqa: E402  (ccaas.py fixes it)

for _handler in list(_root.handlers):
    if _handler not in _handlers_before:
        _root.removeHandler(_handler)
_root.setLevel(_level_before)
logging.getLogger("asyncio").setLevel(logging.WARNING)  # the package's LOGGER


def new_chaincode() -> ContractChaincode:
    """Build the chaincode object that a peer or the embedded ledger invokes."""
    from .contract import FederationContract  # late: contract.py imports this module
    from .data import DataContract
    from .vertical import VerticalContract

    return ContractChaincode.new_chaincode(FederationContract(), DataContract(), VerticalContract())


__all__ = ["Contract", "ContractChaincode", "Handler", "TransactionContextInterface", "new_chaincode"]
