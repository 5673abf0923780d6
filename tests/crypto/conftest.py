"""One real 2048-bit Paillier key for the whole test session (generation takes up to a second)."""

from __future__ import annotations

import pytest

from blockfedml.crypto import PaillierPrivateKey, generate_keypair


@pytest.fixture(scope="session")
def private_key() -> PaillierPrivateKey:
    return generate_keypair(2048)


@pytest.fixture(scope="session")
def public_key(private_key):
    return private_key.public_key
