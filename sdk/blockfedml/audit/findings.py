"""The outcome of an audit: checks that pass, fail or are skipped, and what failed where.

An auditor has to act on a failure, so every finding names the round, the
transaction and the object (block, state key, blob, checkpoint) it concerns,
as far as they are known. A check that cannot be carried out (no local blocks
on Fabric, blobs not kept, a mode an auditor cannot recompute) is *skipped with
its reason*, never silently passed and never failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Finding:
    """One thing found wrong."""

    message: str
    round: int | None = None
    tx: str | None = None
    object: str | None = None

    def __str__(self) -> str:
        where = [f"round {self.round}" if self.round is not None else "",
                 f"tx {self.tx}" if self.tx else "", self.object or ""]
        prefix = " | ".join(w for w in where if w)
        return f"{prefix}: {self.message}" if prefix else self.message


@dataclass
class CheckResult:
    """One named check: its status, what it covered, what it found and what it skipped."""

    name: str
    title: str
    status: str
    detail: str = ""
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "findings": [asdict(f) for f in self.findings]}


@dataclass
class AuditReport:
    """Every check of one audit; ``ok`` when none failed (skips do not fail an audit)."""

    backend: str
    checks: list[CheckResult]
    height: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "backend": self.backend, "blocks": self.height, "notes": list(self.notes),
            "checks": [c.to_dict() for c in self.checks],
            "problems": [f"{c.name}: {f}" for c in self.checks for f in c.findings],
        }


class Check:
    """Collects the findings of one check while it runs."""

    def __init__(self, name: str, title: str) -> None:
        self.name, self.title = name, title
        self.findings: list[Finding] = []
        self.skipped: list[str] = []
        self.checked = 0

    def fail(self, message: str, *, round: int | None = None, tx: str | None = None,
             object: str | None = None) -> None:
        self.findings.append(Finding(message, round, tx, object))

    def skip(self, reason: str) -> None:
        self.skipped.append(reason)

    def result(self, detail: str = "") -> CheckResult:
        """Fail on any finding; skip when nothing at all could be checked."""
        if self.findings:
            status = FAIL
        elif self.skipped and not self.checked:
            status = SKIP
        else:
            status = PASS
        return CheckResult(self.name, self.title, status, detail, list(self.findings), list(self.skipped))


def skipped(name: str, title: str, reason: str) -> CheckResult:
    """A whole check that cannot run here, with the reason."""
    return CheckResult(name, title, SKIP, reason, [], [reason])
