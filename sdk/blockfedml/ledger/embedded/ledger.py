"""The embedded ledger: Fabric's transaction flow on one machine, in one file.

A transaction goes through the steps it goes through on Fabric, so that code
developed here behaves the same on a real network:

1. the submitter signs a proposal (``ledger/proposal.py``);
2. the chaincode is simulated in-process against a snapshot of committed
   state (``stub.py``), producing a read/write set; a refusal raises the
   contract's error and writes nothing;
3. the ledger node's peer endorses the result (signs the response payload,
   ``node.py``) and the submitter signs the transaction envelope (``blocks.py``);
4. commit, in one SQLite write transaction: signatures, the node's endorsement
   and the creator's certificate are checked against the channel's genesis
   configuration, the transaction ID must be new, and every version read must
   still be current (MVCC). A valid transaction's writes are applied; a
   conflicting one is still recorded in its block, marked
   ``MVCC_READ_CONFLICT``, and changes nothing. The node's orderer signs every
   block.

Only a ledger object that holds the node's keys (``LedgerNode``) endorses and
commits: the ledger service (``service.py``), or one process that holds every
identity anyway (the demo, tests). Opened without them, a ledger is read-only.

The chaincode's coroutines run on one persistent event loop per ledger object:
creating a loop per transaction would cost more than the transaction. A ledger
object is safe to share between threads (calls are serialized); processes
share the file, each with its own ``EmbeddedLedger`` (open it after a fork,
never carry an open one across: SQLite connections must not cross ``fork``).
``submit``/``evaluate`` are synchronous; from async code prefer
``asyncio.to_thread`` so the caller's loop keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from cryptography import x509
from fabric_protos.common import common_pb2
from fabric_protos.peer import proposal_response_pb2

from blockfedml.errors import (
    BlockFedMLError,
    ChaincodeError,
    ConflictError,
    CryptoError,
    IntegrityError,
    InvalidInputError,
    LedgerError,
    NotAuthorizedError,
    NotFoundError,
    from_chaincode_message,
)
from blockfedml.identity.signing import Identity, SigningIdentity, load_certificate, verify_issued_by, verify_signature
from blockfedml.ledger.base import DEFAULT_CHAINCODE
from blockfedml.ledger.embedded import blocks
from blockfedml.ledger.embedded.blocks import ParsedTransaction
from blockfedml.ledger.embedded.node import LedgerNode, NodeCertificates
from blockfedml.ledger.embedded.store import DEFAULT_SYNCHRONOUS, BlockRow, LedgerStore, StoredBytes
from blockfedml.ledger.embedded.stub import EmbeddedStub, RWSet
from blockfedml.ledger.proposal import Proposal

if TYPE_CHECKING:
    from blockfedml.ledger.embedded.gateway import EmbeddedGateway
    from blockfedml.ledger.embedded.verify import VerifyReport


@dataclass(frozen=True)
class CommitStatus:
    """Where and how a transaction was committed."""

    tx_id: str
    block_number: int
    validation_code: int

    @property
    def valid(self) -> bool:
        return self.validation_code == blocks.VALID

    @property
    def code_name(self) -> str:
        return blocks.validation_code_name(self.validation_code)


@dataclass(frozen=True)
class Endorsement:
    """A simulated, submitter-signed transaction, ready to be committed."""

    tx_id: str
    envelope: bytes
    proposal_signature: bytes
    result: bytes
    endorsed: ParsedTransaction | None = None  # what this node endorsed (see ``endorse_payload``)


class EmbeddedLedger:
    """A Fabric-like ledger in one SQLite file (see the module docstring)."""

    def __init__(self, store: LedgerStore, chaincodes: Mapping[str, Any] | None,
                 node: LedgerNode | None = None) -> None:
        self._store = store
        self._lock = threading.RLock()
        self._chaincodes: dict[str, Any] = dict(chaincodes or {})
        self._loop = asyncio.new_event_loop()
        self._helper: ThreadPoolExecutor | None = None
        self._members: dict[bytes, Identity] = {}  # creator bytes already checked
        genesis = store.block(0)
        if genesis is None or genesis.kind != "config":
            raise IntegrityError(f"{store.path}: block 0 is not a channel configuration")
        self._channel, self._organizations = blocks.decode_config(genesis.data)
        self._node_certificates = blocks.decode_node(genesis.data)
        if node is not None and node.certificates() != self._node_certificates:
            raise NotAuthorizedError(f"{store.path}: these keys are not the ledger node its genesis block names")
        self._node = node
        self._closed = False

    # -- lifecycle --------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], channel: str, organizations: list[tuple[str, bytes]],
               *, node: LedgerNode, chaincodes: Mapping[str, Any] | None = None,
               synchronous: str = DEFAULT_SYNCHRONOUS) -> "EmbeddedLedger":
        """Create a ledger whose genesis block names the channel, its organizations and
        the ledger ``node`` (whose keys alone may write it).

        ``ConflictError`` if ``path`` exists: a ledger is never overwritten.
        """
        if not channel:
            raise InvalidInputError("a ledger needs a channel name")
        if not organizations:
            raise InvalidInputError("a ledger needs at least one organization")
        seen: set[str] = set()
        for msp_id, ca_pem in organizations:
            if not msp_id or msp_id in seen:
                raise InvalidInputError(f"organization MSP IDs must be non-empty and distinct ({msp_id!r})")
            seen.add(msp_id)
            try:
                cert = load_certificate(ca_pem)
                is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except Exception as exc:
                raise InvalidInputError(f"CA certificate of {msp_id} is unusable: {exc}") from exc
            if not is_ca:
                raise InvalidInputError(f"the certificate given for {msp_id} is not a CA certificate")
        if node.peer.msp_id in seen:
            raise InvalidInputError(f"the ledger node's organization {node.peer.msp_id} cannot be a member")
        node.certificates().check()
        path = Path(path)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise ConflictError(f"{path} already exists; open it, or choose another path") from None
        except OSError as exc:
            raise LedgerError(f"cannot create {path}: {exc}") from exc
        os.close(fd)
        config = blocks.encode_config(channel, organizations, node.certificates())
        data_hash = blocks.config_data_hash(config)
        genesis = BlockRow(0, blocks.GENESIS_PREVIOUS_HASH, data_hash,
                           blocks.block_header_hash(0, blocks.GENESIS_PREVIOUS_HASH, data_hash),
                           "config", None, None, None, None, blocks.VALID, config, None)
        try:
            store = LedgerStore(path, synchronous=synchronous)
            store.initialize(genesis, {"channel": channel})
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return cls(store, chaincodes, node)

    @classmethod
    def open(cls, path: str | os.PathLike[str], chaincodes: Mapping[str, Any] | None = None, *,
             node: LedgerNode | None = None, synchronous: str = DEFAULT_SYNCHRONOUS) -> "EmbeddedLedger":
        """Open an existing ledger. ``chaincodes`` maps chaincode names to chaincode
        objects (``ContractChaincode``); ``blockfedml`` defaults to the federation contract.
        Without the ledger ``node``'s keys it is read-only (queries, blocks, verify)."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"no ledger at {path}; create one first")
        store = LedgerStore(path, synchronous=synchronous)
        try:
            store.meta()
            return cls(store, chaincodes, node)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._helper is not None:
                self._helper.shutdown()
            self._loop.close()
            self._store.close()

    def __enter__(self) -> "EmbeddedLedger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts ------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def organizations(self) -> dict[str, bytes]:
        """MSP ID -> CA certificate (PEM), from the genesis block."""
        return dict(self._organizations)

    @property
    def node_certificates(self) -> NodeCertificates:
        """The ledger node pinned in the genesis block."""
        return self._node_certificates

    @property
    def writable(self) -> bool:
        """True when this object holds the node's keys (it may endorse and commit)."""
        return self._node is not None

    @property
    def synchronous(self) -> str:
        return self._store.synchronous

    def connect(self, identity: SigningIdentity) -> "EmbeddedGateway":
        """A Gateway through which ``identity`` signs everything it sends."""
        from blockfedml.ledger.embedded.gateway import EmbeddedGateway
        return EmbeddedGateway(self, identity)

    def height(self) -> int:
        """Number of blocks, genesis included."""
        with self._lock:
            return self._store.height()

    def block(self, number: int) -> dict[str, Any]:
        """One block, decoded; ``NotFoundError`` beyond the tip, ``IntegrityError``
        if its stored transaction cannot be rebuilt."""
        with self._lock:
            row = self._store.block(number)
        if row is None:
            raise NotFoundError(f"block {number} does not exist (height {self.height()})")
        return _block_dict(row)

    def block_row(self, number: int) -> BlockRow:
        """One block as stored (envelope rebuilt, signatures as they are); ``NotFoundError`` beyond the tip."""
        with self._lock:
            row = self._store.block(number)
        if row is None:
            raise NotFoundError(f"block {number} does not exist (height {self.height()})")
        return row

    def iter_blocks(self, start: int = 0) -> Iterator[dict[str, Any]]:
        """Every block from ``start`` on, decoded, in order."""
        number = start
        while True:
            with self._lock:
                rows = [row for _, row in zip(range(256), self._store.iter_blocks(number))]
            if not rows:
                return
            for row in rows:
                yield _block_dict(row)
            number = rows[-1].number + 1

    def transaction_status(self, tx_id: str) -> CommitStatus:
        """Commit status of a transaction; ``NotFoundError`` if it is not on the ledger."""
        with self._lock:
            found = self._store.locate(tx_id)
        if found is None:
            raise NotFoundError(f"transaction {tx_id} is not on the ledger")
        return CommitStatus(tx_id, *found)

    def wait_for_height(self, height: int, timeout: float = 30.0) -> int:
        """Block until the ledger (written by any process) reaches ``height``.
        ``LedgerError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay, seen = 0.001, None
        while True:
            with self._lock:
                version = self._store.data_version()
                if version != seen:
                    seen = version
                    current = self._store.height()
                    if current >= height:
                        return current
            if time.monotonic() >= deadline:
                raise LedgerError(f"ledger height is {current}, still below {height} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def size_bytes(self) -> int:
        """Bytes of the ledger file and its write-ahead log on disk."""
        return self._store.size_bytes()

    def stored_bytes(self) -> StoredBytes:
        """Bytes of the stored blocks, certificates and dictionaries (the ledger's
        logical size, without SQLite's pages, indexes and world state)."""
        with self._lock:
            return self._store.stored_bytes()

    def verify(self) -> "VerifyReport":
        """Re-check the whole ledger; see ``verify.py``."""
        from blockfedml.ledger.embedded.verify import verify_ledger
        with self._lock, self._store.snapshot():
            return verify_ledger(self, self._store)

    # -- the transaction flow ---------------------------------------------------

    def chaincode(self, name: str) -> Any:
        """The chaincode object installed under ``name``."""
        if name not in self._chaincodes:
            if name != DEFAULT_CHAINCODE:
                raise NotFoundError(f"chaincode {name} is not installed on this ledger")
            try:
                from blockfedml_chaincode.shim import new_chaincode
            except ImportError as exc:
                raise LedgerError(f"the federation chaincode cannot be loaded: {exc}") from exc
            self._chaincodes[name] = new_chaincode()
        return self._chaincodes[name]

    def simulate(self, proposal: Proposal) -> tuple[proposal_response_pb2.Response, EmbeddedStub]:
        """Run the chaincode for ``proposal`` on committed state; write nothing."""
        if proposal.channel != self._channel:
            raise NotFoundError(f"channel {proposal.channel} does not exist on this ledger "
                                f"(its channel is {self._channel})")
        problem = self.creator_problem(proposal.creator)
        if problem is not None:
            raise problem
        chaincode = self.chaincode(proposal.chaincode)
        namespace = proposal.chaincode
        with self._lock:
            self._check_open()
            store = self._store
            stub = EmbeddedStub(proposal, lambda key: store.get_state(namespace, key),
                                lambda start, end: store.range_state(namespace, start, end))
            with store.snapshot():
                try:
                    response = self._run(chaincode.invoke(stub))
                except BlockFedMLError:
                    raise
                except Exception as exc:
                    raise ChaincodeError(f"chaincode {namespace} failed on {proposal.function}: "
                                         f"{type(exc).__name__}: {exc}") from exc
        return response, stub

    def _run(self, coroutine: Any) -> Any:
        """Run a chaincode coroutine on this ledger's own event loop. Called from
        inside a running loop (async code), it runs that one call on a helper
        thread instead of failing, blocking the caller like any synchronous call."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coroutine)
        if self._helper is None:
            self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-ledger")
        return self._helper.submit(self._loop.run_until_complete, coroutine).result()

    def endorse(self, proposal: Proposal, signer: SigningIdentity) -> Endorsement:
        """Simulate and, if the chaincode agrees, return the node-endorsed transaction
        signed by ``signer``. A refusal raises the contract's error (``from_chaincode_message``)."""
        payload, result, endorsed = self.endorse_payload(proposal)
        return Endorsement(proposal.tx_id, blocks.sign_envelope(payload, signer), proposal.signature, result,
                           endorsed)

    def endorse_payload(self, proposal: Proposal) -> tuple[bytes, bytes, ParsedTransaction]:
        """What a Gateway's Endorse returns: the node-endorsed transaction payload (for the
        submitter to sign) and the contract's result; and the transaction as this node
        endorsed it, already decoded (its envelope signature still empty), which lets
        ``commit_batch`` recognize this very payload without decoding or verifying again
        what the node computed and signed itself. The proposal's signature is checked
        here, as a Fabric peer checks it before simulating."""
        node = self._require_node("endorse")
        identity_problem = self.creator_problem(proposal.creator)
        if identity_problem is not None:
            raise identity_problem
        if not verify_signature(self._identity(proposal.creator).certificate, proposal.proposal_bytes,
                                proposal.signature):
            raise IntegrityError(f"proposal {proposal.tx_id}: its signature does not verify against its creator")
        response, stub = self.simulate(proposal)
        if not 200 <= response.status < 400:
            raise from_chaincode_message(response.message or f"chaincode returned status {response.status}")
        response_bytes, endorsement = blocks.endorse_action(proposal, stub.rwset, response, stub.event, node)
        payload = blocks.transaction_payload(proposal, response_bytes, endorsement)
        endorsed = ParsedTransaction(
            proposal=proposal, payload=payload, envelope_signature=b"", rwset=stub.rwset,
            status=response.status, message=response.message, result=bytes(response.payload), event=stub.event,
            response_payload=response_bytes,
            endorsements=((bytes(endorsement.endorser), bytes(endorsement.signature)),))
        return payload, bytes(response.payload), endorsed

    def _require_node(self, action: str) -> LedgerNode:
        if self._node is None:
            raise NotAuthorizedError(
                f"this process cannot {action} on {self._store.path}: it does not hold the ledger node's "
                "keys, so it may read the ledger but not write it; send transactions through the ledger "
                "service (`blockfedml ledger serve`)")
        return self._node

    def evaluate(self, proposal: Proposal) -> bytes:
        """Simulate a query and return its result; nothing is committed."""
        response, _ = self.simulate(proposal)
        if not 200 <= response.status < 400:
            raise from_chaincode_message(response.message or f"chaincode returned status {response.status}")
        return bytes(response.payload)

    def commit(self, envelope: bytes, proposal_signature: bytes,
               endorsed: ParsedTransaction | None = None) -> CommitStatus:
        """Validate and append a transaction (see the module docstring).

        Refused before any write (``IntegrityError`` bad signature or format,
        ``NotAuthorizedError`` unknown organization or foreign certificate,
        ``ConflictError`` tx_id already on the ledger). An MVCC conflict is
        recorded as an invalid block, then raised as ``ConflictError``.
        ``endorsed``: see ``commit_batch``.
        """
        [outcome] = self.commit_batch([(envelope, proposal_signature, endorsed)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def commit_batch(self, items: list[tuple[bytes, bytes, ParsedTransaction | None]]
                     ) -> list[CommitStatus | BlockFedMLError]:
        """Validate and append several transactions, one block each, in one durable write
        (one fsync for the batch: the service's group commit). ``items`` are (envelope,
        proposal signature, endorsed) where ``endorsed`` is what ``endorse_payload``
        returned for that transaction (or None): when the envelope's payload is byte for
        byte the one this node endorsed, the decoded form is reused and only the
        submitter's envelope signature is verified (the proposal signature was verified
        at endorsement, the endorsement is the node's own); otherwise the envelope is
        decoded and every signature verified.

        Each outcome is the transaction's ``CommitStatus`` or the error it gets from
        ``commit``; the transactions are validated in order, each against the state
        the ones before it left (MVCC as if committed one by one).
        """
        node = self._require_node("commit")
        outcomes: list[CommitStatus | BlockFedMLError | None] = []
        parsed_items = []
        for envelope, proposal_signature, endorsed in items:
            try:
                parsed = _recognized(envelope, proposal_signature, endorsed)
                known = parsed is not None
                if parsed is None:
                    parsed = blocks.parse_envelope(envelope, proposal_signature)
                problem = self.transaction_problem(parsed, known=known)
            except BlockFedMLError as exc:
                problem, parsed = exc, None
            outcomes.append(problem)
            parsed_items.append(parsed)
        with self._lock:
            self._check_open()
            store = self._store
            store.prefetch()
            with store.write():
                batch: set[str] = set()
                for i, ((envelope, proposal_signature, _), parsed) in enumerate(zip(items, parsed_items)):
                    if outcomes[i] is None:
                        outcomes[i] = self._append(store, node, parsed, envelope, proposal_signature, batch)
        return outcomes  # type: ignore[return-value]

    def _append(self, store: LedgerStore, node: LedgerNode, parsed: ParsedTransaction, envelope: bytes,
                proposal_signature: bytes, batch: set[str]) -> CommitStatus | BlockFedMLError:
        """One block inside the caller's write transaction; the error for a replay or MVCC conflict."""
        tx_id = parsed.proposal.tx_id
        if tx_id in batch or store.tx_exists(tx_id):
            return ConflictError(f"transaction {tx_id} is already on the ledger (replay refused)")
        batch.add(tx_id)
        code, where = mvcc_check(parsed.rwset, store.version, store.range_state)
        tip, tip_hash = store.tip()
        number = tip + 1
        data_hash = blocks.transaction_data_hash(envelope, proposal_signature, code)
        header = blocks.block_header_bytes(number, tip_hash, data_hash)
        store.insert_block(BlockRow(
            number, tip_hash, data_hash, hashlib.sha256(header).digest(),
            "transaction", tx_id, self._identity(parsed.proposal.creator).msp_id, parsed.proposal.chaincode,
            parsed.proposal.function, code, envelope, proposal_signature,
            orderer_signature=node.sign_block(header)))
        if code != blocks.VALID:
            error = ConflictError(f"transaction {tx_id} ({parsed.proposal.function}) is invalid: "
                                  f"{blocks.validation_code_name(code)} on {where}; it was recorded in "
                                  f"block {number} and changed nothing; simulate it again and resubmit")
            error.tx_id, error.block_number, error.key = tx_id, number, where  # type: ignore[attr-defined]
            error.validation_code = code  # type: ignore[attr-defined]
            return error
        ns = parsed.rwset.namespace
        for key, value in parsed.rwset.writes.items():
            if value is None:
                store.delete_state(ns, key)
            else:
                store.put_state(ns, key, value, number, 0)
        return CommitStatus(tx_id, number, code)

    # -- checks shared by commit and verify -------------------------------------

    def transaction_problem(self, parsed: ParsedTransaction, *, known: bool = False) -> BlockFedMLError | None:
        """Why this transaction may not be committed, or None. Does not look at state.

        ``known``: ``parsed`` is what this very node endorsed (``endorse_payload``), whose
        proposal signature it verified then and whose endorsement it made itself; those two
        signatures are not verified a second time.
        """
        proposal = parsed.proposal
        if proposal.channel != self._channel:
            return NotFoundError(f"transaction {proposal.tx_id} is for channel {proposal.channel}, "
                                 f"not {self._channel}")
        problem = self.creator_problem(proposal.creator)
        if problem is not None:
            return problem
        cert = self._identity(proposal.creator).certificate
        if not known and not verify_signature(cert, proposal.proposal_bytes, proposal.signature):
            return IntegrityError(f"transaction {proposal.tx_id}: the proposal signature does not verify")
        if not verify_signature(cert, parsed.payload, parsed.envelope_signature):
            return IntegrityError(f"transaction {proposal.tx_id}: the envelope signature does not verify")
        endorsement = None if known else self._node_certificates.endorsement_problem(
            parsed.response_payload, list(parsed.endorsements))
        if endorsement is not None:
            return IntegrityError(f"transaction {proposal.tx_id}: {endorsement}")
        if not 200 <= parsed.status < 400:
            return InvalidInputError(f"transaction {proposal.tx_id} carries a failed chaincode response "
                                     f"({parsed.status}); it cannot be committed")
        return None

    def creator_problem(self, creator: bytes) -> BlockFedMLError | None:
        """Why ``creator`` may not act on this channel (unknown organization, certificate
        not from its CA), or None."""
        if creator in self._members:
            return None
        try:
            identity = Identity.deserialize(creator)
        except CryptoError as exc:
            return NotAuthorizedError(f"unreadable creator identity: {exc}")
        ca = self._organizations.get(identity.msp_id)
        if ca is None:
            return NotAuthorizedError(f"organization {identity.msp_id} is not a member of channel "
                                      f"{self._channel}")
        try:
            issued = verify_issued_by(identity.certificate, ca)
        except CryptoError as exc:
            return NotAuthorizedError(f"certificate of {identity.msp_id} is unusable: {exc}")
        if not issued:
            return NotAuthorizedError(f"certificate {identity.subject} was not issued by the CA of "
                                      f"{identity.msp_id}")
        if len(self._members) < 10_000:
            self._members[creator] = identity
        return None

    def _identity(self, creator: bytes) -> Identity:
        """The creator's identity, from the cache of checked creators when it is there."""
        found = self._members.get(creator)
        return found if found is not None else Identity.deserialize(creator)

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError(f"ledger {self._store.path} is closed")


def _recognized(envelope: bytes, proposal_signature: bytes,
                endorsed: ParsedTransaction | None) -> ParsedTransaction | None:
    """``endorsed`` with the envelope's signature, when the envelope carries exactly the payload
    (and the proposal signature) this node endorsed; else None (decode it in full)."""
    if endorsed is None or proposal_signature != endorsed.proposal.signature:
        return None
    try:
        env = common_pb2.Envelope.FromString(envelope)
    except Exception:
        return None  # parse_envelope names the defect
    if env.payload != endorsed.payload or env.SerializeToString() != envelope:
        return None
    return replace(endorsed, envelope_signature=bytes(env.signature))


def mvcc_check(rwset: RWSet, version_of: Any, scan: Any) -> tuple[int, str | None]:
    """Fabric's MVCC rule: every key read must still be at the version read, and
    every range scanned must still hold the same keys at the same versions.
    Returns the validation code and, on conflict, what conflicted."""
    ns = rwset.namespace
    for key, version in rwset.reads.items():
        if version_of(ns, key) != version:
            return blocks.MVCC_READ_CONFLICT, f"key {key!r}"
    for rng in rwset.ranges:
        current = [(k, (b, t)) for k, _, b, t in scan(ns, rng.start, rng.end)]
        if current != rng.reads:
            return blocks.PHANTOM_READ_CONFLICT, f"range [{rng.start!r}, {rng.end!r})"
    return blocks.VALID, None




def _block_dict(row: BlockRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": row.number, "previous_hash": row.previous_hash.hex(), "data_hash": row.data_hash.hex(),
        "hash": row.hash.hex(), "kind": row.kind,
        "validation_code": blocks.validation_code_name(row.validation_code),
    }
    if row.kind == "config":
        channel, orgs = blocks.decode_config(row.data)
        out.update(channel=channel, organizations={m: p.decode() for m, p in orgs.items()},
                   ledger_node=blocks.decode_node(row.data).to_dict())
        return out
    out["orderer_signature"] = (row.orderer_signature or b"").hex()
    if row.defect is not None:
        raise IntegrityError(f"block {row.number}: {row.defect}")
    out["transaction"] = blocks.transaction_dict(blocks.parse_envelope(row.data, row.proposal_signature or b""))
    out["size_bytes"] = row.stored_bytes  # as stored: compact envelope and proposal signature
    out["envelope_bytes"] = len(row.data)  # the envelope as signed
    return out
