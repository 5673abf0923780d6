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
VERIFIED, PARTLY_VERIFIED, FAILED = "verified", "partly verified", "failed"
EXIT_CODES = {VERIFIED: 0, FAILED: 1, PARTLY_VERIFIED: 3}
"""``audit verify``'s exit code per verdict, so scripts tell "verified" from "partly verified"."""


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
    """Every check of one audit; ``ok`` when none failed (skips do not fail an audit, but they
    make it only partly verified: ``verdict``)."""

    backend: str
    checks: list[CheckResult]
    height: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed (something may still have gone unchecked: see ``verdict``)."""
        return all(c.status != FAIL for c in self.checks)

    @property
    def unchecked(self) -> list[str]:
        """What was not recomputed and why: every skip reason of a check that did not fail."""
        return [f"{c.name}: {reason}" for c in self.checks if c.status != FAIL for reason in c.skipped]

    @property
    def verdict(self) -> str:
        """``verified`` only when every check recomputed all it covers; ``partly verified`` when
        nothing failed but something was skipped; ``failed`` on any finding."""
        if not self.ok:
            return FAILED
        return PARTLY_VERIFIED if self.unchecked else VERIFIED

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def summary(self) -> str:
        """One line: the verdict, the counts, and for a partial audit what went unchecked and why."""
        counts = {s: sum(c.status == s for c in self.checks) for s in (FAIL, PASS, SKIP)}
        line = f"{counts[FAIL]} failed, {counts[PASS]} passed, {counts[SKIP]} skipped"
        if self.verdict == VERIFIED:
            return f"OK: {line}"
        if self.verdict == FAILED:
            return f"FAILED: {line}"
        per_check = []
        for check in self.checks:
            if check.status != FAIL and check.skipped:
                more = f" (and {len(check.skipped) - 1} more)" if len(check.skipped) > 1 else ""
                per_check.append(f"{check.name} {'not run' if check.status == SKIP else 'in part'}: "
                                 f"{check.skipped[0]}{more}")
        return f"PARTLY VERIFIED: {line}; not recomputed: " + "; ".join(per_check)

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "verdict": self.verdict, "exit_code": self.exit_code, "unchecked": self.unchecked,
            "summary": self.summary(), "backend": self.backend, "blocks": self.height, "notes": list(self.notes),
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
