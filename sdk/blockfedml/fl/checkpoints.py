"""Loading a checkpoint named by the ledger into a member's own model.

The store re-hashes every blob it returns, so the parameters loaded here are
exactly those whose SHA-256 the ledger recorded; a checkpoint of another model
kind is refused rather than silently reshaped.
"""

from __future__ import annotations

from blockfedml.errors import IntegrityError
from blockfedml.ml.models import Model
from blockfedml.ml.serialization import load_params
from blockfedml.store import ModelStore


def load_checkpoint(store: ModelStore, digest: str, model: Model) -> Model:
    """Load the checkpoint with this digest into ``model`` (verified) and return it."""
    params, meta = load_params(store, digest)
    if meta.get("kind") not in (None, model.kind):
        raise IntegrityError(
            f"checkpoint {digest[:12]} holds a {meta.get('kind')!r} model, expected {model.kind!r}"
        )
    model.set_params(params)
    return model
