"""What an attacker with write access to a work directory can do to it.

Each helper edits a *copy* of a finished session: the model store's files, the
ledger's SQLite tables, or a block's transaction — rebuilt, changed, optionally
re-signed with its creator's own key (taken from the work directory, as an
insider would), re-packed in the ledger's storage format and the hash chain
recomputed from there on, so that only what the audit recomputes can tell.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fabric_protos.common import common_pb2
from fabric_protos.peer import proposal_response_pb2

from blockfedml.consortium import Consortium
from blockfedml.identity import load_signing_identity
from blockfedml.identity.signing import Identity
from blockfedml.ledger.embedded import EmbeddedLedger
from blockfedml.ledger.embedded import blocks
from blockfedml.ledger.embedded.node import LedgerNode
from blockfedml.ledger.embedded.store import LedgerStore

NAMESPACE = "blockfedml"


def ledger_path(workdir: Path) -> Path:
    return workdir / "ledger" / "ledger.sqlite"


def blob_copies(workdir: Path, digest: str) -> list[Path]:
    """Every organization's stored copy of a blob (the producer's and those fetched by others)."""
    return [path for path in sorted((workdir / "orgs").glob(f"*/store/{digest[:2]}/{digest[2:]}"))]


def corrupt_blob(workdir: Path, digest: str) -> None:
    """Flip a byte of every stored copy of a blob: what an attacker holding every folder could do."""
    copies = blob_copies(workdir, digest)
    assert copies, f"no stored copy of {digest}"
    for path in copies:
        corrupt_file(path)


def delete_blob(workdir: Path, digest: str) -> None:
    copies = blob_copies(workdir, digest)
    assert copies, f"no stored copy of {digest}"
    for path in copies:
        path.unlink()


def sql(workdir: Path, statement: str, *args: object) -> None:
    db = sqlite3.connect(ledger_path(workdir))
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


def state_value(workdir: Path, key: str) -> bytes:
    db = sqlite3.connect(ledger_path(workdir))
    try:
        return db.execute("SELECT value FROM state WHERE namespace = ? AND key = ?", (NAMESPACE, key)).fetchone()[0]
    finally:
        db.close()


def set_state(workdir: Path, key: str, value: bytes) -> None:
    sql(workdir, "UPDATE state SET value = ? WHERE namespace = ? AND key = ?", value, NAMESPACE, key)


def flip_stored_byte(workdir: Path, number: int, offset: int = 40) -> None:
    """Flip one byte of block ``number`` as it is stored (compressed) in the file."""
    db = sqlite3.connect(ledger_path(workdir))
    try:
        data = bytearray(db.execute("SELECT data FROM blocks WHERE number = ?", (number,)).fetchone()[0])
        data[offset] ^= 0xFF
        db.execute("UPDATE blocks SET data = ? WHERE number = ?", (bytes(data), number))
        db.commit()
    finally:
        db.close()


def find_block(workdir: Path, function: str, round_number: int | None = None, creator: str | None = None) -> dict:
    """The first transaction block of ``function`` (in a round, by a creator), decoded."""
    with EmbeddedLedger.open(ledger_path(workdir)) as ledger:
        for block in ledger.iter_blocks(1):
            tx = block["transaction"]
            if tx["function"] == function and (round_number is None or tx["args"][:1] == [str(round_number)]) \
                    and (creator is None or tx["creator_msp"] == creator):
                return block
    raise LookupError(f"no {function} block for round {round_number}")


def rehash_from(workdir: Path, start: int, node: LedgerNode | None = None) -> None:
    """Recompute every data hash and block hash from block ``start`` on (a careful attacker);
    with the ledger ``node``'s keys (a malicious ledger operator) re-sign the blocks too."""
    store = LedgerStore(ledger_path(workdir))
    try:
        previous = store.block(start - 1).hash
        rows = []
        for row in store.iter_blocks(start):
            data_hash = blocks.transaction_data_hash(row.data, row.proposal_signature or b"", row.validation_code)
            header = blocks.block_header_bytes(row.number, previous, data_hash)
            block_hash = blocks.block_header_hash(row.number, previous, data_hash)
            signature = node.sign_block(header) if node is not None else row.orderer_signature
            rows.append((previous, data_hash, block_hash, signature, row.number))
            previous = block_hash
    finally:
        store.close()
    db = sqlite3.connect(ledger_path(workdir))
    try:
        db.executemany("UPDATE blocks SET previous_hash = ?, data_hash = ?, hash = ?, orderer_signature = ? "
                       "WHERE number = ?", rows)
        db.commit()
    finally:
        db.close()


