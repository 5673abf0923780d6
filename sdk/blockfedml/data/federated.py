"""The data agreement on the ledger: the schema, and the federated statistics behind the scaler.

The steps, each a transaction of the ``data`` contract (see docs/own-data.md):

1. the admin pins the schema: ``data:SetSchema`` (digest, metric), bytes in
   the store — :func:`publish_schema`;
2. every member publishes a fresh X25519 key for the current statistics
   epoch — :meth:`StatsParty.publish_key`;
3. the admin fixes the parties (everyone who published) —
   :func:`close_keys`;
4. every party stores its *masked* statistics vector and commits its digest
   — :meth:`StatsParty.commit`;
5. anyone (the admin, usually) adds the masked vectors, derives the scaler
   with integer arithmetic and records it with its digest —
   :func:`finalize_scaler`; every member recomputes it from the same blobs
   before using it — :func:`verified_scaler`.

Only masked vectors and totals ever leave a member. The secure sum itself is
the seam :class:`blockfedml.data.secure_sum.SecureSum`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blockfedml.data.schema import DataSchema
from blockfedml.data.secure_sum import DTYPE, PairwiseMasking, SecureSum
from blockfedml.data.stats import Scaler, decode, encode, local_statistics, scaler_from_totals
from blockfedml.data.table import LocalTable
from blockfedml.errors import IntegrityError, InvalidInputError, NotFoundError, PhaseError
from blockfedml.ledger.base import Contract
from blockfedml.store import ModelStore

MASKED_MAGIC = b"BLOCKFEDML-MASKED/1\n"


# -- the schema ------------------------------------------------------------------

def publish_schema(contract: Contract, store: ModelStore, schema: DataSchema) -> dict[str, Any]:
    """Pin ``schema`` on the ledger (admin) and keep its bytes in the store.

    The transaction goes first: if the contract refuses (a round was already
    opened, the caller is no admin), nothing is stored.
    """
    record = contract.submit_json("data:SetSchema", schema.digest, schema.metric)
    store.put(schema.to_bytes())
    return record


def fetch_schema(contract: Contract, store: ModelStore) -> tuple[DataSchema, dict[str, Any]] | None:
    """The agreed schema and its ledger record, or None when the consortium has none (demo data)."""
    try:
        record = contract.evaluate_json("data:GetSchema")
    except NotFoundError:
        return None
    schema = DataSchema.from_bytes(store.get(record["digest"]))  # the store re-hashes: the agreed bytes
    return schema, record


def require_schema(contract: Contract, store: ModelStore) -> tuple[DataSchema, dict[str, Any]]:
    found = fetch_schema(contract, store)
    if found is None:
        raise NotFoundError("this consortium has no data schema; the admin sets one with "
                            "`blockfedml admin schema set schema.json` (or creates the consortium with --schema)")
    return found


def stats_status(contract: Contract) -> dict[str, Any]:
    """The current statistics epoch: keys, parties, commitments, scaler (``data:GetStats``)."""
    return contract.evaluate_json("data:GetStats")


# -- the parties -------------------------------------------------------------------

@dataclass
class StatsParty:
    """One member's side of the federated statistics; its private key never leaves this object."""

    msp_id: str
    contract: Contract
    store: ModelStore
    table: LocalTable
    scheme: SecureSum = field(default_factory=PairwiseMasking)
    _private: bytes | None = field(default=None, repr=False)
    _epoch: int | None = field(default=None, repr=False)

    def publish_key(self, epoch: int) -> dict[str, Any]:
        """Take part in epoch ``epoch`` with a fresh key pair."""
        private, public = self.scheme.keypair()
        record = self.contract.submit_json("data:PublishStatsKey", epoch, public.hex())
        self._private, self._epoch = private, epoch
        return record

    def commit(self, status: Mapping[str, Any]) -> dict[str, Any]:
        """Store this member's masked statistics and commit their digest (parties must be fixed)."""
        epoch, parties = status["epoch"], status["parties"]
        if parties is None:
            raise PhaseError(f"the parties of statistics epoch {epoch} are not fixed yet")
        if self._private is None or self._epoch != epoch:
            raise PhaseError(f"{self.msp_id} holds no key for statistics epoch {epoch}; it cannot take part")
        keys = {p: bytes.fromhex(status["keys"][p]) for p in parties}
        vector = encode(local_statistics(self.table))
        masked = self.scheme.mask(self.msp_id, self._private, keys, vector, epoch)
        blob = masked_to_bytes(masked, epoch, self.msp_id, parties)
        digest = self.store.put(blob)
        return self.contract.submit_json("data:CommitStats", epoch, digest, len(blob))


