"""One error hierarchy for the whole SDK.

Every error the SDK raises on purpose is a ``BlockFedMLError``; the subclasses
say what kind of thing went wrong, the message says what to do about it.
"""

from __future__ import annotations

import re


class BlockFedMLError(Exception):
    """Root of every error raised by BlockFedML."""


class InvalidInputError(BlockFedMLError, ValueError):
    """An argument, file or setting is malformed or out of range."""


class NotAuthorizedError(BlockFedMLError):
    """The calling organization lacks the role this action needs."""


class NotFoundError(BlockFedMLError, LookupError):
    """The named object (round, organization, checkpoint, blob) does not exist."""


class ConflictError(BlockFedMLError):
    """The object already exists, or a concurrent transaction won (MVCC)."""


class PhaseError(BlockFedMLError):
    """The round or consortium is not in the state this action needs."""


class IntegrityError(BlockFedMLError):
    """Stored data does not match its digest, signature or hash chain."""


class CryptoError(BlockFedMLError):
    """A key, certificate or ciphertext is unusable."""


class LedgerError(BlockFedMLError):
    """The ledger could not be reached or did not answer in time."""


class ExchangeError(BlockFedMLError):
    """Another organization's exchange endpoint could not be reached, refused the
    TLS handshake, or did not answer before the deadline (after any retries)."""


class ChaincodeError(BlockFedMLError):
    """The contract refused a transaction for a reason without a precise class."""


_CODE_TO_ERROR: dict[str, type[BlockFedMLError]] = {
    "INVALID": InvalidInputError,
    "UNAUTHORIZED": NotAuthorizedError,
    "NOT_FOUND": NotFoundError,
    "EXISTS": ConflictError,
    "PHASE": PhaseError,
    # Not used by the contract; how a ledger service reports its own refusals over gRPC.
    "INTEGRITY": IntegrityError,
    "CRYPTO": CryptoError,
    "LEDGER": LedgerError,
}

_CODE_PATTERN = re.compile(r"\[(INVALID|UNAUTHORIZED|NOT_FOUND|EXISTS|PHASE|INTEGRITY|CRYPTO|LEDGER)\]\s*(.*)",
                           re.S)


def wire_message(error: BaseException) -> str:
    """``error`` as ``[CODE] message``, so the receiving side's ``from_chaincode_message``
    raises the same class again (a ledger service answering a Gateway client)."""
    text = str(error)
    if _CODE_PATTERN.match(text):
        return text
    for code, cls in _CODE_TO_ERROR.items():
        if type(error) is cls:
            return f"[{code}] {text}"
    return text


def from_chaincode_message(message: str) -> BlockFedMLError:
    """Turn a contract's error message (``[CODE] text``) into the SDK's exception.

    Works on the bare message of the embedded ledger and on a Fabric peer's
    message, which wraps the chaincode's text in its own words.
    """
    match = _CODE_PATTERN.search(message)
    if match is None:
        return ChaincodeError(message)
    return _CODE_TO_ERROR[match.group(1)](match.group(0))
