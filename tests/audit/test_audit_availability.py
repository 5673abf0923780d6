"""Availability: the auditor fetches every blob the ledger names from whoever holds it; a blob no
holder can produce is a FAIL naming it, never a PASS."""

from __future__ import annotations

from contextlib import ExitStack

from blockfedml import ledger_host
from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.org_host import serving_blobs


def _audit_as_auditor_alone(workdir, serving: tuple[str, ...]):
    """The Auditor's own process (its folder only), with the named organizations serving blobs."""
    with ledger_host.serving(workdir), ExitStack() as stack:
        for org in serving:
            stack.enter_context(serving_blobs(Consortium.open(workdir, org=org), org))
        auditor = Consortium.open(workdir, ledger_access="service", org="Auditor")
        try:
            return audit_consortium(auditor, "Auditor")
        finally:
            auditor.close()


def test_the_auditor_fetches_every_model_from_its_holders(session_copy):
    report = _audit_as_auditor_alone(session_copy, ("Org1", "Org2", "Org3"))
    assert report.check("checkpoints").status == "pass", [str(f) for f in report.findings]
    assert not report.check("checkpoints").findings


def test_models_no_holder_serves_are_failures_naming_them(session_copy):
    report = _audit_as_auditor_alone(session_copy, ())
    findings = report.check("checkpoints").findings
    assert report.check("checkpoints").status == "fail" and findings
    assert all(f.object.startswith("model ") for f in findings)
    assert "no holder could produce it" in findings[0].message and "cannot reach" in findings[0].message
