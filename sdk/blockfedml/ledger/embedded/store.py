"""SQLite storage of the embedded ledger: world state, blocks, transaction IDs.

Only SQL and the storage encoding live here; what is valid is decided in
``ledger.py``.

Why SQLite in WAL mode: readers (simulations, queries, other processes) never
block the single writer and never see a half-written block; a crash at any
point leaves either the whole block (block row + its state writes) or none of
it, because both are one SQLite transaction.

Durability: ``synchronous=FULL`` is the default, deliberately. With it, a
transaction reported committed is on disk when ``submit`` returns, even across
a power loss, which is what a ledger promises (Fabric's peer also syncs every
block to disk before it reports the commit). ``NORMAL`` in WAL mode is about
9x faster for bare commits but may lose the last commits on power loss (never
corrupting the file, and never losing them on a mere process crash): a member
could then have acted on a transaction the ledger no longer holds. The
signature checks and the chaincode cost more than the fsync anyway, so with
FULL a signed, validated and compactly stored transaction still commits at
about 1,150-1,200 tx/s from one writer and about 1,100 tx/s from four
processes on the 2-core development machine, against about 1,600 tx/s with
NORMAL: a 25% price for not losing acknowledged transactions
(``bench/bench_ledger.py``; storing compactly costs about 60-90 us a commit).
``synchronous="NORMAL"`` can be chosen at ``open``/``create`` for throwaway
ledgers (tests, simulations) where that trade is acceptable.

Several processes may share one file: every commit is ``BEGIN IMMEDIATE``
(take the write lock before reading the chain tip, so two processes can never
append the same block number) with a busy timeout so that writers queue
instead of failing.

Storage format (schema version 2; docs/ledger-storage.md). A transaction
block's ``data`` column does not hold the envelope but its compact form
(``codec.py``): a layout byte and a raw DEFLATE stream of the envelope without
its creator and proposal hash (the envelope signature as raw ``r || s``). The
creator (MSP ID and certificate) is stored once in ``certificates`` and the
block's ``creator`` column refers to it; the compression dictionaries trained
at blocks 64, 256, 1024, ... are in ``dictionaries``; the preset dictionary of
block n also holds the body of block n - 1 (except every 16th block) and the
``tx_id`` of the 16 blocks before it and its own. So rebuilding a block reads
its row, its certificate, its dictionary and up to 15 rows before it.

``BlockRow.data`` as this class returns it is always the envelope exactly as
signed, and the data hash (``blocks.transaction_data_hash``) is over that
envelope: block hashes are what they would be if the envelope were stored
whole, and editing any part of the stored form (a row's ``data``, ``tx_id``
or ``creator``, a certificate, a dictionary) changes the rebuilt bytes and is
found by ``verify``. A row that cannot be rebuilt is returned with
``data = b""`` and the reason in ``defect``. ``proposal_signature`` is stored
as is (DER); the genesis block's ``data`` is the channel configuration's JSON.
Tamper tests edit a transaction as a careful attacker would with
``rewrite_transaction(n, envelope)`` (which also re-packs the blocks that
refer to it) and re-hash the chain from the ``block(n).data`` envelopes.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from blockfedml.errors import BlockFedMLError, IntegrityError, LedgerError
from blockfedml.ledger.embedded import codec

SCHEMA_VERSION = "3"
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
DEFAULT_SYNCHRONOUS = "FULL"
DEFAULT_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE state (
    namespace TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    value     BLOB    NOT NULL,
    block     INTEGER NOT NULL,   -- version: (block, txnum) of the last valid write
    txnum     INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE certificates (
    id      INTEGER PRIMARY KEY,
    digest  BLOB    NOT NULL UNIQUE,       -- SHA-256 of creator
    creator BLOB    NOT NULL               -- msp.SerializedIdentity: MSP ID and PEM certificate
);
CREATE TABLE dictionaries (
    block   INTEGER PRIMARY KEY,           -- first block compressed with it: 64, 256, 1024, ...
    data    BLOB    NOT NULL               -- the preset dictionary, zlib-compressed
);
CREATE TABLE blocks (
    number             INTEGER PRIMARY KEY,
    previous_hash      BLOB    NOT NULL,
    data_hash          BLOB    NOT NULL,
    hash               BLOB    NOT NULL,
    kind               TEXT    NOT NULL,   -- 'config' (genesis) or 'transaction'
    tx_id              TEXT    UNIQUE,     -- replay protection and look-up
    creator_msp        TEXT,
    chaincode          TEXT,
    function           TEXT,
    validation_code    INTEGER NOT NULL,   -- peer.TxValidationCode
    data               BLOB    NOT NULL,   -- config JSON, or the compact envelope (codec.py)
    proposal_signature BLOB,               -- the creator's signature on the proposal (DER)
    creator            INTEGER,            -- certificates.id left out of data (NULL: none)
    orderer_signature  BLOB                -- the ledger node's orderer signature on the header (r || s)
);
"""


