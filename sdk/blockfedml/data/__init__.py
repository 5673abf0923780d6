"""Members' own data: the agreed schema, file checks, federated statistics and the scaler.

- :mod:`~blockfedml.data.schema` — the data schema the consortium agrees on;
- :mod:`~blockfedml.data.table` — reading a member's CSV/Parquet file and
  checking it against the schema (errors name file, row and column);
- :mod:`~blockfedml.data.secure_sum` — the secure-sum seam (pairwise masking);
- :mod:`~blockfedml.data.stats` — per-member statistics, their exact
  encoding and the standard scaler derived from the totals;
- :mod:`~blockfedml.data.federated` — the ``data`` contract's protocol;
- :mod:`~blockfedml.data.metrics` — the task's metrics;
- :mod:`~blockfedml.data.run` — sessions in one process or one per member.

The walkthrough is docs/own-data.md.
"""

from blockfedml.data.schema import DataSchema, load_schema, parse_schema
from blockfedml.data.stats import Scaler
from blockfedml.data.table import DataFileError, LocalTable, load_table

__all__ = ["DataFileError", "DataSchema", "LocalTable", "Scaler", "load_schema", "load_table", "parse_schema"]
