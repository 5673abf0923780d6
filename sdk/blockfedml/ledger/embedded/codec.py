"""How a transaction is stored: the signed envelope, minus what the ledger
already holds, compressed. Reading gives back the exact bytes that were signed.

A Fabric envelope is mostly repetition. The creator's certificate (about
850 bytes of PEM) is in every transaction's ``SignatureHeader``; the proposal
hash (32 bytes) is a function of the header and payload beside it; the write
set, the response and the round records repeat one another and name recent
transactions by ID; and every transaction of one contract has the same shape.
So a transaction is stored as its *skeleton* — the envelope without the
creator and the proposal hash, its signature as the raw 64 bytes ``r || s``
instead of DER — compressed with raw DEFLATE against a preset dictionary:

    stored = layout byte || DEFLATE(skeleton, zdict = dictionary
                                    || body of the block before || recent tx IDs || own tx ID)

- The creator is stored once, in the ledger's ``certificates`` table, and the
  block row refers to it (``store.py``). The ledger node's identity in the
  endorsement is left out too: the genesis block pins it (``node.py``).
- The dictionary is a sample of the ledger's own recent skeletons, taken when
  the chain reaches block 64, 256, 1024, ... (every time it has grown
  fourfold), and stored (zlib-compressed, about 3 KB) in the ``dictionaries``
  table under that block number; block ``n >= 64`` is compressed against the
  latest dictionary taken at or before it, earlier blocks against none. A
  ledger thus learns the shape of its own transactions, whatever its
  chaincode, for a one-time cost that grows with the logarithm of its length.
- The body (inflated skeleton) of the block before it comes next: consecutive
  transactions of a round share digests, keys and versions. Every
  ``RESTART_EVERY``-th block leaves it out, so rebuilding any block inflates
  at most that many bodies; reading in order inflates each body once.
- The transaction IDs of the ``RECENT_TX_IDS`` blocks before it and its own
  (all kept in the block rows as the replay index) end the dictionary, so the
  references to them inside the envelope (round histories, ``"tx"`` fields)
  cost a few bytes each instead of 64 hex digits.

Nothing here is trusted: the block's data hash and both signatures are
computed over the *reconstructed* envelope, so a changed skeleton, certificate
row, dictionary or transaction ID gives different bytes and is found by
``verify``. ``strip`` only uses the skeleton layout when ``dress`` gives back
the input byte for byte; any other envelope (a non-canonical encoding from a
foreign client) is stored whole (layout 0, still compressed).
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from fabric_protos.common import common_pb2
from fabric_protos.peer import proposal_response_pb2, transaction_pb2

from blockfedml.errors import IntegrityError

WHOLE = 0      # the whole envelope
SKELETON = 1   # creator and proposal hash left out
FIRST_DICTIONARY_BLOCK = 64
RECENT_TX_IDS = 16
RESTART_EVERY = 16     # blocks 16, 32, 48, ... do not refer to the block before them
DICTIONARY_BYTES = 12 * 1024  # DEFLATE sees the last 16 KB (its window) of a preset dictionary
_LEVEL = 6
# Raw DEFLATE (no zlib header or checksum: the data hash checks the result) with a
# 16 KB window: a compressor is set up per transaction, and its set-up cost grows
# with the window; 32 KB would save about 13 more bytes a transaction for twice that.
_WBITS = -14
MAX_BODY_BYTES = 64 * 1024 * 1024  # what a stored transaction may inflate to (a damaged one: less)


def dictionary_block(number: int) -> int | None:
    """The block whose dictionary compresses block ``number``: the largest of 64,
    256, 1024, ... (``64 * 4 ** k``) not after it; None before the first."""
    if number < FIRST_DICTIONARY_BLOCK:
        return None
    k = (number.bit_length() - FIRST_DICTIONARY_BLOCK.bit_length()) // 2
    return FIRST_DICTIONARY_BLOCK << (2 * k)


def train_dictionary(skeletons_newest_first: Iterable[bytes]) -> bytes:
    """A preset dictionary: recent skeletons, newest last (DEFLATE reaches the
    end of its window most cheaply), at most ``DICTIONARY_BYTES``."""
    chosen: list[bytes] = []
    size = 0
    for skeleton in skeletons_newest_first:
        chosen.append(skeleton)
        size += len(skeleton)
        if size >= DICTIONARY_BYTES:
            break
    return b"".join(reversed(chosen))[-DICTIONARY_BYTES:]


def chained(number: int) -> bool:
    """Whether block ``number``'s preset dictionary holds the body of the block
    before it (not for block 1, whose predecessor is the genesis configuration,
    nor at a restart, so that rebuilding any block inflates at most
    ``RESTART_EVERY`` bodies)."""
    return number > 1 and number % RESTART_EVERY != 0


def preset(dictionary: bytes, previous_body: bytes, recent_tx_ids: Sequence[str], tx_id: str) -> bytes:
    """The preset dictionary of one block: the trained dictionary, the body of the
    block before it (``b""`` unless ``chained``), the IDs of the transactions
    before it (oldest first) and its own ID; nearest last, where DEFLATE refers
    most cheaply."""
    return (dictionary + previous_body + "".join(recent_tx_ids[-RECENT_TX_IDS:]).encode()
            + tx_id.encode())


def pack(envelope: bytes, zdict: bytes, endorser: bytes = b"") -> tuple[bytes, bytes | None, bytes]:
    """The stored form of ``envelope``, the creator it leaves out (None when the
    envelope is stored whole) and its body (what the next block may refer to).
    ``endorser``: the pinned endorser identity, left out of endorsements that name it."""
    stripped = strip(envelope, endorser)
    layout, body, creator = (WHOLE, envelope, None) if stripped is None else (SKELETON, *stripped)
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    return bytes([layout]) + compressor.compress(body) + compressor.flush(), creator, body


def inflate(stored: bytes, zdict: bytes) -> tuple[int, bytes]:
    """(layout, skeleton or whole envelope) of a stored transaction."""
    if not stored or stored[0] not in (WHOLE, SKELETON):
        raise IntegrityError(f"unknown storage layout {stored[:1].hex() or '(empty)'}")
    try:
        decompressor = zlib.decompressobj(_WBITS, zdict)
        body = decompressor.decompress(stored[1:], MAX_BODY_BYTES)
    except zlib.error as exc:
        raise IntegrityError(f"stored transaction does not decompress: {exc}") from exc
    if decompressor.unconsumed_tail:
        raise IntegrityError(f"stored transaction inflates to more than {MAX_BODY_BYTES} bytes")
    if not decompressor.eof or decompressor.unused_data:
        raise IntegrityError("stored transaction is truncated or has trailing bytes")
    return stored[0], body


def unpack(stored: bytes, zdict: bytes, creator: bytes | None, endorser: bytes = b"") -> bytes:
    """The envelope exactly as signed. ``creator`` is required for the skeleton layout."""
    return dress_layout(*inflate(stored, zdict), creator, endorser)


def dress_layout(layout: int, body: bytes, creator: bytes | None, endorser: bytes = b"") -> bytes:
    """The envelope from an inflated body of either layout."""
    if layout == WHOLE:
        return body
    if creator is None:
        raise IntegrityError("stored transaction refers to no certificate")
    return dress(body, creator, endorser)


def strip(envelope: bytes, endorser: bytes = b"") -> tuple[bytes, bytes] | None:
    """(skeleton, creator), or None unless ``dress`` restores ``envelope`` exactly."""
    try:
        env = common_pb2.Envelope.FromString(envelope)
        payload = common_pb2.Payload.FromString(env.payload)
        signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        tx = transaction_pb2.Transaction.FromString(payload.data)
        if len(tx.actions) != 1:
            return None
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
        response = proposal_response_pb2.ProposalResponsePayload.FromString(
            action_payload.action.proposal_response_payload)
    except Exception:
        return None
    creator = bytes(signature_header.creator)
    try:
        r, s = decode_dss_signature(env.signature)
        env.signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    except (ValueError, OverflowError):
        return None
    if not creator:
        return None
    signature_header.creator = b""
    response.proposal_hash = b""
    for endorsement in action_payload.action.endorsements:
        if endorser and endorsement.endorser == endorser:
            endorsement.endorser = b""
    skeleton = _rebuild(env, payload, signature_header.SerializeToString(), tx, action_payload,
                        response)
    try:
        restored = dress(skeleton, creator, endorser)
    except IntegrityError:
        return None
    return (skeleton, creator) if restored == envelope else None


def dress(skeleton: bytes, creator: bytes, endorser: bytes = b"") -> bytes:
    """Put the creator (and the pinned endorser) back, recompute the proposal hash
    (Fabric's: SHA-256 of channel header, signature header and proposal payload)
    and DER-encode the signature again."""
    try:
        env = common_pb2.Envelope.FromString(skeleton)
        payload = common_pb2.Payload.FromString(env.payload)
        signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        tx = transaction_pb2.Transaction.FromString(payload.data)
        if len(tx.actions) != 1:
            raise IntegrityError(f"a transaction must hold exactly one action, not {len(tx.actions)}")
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
        response = proposal_response_pb2.ProposalResponsePayload.FromString(
            action_payload.action.proposal_response_payload)
        if len(env.signature) != 64:
            raise IntegrityError(f"a stored signature has 64 bytes, not {len(env.signature)}")
        env.signature = encode_dss_signature(int.from_bytes(env.signature[:32], "big"),
                                             int.from_bytes(env.signature[32:], "big"))
    except IntegrityError:
        raise
    except Exception as exc:
        raise IntegrityError(f"malformed stored transaction: {exc}") from exc
    signature_header.creator = creator
    for endorsement in action_payload.action.endorsements:
        if not endorsement.endorser:
            if not endorser:
                raise IntegrityError("a stored endorsement names no endorser and none is pinned")
            endorsement.endorser = endorser
    header_bytes = signature_header.SerializeToString()
    response.proposal_hash = hashlib.sha256(
        payload.header.channel_header + header_bytes + action_payload.chaincode_proposal_payload).digest()
    return _rebuild(env, payload, header_bytes, tx, action_payload, response)


def _rebuild(env: common_pb2.Envelope, payload: common_pb2.Payload, signature_header: bytes,
             tx: transaction_pb2.Transaction, action_payload: transaction_pb2.ChaincodeActionPayload,
             response: proposal_response_pb2.ProposalResponsePayload) -> bytes:
    """Serialize the nested messages again, innermost first."""
    action_payload.action.proposal_response_payload = response.SerializeToString()
    tx.actions[0].payload = action_payload.SerializeToString()
    payload.header.signature_header = signature_header
    payload.data = tx.SerializeToString()
    env.payload = payload.SerializeToString()
    return env.SerializeToString()