@dataclass(frozen=True)
class BlockRow:
    """One block: its columns, with ``data`` the config JSON or the envelope as
    signed (rebuilt from its stored form; see the module docstring)."""

    number: int
    previous_hash: bytes
    data_hash: bytes
    hash: bytes
    kind: str
    tx_id: str | None
    creator_msp: str | None
    chaincode: str | None
    function: str | None
    validation_code: int
    data: bytes
    proposal_signature: bytes | None
    stored_bytes: int = 0          # len(stored data) + len(proposal_signature) + len(orderer_signature)
    defect: str | None = None      # why ``data`` could not be rebuilt (then it is b"")
    orderer_signature: bytes | None = None  # over ``blocks.block_header_bytes`` (None: genesis)


@dataclass(frozen=True)
class StoredBytes:
    """What the ledger's records occupy, before SQLite's own overhead."""

    blocks: int           # stored data and proposal signatures of every block
    certificates: int     # each distinct creator, once
    dictionaries: int     # compression dictionaries, compressed

    @property
    def total(self) -> int:
        return self.blocks + self.certificates + self.dictionaries


# What the compact form of block n needs of the blocks before it: recent tx IDs
# (oldest first) and the body of block n - 1 (``codec.preset``).
_Context = tuple[tuple[str, ...], bytes]

_BLOCK_COLUMNS = ("number, previous_hash, data_hash, hash, kind, tx_id, creator_msp, chaincode, "
                  "function, validation_code, data, proposal_signature, creator, orderer_signature")


