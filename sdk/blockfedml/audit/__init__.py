"""Auditing: read the history, recompute it, show it (docs/audit.md).

- ``verify.audit_consortium``: every check (ledger, replay, checkpoints, rounds,
  aggregates, reputation, decisions), each PASS/FAIL/SKIP with its findings;
- ``report.consortium_report``: the self-contained HTML report;
- ``provenance.consortium_provenance``: one checkpoint's provenance as JSON;
- ``history.checkpoint_lineage``: a checkpoint and its ancestors.

Submodules are imported on use (the report needs plotly, the others do not).
"""