def ledger_operator(workdir: Path) -> LedgerNode:
    """The ledger node's keys: what a malicious operator of the ledger service holds."""
    return Consortium.open(workdir).ledger_node()


def rewrite_block(workdir: Path, number: int, writes: dict[str, bytes], resign: bool = True,
                  update_state: bool = True, node: LedgerNode | None = None) -> None:
    """Change what block ``number``'s transaction wrote and store it back, hashes recomputed.

    ``resign``: sign the new envelope with the creator's own key (else keep the old
    signature, which then no longer matches). ``update_state``: put the new values
    in the world-state table too, so state and blocks agree. ``node``: the attacker
    also holds the ledger node's keys (a malicious ledger operator): it endorses the
    new write set and re-signs every block from there.
    """
    consortium = Consortium.open(workdir)
    store = LedgerStore(ledger_path(workdir))
    try:
        row = store.block(number)
        parsed = blocks.parse_envelope(row.data, row.proposal_signature)
        rwset = parsed.rwset
        rwset.writes.update(writes)
        creator = Identity.deserialize(parsed.proposal.creator).msp_id
        signer = load_signing_identity(workdir / consortium.org(creator).msp_dir, creator)
        response = proposal_response_pb2.Response(status=parsed.status, message=parsed.message,
                                                   payload=parsed.result)
        # The attacker is an organization: it has its own key, not the ledger node's, so the
        # node's old endorsement is carried over (it no longer matches the new write set).
        old = proposal_response_pb2.Endorsement(endorser=parsed.endorsements[0][0],
                                                signature=parsed.endorsements[0][1])
        keep_endorsement = type("KeepEndorsement", (), {"endorse": staticmethod(lambda payload: old)})()
        envelope = blocks.assemble_envelope(parsed.proposal, rwset, response, parsed.event, signer,
                                            node or keep_endorsement)
        if not resign:
            forged = common_pb2.Envelope.FromString(envelope)
            forged.signature = parsed.envelope_signature
            envelope = forged.SerializeToString()
    finally:
        store.close()
    store_envelopes(workdir, number, {number: envelope}, node)
    if update_state:
        for key, value in writes.items():
            set_state(workdir, key, value)


def store_envelopes(workdir: Path, start: int, changed: dict[int, bytes], node: LedgerNode | None = None) -> None:
    """Put changed envelopes into the file as the ledger stores them and recompute the hashes.

    A block's stored form is compressed against the block before it, so every block
    from ``start`` on is re-packed in order, as a careful attacker would.
    """
    store = LedgerStore(ledger_path(workdir))
    try:
        rows = [(row.number, row.tx_id, changed.get(row.number, row.data)) for row in store.iter_blocks(start)]
        for number, tx_id, envelope in rows:
            store.forget_cache()
            with store.write():  # pack reads the certificate, dictionary and previous block
                stored, certificate = store.pack(number, tx_id, envelope)
            sql(workdir, "UPDATE blocks SET data = ?, creator = ? WHERE number = ?", stored, certificate, number)
    finally:
        store.close()
    rehash_from(workdir, start, node)


def corrupt_file(path: Path) -> None:
    """Flip the last byte of a file (a stored model or update)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
