"""Errors raised by the contract.

A Fabric peer only carries a message string back to the client, so every error
message starts with a bracketed code (``[NOT_FOUND] round 7 does not exist``).
The SDK maps the code back to its own exception class; people read the rest.
"""

INVALID = "INVALID"            # a malformed or out-of-range argument
UNAUTHORIZED = "UNAUTHORIZED"  # the caller's organization lacks the role
NOT_FOUND = "NOT_FOUND"        # the named object does not exist
EXISTS = "EXISTS"              # the object already exists (replays land here)
PHASE = "PHASE"                # the round (or consortium) is not in the right state

CODES = (INVALID, UNAUTHORIZED, NOT_FOUND, EXISTS, PHASE)


class ContractError(Exception):
    """A transaction was refused; nothing it computed is written."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise ValueError(f"unknown contract error code {code!r}")
        self.code = code
        self.detail = message
        super().__init__(f"[{code}] {message}")