class LedgerStore:
    """One connection to a ledger file. Not thread-safe: the ledger locks around it."""

    def __init__(self, path: Path, *, synchronous: str = DEFAULT_SYNCHRONOUS,
                 busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise LedgerError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                       check_same_thread=False, timeout=busy_timeout_s)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            journal = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if journal.lower() != "wal":
                raise LedgerError(f"{self.path}: could not switch to WAL mode (got {journal})")
            self._db.execute(f"PRAGMA synchronous = {mode}")
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot open ledger database: {exc}") from exc
        self.synchronous = mode
        self._dictionaries: dict[int, bytes] = {}  # immutable rows, cached (verify clears)
        self._bodies: dict[bytes, bytes] = {}      # block hash -> inflated body (verify clears)
        self._tail: tuple[int, bytes, _Context] | None = None  # the last block this process wrote
        self._prefetched: int | None = None  # data_version at the last prefetch
        self._endorser: bytes | None = None  # the pinned endorser, read from genesis once

    # -- set-up ---------------------------------------------------------------

    def initialize(self, genesis: BlockRow, meta: dict[str, str]) -> None:
        """Create the schema and the genesis block in one transaction."""
        with self.write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                                 [("schema_version", SCHEMA_VERSION), *meta.items()])
            self.insert_block(genesis)

    def meta(self) -> dict[str, str]:
        """The ``meta`` table; ``LedgerError`` unless this is a ledger in this code's format."""
        try:
            meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path} is not a BlockFedML ledger: {exc}") from exc
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise LedgerError(f"{self.path} is a ledger in storage format {version}; this version of "
                              f"BlockFedML reads format {SCHEMA_VERSION} only: create a new ledger")
        return meta

    def close(self) -> None:
        self._db.close()

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every read inside sees one committed state."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("ROLLBACK")

    @contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction holding the file's write lock from the start."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"{self.path}: could not take the write lock: {exc}") from exc
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    # -- world state ----------------------------------------------------------

    def get_state(self, namespace: str, key: str) -> tuple[bytes, int, int] | None:
        row = self._db.execute("SELECT value, block, txnum FROM state WHERE namespace = ? AND key = ?",
                               (namespace, key)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def version(self, namespace: str, key: str) -> tuple[int, int] | None:
        row = self._db.execute("SELECT block, txnum FROM state WHERE namespace = ? AND key = ?",
                               (namespace, key)).fetchone()
        return None if row is None else (row[0], row[1])

    def range_state(self, namespace: str, start: str, end: str) -> list[tuple[str, bytes, int, int]]:
        """Keys in ``[start, end)`` in key order; an empty ``end`` is unbounded."""
        if end:
            sql = ("SELECT key, value, block, txnum FROM state WHERE namespace = ? AND key >= ? "
                   "AND key < ? ORDER BY key")
            args: tuple[str, ...] = (namespace, start, end)
        else:
            sql = "SELECT key, value, block, txnum FROM state WHERE namespace = ? AND key >= ? ORDER BY key"
            args = (namespace, start)
        return self._db.execute(sql, args).fetchall()

    def put_state(self, namespace: str, key: str, value: bytes, block: int, txnum: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO state (namespace, key, value, block, txnum) "
                         "VALUES (?, ?, ?, ?, ?)", (namespace, key, value, block, txnum))

    def delete_state(self, namespace: str, key: str) -> None:
        self._db.execute("DELETE FROM state WHERE namespace = ? AND key = ?", (namespace, key))

    def iter_state(self) -> Iterator[tuple[str, str, bytes, int, int]]:
        yield from self._db.execute(
            "SELECT namespace, key, value, block, txnum FROM state ORDER BY namespace, key")

    # -- blocks ---------------------------------------------------------------

    def tx_exists(self, tx_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM blocks WHERE tx_id = ?", (tx_id,)).fetchone() is not None

    def tip(self) -> tuple[int, bytes]:
        """Number and hash of the last block."""
        row = self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1").fetchone()
        if row is None:
            raise LedgerError(f"{self.path} has no genesis block")
        return row[0], row[1]

    def height(self) -> int:
        row = self._db.execute("SELECT MAX(number) FROM blocks").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def insert_block(self, block: BlockRow) -> None:
        """Append ``block``; a transaction's envelope is stored in compact form."""
        data, creator = block.data, None
        if block.kind == "transaction":
            # What this process knows of the block it wrote last is reused only on
            # top of that very block (the tip's hash, read in this write, says so).
            tail = self._tail
            known = tail[2] if tail is not None and tail[:2] == (block.number - 1, block.previous_hash) \
                else None
            data, creator, context = self._pack(block.number, block.tx_id or "", block.data, known)
            self._tail = (block.number, block.hash, context)
            self._remember(block.hash, context[1])  # a body depends on its envelope only
        self._db.execute(
            f"INSERT INTO blocks ({_BLOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (block.number, block.previous_hash, block.data_hash, block.hash, block.kind, block.tx_id,
             block.creator_msp, block.chaincode, block.function, block.validation_code, data,
             block.proposal_signature, creator, block.orderer_signature))

    def prefetch(self) -> None:
        """Inflate the tip's body into the cache, so that a commit after other
        processes' blocks does not do it while holding the write lock. Called
        outside ``write()``; blocks are append-only, so what it reads stays true."""
        version = self.data_version()  # changes only when another connection commits
        if version == self._prefetched:
            return
        self._prefetched = version
        number, _ = self.tip()
        if number >= 1:
            try:
                self._body(number)
            except IntegrityError:
                pass  # the commit will find and report it

    def pack(self, number: int, tx_id: str, envelope: bytes) -> tuple[bytes, int | None]:
        """The stored form of block ``number``'s envelope and the id of its certificate
        (None when stored whole), adding the certificate (and, at a dictionary block,
        the dictionary) if new. Call inside ``write()``; for tools that edit a ledger."""
        data, creator, _ = self._pack(number, tx_id, envelope, None)
        return data, creator

    def rewrite_transaction(self, number: int, envelope: bytes) -> None:
        """Store another envelope for block ``number``, hashes left as they are, and
        re-pack the blocks after it whose stored form refers to its body. The
        ledger never calls this: it is how tamper tests edit a transaction as an
        attacker with write access to the file would."""
        with self.write():
            edits = [(self._known_row(number), envelope)]
            n, height = number + 1, self.height()
            while n < height and codec.chained(n):
                row = self._known_row(n)
                edits.append((row, row.data))
                n += 1
            for row, new in edits:  # in order: each is packed against the one before
                data, creator = self.pack(row.number, row.tx_id or "", new)
                self._db.execute("UPDATE blocks SET data = ?, creator = ? WHERE number = ?",
                                 (data, creator, row.number))
                self.forget_cache()  # the cached bodies are keyed by the (unchanged) hash
            self._tail = None

    def _known_row(self, number: int) -> BlockRow:
        row = self.block(number)
        if row is None or row.kind != "transaction" or row.defect is not None:
            raise IntegrityError(f"block {number} is not a transaction that can be rebuilt")
        return row

    def _pack(self, number: int, tx_id: str, envelope: bytes,
              known: _Context | None) -> tuple[bytes, int | None, _Context]:
        """``pack``, given what is known of block ``number - 1`` (its recent tx IDs and
        body); returns the same for block ``number``."""
        if known is None:
            known = (self._recent_tx_ids(number),
                     self._body(number - 1) if codec.chained(number) else b"")
        recent, previous = known
        zdict = codec.preset(self._dictionary(number, train=True),
                             previous if codec.chained(number) else b"", recent, tx_id)
        stored, creator, body = codec.pack(envelope, zdict, self.endorser())
        context = ((*recent, tx_id)[-codec.RECENT_TX_IDS:], body)
        if creator is None:
            return stored, None, context
        digest = hashlib.sha256(creator).digest()
        row = self._db.execute("SELECT id FROM certificates WHERE digest = ?", (digest,)).fetchone()
        if row is not None:
            return stored, row[0], context
        cursor = self._db.execute("INSERT INTO certificates (digest, creator) VALUES (?, ?)",
                                  (digest, creator))
        return stored, cursor.lastrowid, context

    def _recent_tx_ids(self, number: int) -> tuple[str, ...]:
        """The tx IDs of the ``codec.RECENT_TX_IDS`` blocks before ``number``, oldest first."""
        rows = self._db.execute(
            "SELECT tx_id FROM blocks WHERE number < ? AND tx_id IS NOT NULL ORDER BY number DESC "
            "LIMIT ?", (number, codec.RECENT_TX_IDS)).fetchall()
        return tuple(r[0] for r in reversed(rows))

    def _preset(self, number: int, tx_id: str) -> bytes:
        """Block ``number``'s preset dictionary (``codec.preset``)."""
        previous = self._body(number - 1) if codec.chained(number) else b""
        return codec.preset(self._dictionary(number), previous, self._recent_tx_ids(number), tx_id)

    def _body(self, number: int) -> bytes:
        """The inflated body (skeleton, or whole envelope) of transaction block ``number``.
        Cached by block hash: reading blocks in order inflates each one once."""
        row = self._db.execute("SELECT hash, tx_id, data FROM blocks WHERE number = ? AND "
                               "kind = 'transaction'", (number,)).fetchone()
        if row is None:
            raise IntegrityError(f"block {number} is missing or holds no transaction")
        body = self._bodies.get(row[0])
        if body is None:
            body = codec.inflate(row[2], self._preset(number, row[1]))[1]
            self._remember(row[0], body)
        return body

    def _remember(self, block_hash: bytes, body: bytes) -> None:
        self._bodies[block_hash] = body
        if len(self._bodies) > 64:
            del self._bodies[next(iter(self._bodies))]

    def _dictionary(self, number: int, *, train: bool = False) -> bytes:
        block = codec.dictionary_block(number)
        if block is None:
            return b""
        if block in self._dictionaries:
            return self._dictionaries[block]
        row = self._db.execute("SELECT data FROM dictionaries WHERE block = ?", (block,)).fetchone()
        if row is None:
            if not (train and number == block):
                raise IntegrityError(f"dictionary {block}, needed by block {number}, is missing")
            dictionary = codec.train_dictionary(self._body(n) for n in range(block - 1, 0, -1))
            self._db.execute("INSERT INTO dictionaries (block, data) VALUES (?, ?)",
                             (block, zlib.compress(dictionary, 9)))
            return dictionary  # cached once committed and read back
        try:
            dictionary = zlib.decompress(row[0])
        except zlib.error as exc:
            raise IntegrityError(f"dictionary {block} does not decompress: {exc}") from exc
        self._dictionaries[block] = dictionary
        return dictionary

    def forget_cache(self) -> None:
        """Drop cached dictionaries and bodies, so the next reads trust only the file (``verify``)."""
        self._dictionaries.clear()
        self._bodies.clear()
        self._endorser = None

    def endorser(self) -> bytes:
        """The ledger node's endorser identity pinned in the genesis block (left out of stored
        endorsements); ``b""`` when the genesis block is unreadable (rebuilding then fails)."""
        if self._endorser is None:
            from blockfedml.ledger.embedded.blocks import decode_node
            row = self._db.execute("SELECT data FROM blocks WHERE number = 0").fetchone()
            try:
                self._endorser = decode_node(row[0]).endorser if row else b""
            except BlockFedMLError:
                self._endorser = b""
        return self._endorser

    def _row(self, row: tuple) -> BlockRow:
        """A ``blocks`` row with its envelope rebuilt."""
        *columns, stored, signature, creator_id, orderer_signature = row
        stored_bytes = len(stored) + len(signature or b"") + len(orderer_signature or b"")
        if columns[4] != "transaction":
            return BlockRow(*columns, stored, signature, stored_bytes, orderer_signature=orderer_signature)
        number, block_hash, tx_id = columns[0], columns[3], columns[5] or ""
        try:
            creator = None
            if creator_id is not None:
                found = self._db.execute("SELECT creator FROM certificates WHERE id = ?",
                                         (creator_id,)).fetchone()
                if found is None:
                    raise IntegrityError(f"certificate {creator_id} is missing")
                creator = found[0]
            layout, body = codec.inflate(stored, self._preset(number, tx_id))
            self._remember(block_hash, body)
            envelope = codec.dress_layout(layout, body, creator, self.endorser())
        except BlockFedMLError as exc:
            return BlockRow(*columns, b"", signature, stored_bytes,
                            f"the stored transaction cannot be rebuilt: {exc}", orderer_signature)
        return BlockRow(*columns, envelope, signature, stored_bytes, orderer_signature=orderer_signature)

    def block(self, number: int) -> BlockRow | None:
        row = self._db.execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE number = ?",
                               (number,)).fetchone()
        return None if row is None else self._row(row)

    def block_by_tx_id(self, tx_id: str) -> BlockRow | None:
        row = self._db.execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE tx_id = ?", (tx_id,)).fetchone()
        return None if row is None else self._row(row)

    def locate(self, tx_id: str) -> tuple[int, int] | None:
        """(block number, validation code) of a transaction, without rebuilding it."""
        row = self._db.execute("SELECT number, validation_code FROM blocks WHERE tx_id = ?",
                               (tx_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def iter_blocks(self, start: int = 0) -> Iterator[BlockRow]:
        """Blocks in order, read in pages so a long chain is never all in memory."""
        number = start
        while True:
            rows = self._db.execute(
                f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE number >= ? ORDER BY number LIMIT 256",
                (number,)).fetchall()
            if not rows:
                return
            for row in rows:
                yield self._row(row)
            number = rows[-1][0] + 1

    def iter_certificates(self) -> Iterator[tuple[int, bytes, bytes]]:
        """(id, digest, creator) of every stored certificate."""
        yield from self._db.execute("SELECT id, digest, creator FROM certificates ORDER BY id")

    def stored_bytes(self) -> StoredBytes:
        """Bytes of the stored records (see ``StoredBytes``)."""
        one = lambda sql: self._db.execute(sql).fetchone()[0] or 0  # noqa: E731
        return StoredBytes(
            blocks=one("SELECT SUM(LENGTH(data) + IFNULL(LENGTH(proposal_signature), 0) "
                       "+ IFNULL(LENGTH(orderer_signature), 0)) FROM blocks"),
            certificates=one("SELECT SUM(LENGTH(creator)) FROM certificates"),
            dictionaries=one("SELECT SUM(LENGTH(data)) FROM dictionaries"))

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap change detection)."""
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def size_bytes(self) -> int:
        """Bytes of the database file and its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total
