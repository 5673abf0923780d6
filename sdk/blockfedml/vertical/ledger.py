"""The vertical contract as the SDK sees it: one method per transaction or query.

Every call goes through the same ``Contract`` object as the federation
contract, as ``vertical:<Function>`` (the chaincode routes it to
``VerticalContract``); refusals arrive as the SDK's usual exceptions.
"""

from __future__ import annotations

from typing import Any, Mapping

from blockfedml.ledger.base import Contract

NS = "vertical"


class VerticalLedger:
    """One organization's calls to the vertical contract."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract

    def _submit(self, function: str, *args: Any) -> Any:
        return self.contract.submit_json(f"{NS}:{function}", *args)

    def _evaluate(self, function: str, *args: Any) -> Any:
        return self.contract.evaluate_json(f"{NS}:{function}", *args)

    # -- transactions ---------------------------------------------------------------
    def open_session(self, session: str, parties: Mapping[str, str], settings: Mapping[str, Any]) -> dict:
        return self._submit("OpenSession", session, dict(parties), dict(settings))

    def approve_alignment(self, session: str, size: int, transcript: str) -> dict:
        return self._submit("ApproveAlignment", session, size, transcript)

    def publish_key(self, session: str, fingerprint: str) -> dict:
        return self._submit("PublishKey", session, fingerprint)

    def commit_iteration(self, session: str, iteration: int, loss: int, messages: Mapping[str, str]) -> dict:
        return self._submit("CommitIteration", session, iteration, loss, dict(messages))

    def commit_model(self, session: str, digest: str) -> dict:
        return self._submit("CommitModel", session, digest)

    def finish(self, session: str) -> dict:
        return self._submit("FinishSession", session)

    def abort(self, session: str, reason: str) -> dict:
        text = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)[:300] or "unknown error"
        return self._submit("AbortSession", session, text)

    # -- queries --------------------------------------------------------------------
    def session(self, session: str) -> dict:
        return self._evaluate("GetSession", session)

    def sessions(self) -> list[dict]:
        return self._evaluate("ListSessions")

    def approvals(self, session: str) -> dict:
        return self._evaluate("GetApprovals", session)

    def iterations(self, session: str) -> list[dict]:
        return self._evaluate("GetIterations", session)

    def models(self, session: str) -> dict:
        return self._evaluate("GetModels", session)
