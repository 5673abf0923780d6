"""Full re-verification of an embedded ledger, for auditors.

Trusts nothing stored but the genesis block's content: rebuilds every
envelope from its stored form (no cached dictionary is used), recomputes every
data and block hash and the chain links, re-verifies the orderer signature of
every block, the creator's signatures, the ledger node's endorsement and the
certificate issuance of every transaction, re-runs MVCC validation by replaying
the chain from genesis (so a validation code flipped in place is found),
compares the replayed world state with the ``state`` table and checks that
every stored certificate is filed under its own digest. Every problem is
reported with the block and transaction it concerns; verification goes on
after a problem so one report lists them all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from blockfedml.errors import BlockFedMLError
from blockfedml.identity.signing import Identity
from blockfedml.ledger.embedded import blocks
from blockfedml.ledger.embedded.store import BlockRow, LedgerStore

if TYPE_CHECKING:
    from blockfedml.ledger.embedded.ledger import EmbeddedLedger

MAX_PROBLEMS = 1000


@dataclass
class VerifyReport:
    """Outcome of ``EmbeddedLedger.verify``: ``ok`` when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    blocks: int = 0
    valid_transactions: int = 0
    invalid_transactions: int = 0
    state_keys: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("... more problems not listed")

    def __str__(self) -> str:
        head = (f"{self.blocks} blocks, {self.valid_transactions} valid and "
                f"{self.invalid_transactions} invalid transactions, {self.state_keys} state keys")
        if self.ok:
            return f"ledger OK: {head}"
        return f"ledger has {len(self.problems)} problem(s) ({head}):\n" + "\n".join(
            f"  - {p}" for p in self.problems)


def verify_ledger(ledger: "EmbeddedLedger", store: LedgerStore) -> VerifyReport:
    """Verify inside the caller's read snapshot (see the module docstring)."""
    report = VerifyReport()
    store.forget_cache()
    # (namespace, key) -> (value, (block, txnum)), rebuilt from valid transactions only
    replay: dict[tuple[str, str], tuple[bytes, tuple[int, int]]] = {}
    seen_tx: set[str] = set()
    expected_number, previous_hash = 0, blocks.GENESIS_PREVIOUS_HASH

    def version_of(ns: str, key: str) -> tuple[int, int] | None:
        found = replay.get((ns, key))
        return None if found is None else found[1]

    def scan(ns: str, start: str, end: str) -> list[tuple[str, bytes, int, int]]:
        keys = sorted(k for n, k in replay if n == ns and k >= start and (not end or k < end))
        return [(k, replay[(ns, k)][0], *replay[(ns, k)][1]) for k in keys]

    for row in store.iter_blocks():
        report.blocks += 1
        where = f"block {row.number}"
        if row.number != expected_number:
            report.add(f"{where}: expected block number {expected_number} (a block is missing)")
        if row.previous_hash != previous_hash:
            report.add(f"{where}: previous hash does not match the hash of block {row.number - 1}")
        if row.kind == "config":
            data_hash = blocks.config_data_hash(row.data)
            if row.number != 0:
                report.add(f"{where}: a configuration block after genesis is not supported")
            else:
                try:
                    channel, orgs = blocks.decode_config(row.data)
                    node = blocks.decode_node(row.data)
                    if (channel, orgs, node) != (ledger.channel, ledger.organizations,
                                                 ledger.node_certificates):
                        report.add(f"{where}: channel configuration changed since the ledger was opened")
                except BlockFedMLError as exc:
                    report.add(f"{where}: {exc}")
        elif row.defect is not None:
            report.add(f"{where} (tx {row.tx_id}): {row.defect}")
            data_hash = row.data_hash  # nothing to hash; the defect is reported
        else:
            data_hash = blocks.transaction_data_hash(row.data, row.proposal_signature or b"",
                                                     row.validation_code)
            _verify_transaction(ledger, row, where, report, seen_tx, replay, version_of, scan)
        if data_hash != row.data_hash:
            report.add(f"{where}: data hash does not match its transaction (tx {row.tx_id})")
        header = blocks.block_header_bytes(row.number, row.previous_hash, row.data_hash)
        if hashlib.sha256(header).digest() != row.hash:
            report.add(f"{where}: block hash does not match its header")
        if row.number > 0 and not ledger.node_certificates.block_signature_ok(header, row.orderer_signature):
            report.add(f"{where}: the orderer signature does not verify (the block was altered or "
                       "forged without the ledger node's key)")
        expected_number, previous_hash = row.number + 1, row.hash
    if report.blocks == 0:
        report.add("the ledger has no genesis block")
    for cert_id, digest, creator in store.iter_certificates():
        if hashlib.sha256(creator).digest() != digest:
            report.add(f"certificate {cert_id}: its digest does not match its content")

    stored = {(ns, key): (value, (block, txnum)) for ns, key, value, block, txnum in store.iter_state()}
    report.state_keys = len(stored)
    for ns_key in sorted(set(stored) | set(replay)):
        ns, key = ns_key
        label = f"state {ns}/{key!r}"
        if ns_key not in replay:
            report.add(f"{label}: present in the state table but written by no valid transaction")
        elif ns_key not in stored:
            report.add(f"{label}: written at block {replay[ns_key][1][0]} but missing from the state table")
        elif stored[ns_key][0] != replay[ns_key][0]:
            report.add(f"{label}: value differs from the one written at block {replay[ns_key][1][0]}")
        elif stored[ns_key][1] != replay[ns_key][1]:
            report.add(f"{label}: version {stored[ns_key][1]} differs from {replay[ns_key][1]}")
    return report


def _verify_transaction(ledger: "EmbeddedLedger", row: BlockRow, where: str,
                        report: VerifyReport, seen_tx: set[str],
                        replay: dict[tuple[str, str], tuple[bytes, tuple[int, int]]],
                        version_of: Callable[[str, str], Any], scan: Callable[..., Any]) -> None:
    try:
        parsed = blocks.parse_envelope(row.data, row.proposal_signature or b"")
    except BlockFedMLError as exc:
        report.add(f"{where} (tx {row.tx_id}): {exc}")
        return
    tx_id = parsed.proposal.tx_id
    where = f"{where} (tx {tx_id})"
    problem = ledger.transaction_problem(parsed)
    if problem is not None:
        report.add(f"{where}: {problem}")
    if tx_id in seen_tx:
        report.add(f"{where}: transaction ID appears twice on the ledger")
    seen_tx.add(tx_id)
    try:
        msp = Identity.deserialize(parsed.proposal.creator).msp_id
    except BlockFedMLError:
        msp = None
    indexed = (row.tx_id, row.creator_msp, row.chaincode, row.function)
    actual = (tx_id, msp, parsed.proposal.chaincode, parsed.proposal.function)
    if indexed != actual:
        report.add(f"{where}: block columns {indexed} do not match the transaction {actual}")

    from blockfedml.ledger.embedded.ledger import mvcc_check
    code, conflict = mvcc_check(parsed.rwset, version_of, scan)
    if code != row.validation_code:
        report.add(f"{where}: recorded as {blocks.validation_code_name(row.validation_code)} but "
                   f"replay finds {blocks.validation_code_name(code)}"
                   + (f" on {conflict}" if conflict else ""))
    if code == blocks.VALID:
        report.valid_transactions += 1
        ns = parsed.rwset.namespace
        for key, value in parsed.rwset.writes.items():
            if value is None:
                replay.pop((ns, key), None)
            else:
                replay[(ns, key)] = (value, (row.number, 0))
    else:
        report.invalid_transactions += 1
