"""Off-chain, content-addressed storage for models and encrypted updates."""

from blockfedml.store.blobs import BlobSource, BlobStore, LocalSource
from blockfedml.store.model_store import ModelStore, check_digest, sha256_hex

__all__ = ["BlobSource", "BlobStore", "LocalSource", "ModelStore", "check_digest", "sha256_hex"]