def close_keys(contract: Contract, epoch: int) -> dict[str, Any]:
    """Fix the parties of the epoch (admin): every member that published a key."""
    return contract.submit_json("data:CloseStatsKeys", epoch)


def total_statistics(store: ModelStore, status: Mapping[str, Any],
                     scheme: SecureSum | None = None) -> list[int]:
    """The exact totals from every party's masked blob, each checked against its commitment."""
    scheme = scheme or PairwiseMasking()
    epoch, parties, commits = status["epoch"], status["parties"], status["commits"]
    missing = [p for p in parties or [] if p not in commits]
    if parties is None or missing:
        raise PhaseError(f"statistics epoch {epoch} is incomplete; waiting for {missing or 'the parties'}")
    masked = {}
    for party in parties:
        blob = store.get(commits[party]["digest"])  # re-hashed against the ledger's digest
        if len(blob) != commits[party]["size"]:
            raise IntegrityError(f"the statistics of {party} have {len(blob)} bytes, "
                                 f"the commitment says {commits[party]['size']}")
        masked[party] = masked_from_bytes(blob, epoch, party, parties)
    return decode(scheme.combine(masked))


def finalize_scaler(contract: Contract, store: ModelStore, schema: DataSchema,
                    status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Add the masked statistics, derive the scaler and record it (admin or a party)."""
    status = status or stats_status(contract)
    scaler = scaler_from_totals(total_statistics(store, status), schema)
    return contract.submit_json("data:SetScaler", status["epoch"], scaler.to_record())


def verified_scaler(store: ModelStore, schema: DataSchema, status: Mapping[str, Any]) -> Scaler:
    """The epoch's scaler, after recomputing it from the stored blobs: a wrong record is refused."""
    record = status["scaler"]
    if record is None:
        raise PhaseError(f"statistics epoch {status['epoch']} has no scaler yet")
    expected = scaler_from_totals(total_statistics(store, status), schema)
    if expected.digest != record["digest"] or expected.to_record() != record["scaler"]:
        raise IntegrityError(f"the scaler recorded for statistics epoch {status['epoch']} is not the one the "
                             "members' statistics give; do not use it (ask the admin to start again)")
    return expected


def run_statistics(admin: Contract, store: ModelStore, schema: DataSchema,
                   parties: Sequence[StatsParty]) -> Scaler:
    """All five steps in this process (the in-process session; members in separate processes
    run the same steps through :mod:`blockfedml.data.run`)."""
    epoch = stats_status(admin)["epoch"]
    for party in parties:
        party.publish_key(epoch)
    close_keys(admin, epoch)
    status = stats_status(admin)
    for party in parties:
        party.commit(status)
    finalize_scaler(admin, store, schema)
    return verified_scaler(store, schema, stats_status(admin))


# -- the masked blob -------------------------------------------------------------

def masked_to_bytes(masked: np.ndarray, epoch: int, org: str, parties: Sequence[str]) -> bytes:
    """``MAGIC``, a canonical JSON header line, then the uint64 words (little-endian)."""
    header = {"epoch": epoch, "length": int(len(masked)), "org": org, "parties": sorted(parties)}
    return (MASKED_MAGIC + json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"
            + np.asarray(masked, dtype=DTYPE).tobytes())


def masked_from_bytes(blob: bytes, epoch: int, org: str, parties: Sequence[str]) -> np.ndarray:
    """Parse a masked blob and check that it is ``org``'s for this epoch and party set."""
    if not blob.startswith(MASKED_MAGIC) or b"\n" not in blob[len(MASKED_MAGIC):]:
        raise InvalidInputError(f"the statistics of {org} are not a masked statistics blob")
    line, _, payload = blob[len(MASKED_MAGIC):].partition(b"\n")
    try:
        header = json.loads(line)
    except ValueError:
        raise InvalidInputError(f"the statistics blob of {org} has a malformed header") from None
    expected = {"epoch": epoch, "org": org, "parties": sorted(parties)}
    if {k: header.get(k) for k in expected} != expected:
        raise IntegrityError(f"the statistics blob committed by {org} is labelled {header}, expected {expected}")
    if len(payload) != 8 * header.get("length", -1):
        raise IntegrityError(f"the statistics blob of {org} is truncated or padded")
    return np.frombuffer(payload, dtype=DTYPE).copy()
