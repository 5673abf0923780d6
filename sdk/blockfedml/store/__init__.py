"""Off-chain, content-addressed storage for models and encrypted updates."""

from blockfedml.store.model_store import ModelStore, check_digest, sha256_hex

__all__ = ["ModelStore", "check_digest", "sha256_hex"]
