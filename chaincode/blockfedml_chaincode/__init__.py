"""The BlockFedML federation contract.

This package runs in two places: inside a Fabric peer's chaincode-as-a-service
process, and in-process inside the SDK's embedded ledger. It therefore imports
nothing from the SDK and uses only integer arithmetic.
"""
