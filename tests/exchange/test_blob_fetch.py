"""Blobs travel between organizations: fetched by digest from the producer's exchange server over
mutual TLS, re-hashed, kept; a withheld, missing or damaged blob is named, never used."""

from __future__ import annotations

import pytest

from blockfedml.consortium import Consortium
from blockfedml.errors import IntegrityError, NotAuthorizedError, NotFoundError
from blockfedml.org_host import serving_blobs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("fetch") / "c"
    Consortium.create(path, n_orgs=3).close()
    return path


def test_a_member_fetches_another_members_blob_over_its_exchange_and_keeps_it(workdir):
    org1, org2 = Consortium.open(workdir, org="Org1"), Consortium.open(workdir, org="Org2")
    try:
        digest = org1.blobs("Org1").put(b"a model Org1 produced")
        assert not org2.blobs("Org2").has(digest)
        with serving_blobs(org1, "Org1") as server:
            assert server is not None
            assert org2.blobs("Org2").get(digest, "Org1MSP") == b"a model Org1 produced"
        assert org2.blobs("Org2").has(digest)  # kept: served by Org2 from now on
        with pytest.raises(NotAuthorizedError, match="belong to Org1"):
            org2.blobs("Org1")
    finally:
        org1.close()
        org2.close()


def test_an_auditor_with_no_server_of_its_own_may_fetch(workdir):
    org1, auditor = Consortium.open(workdir, org="Org1"), Consortium.open(workdir, org="Auditor")
    try:
        digest = org1.blobs("Org1").put(b"an opening the auditor re-checks")
        with serving_blobs(org1, "Org1"):
            assert auditor.blobs("Auditor").get(digest) == b"an opening the auditor re-checks"
    finally:
        org1.close()
        auditor.close()


def test_a_withheld_blob_is_named_with_every_holder_asked(workdir):
    org1, org3 = Consortium.open(workdir, org="Org1"), Consortium.open(workdir, org="Org3")
    try:
        digest = org1.blobs("Org1").put(b"never served")
        org3.blobs("Org3").patience = 0.5  # how long holders that cannot be reached are asked again
        with pytest.raises(NotFoundError) as caught:
            org3.blobs("Org3").get(digest, "Org1MSP")
        message = str(caught.value)
        assert digest in message and "Org1MSP" in message and "cannot reach" in message and "Org2MSP" in message
        assert not org3.blobs("Org3").has(digest)
    finally:
        org1.close()
        org3.close()


def test_a_blob_the_server_does_not_hold_is_not_found_not_an_error_of_the_channel(workdir):
    org1, org2 = Consortium.open(workdir, org="Org1"), Consortium.open(workdir, org="Org2")
    try:
        with serving_blobs(org1, "Org1"):
            with pytest.raises(NotFoundError, match="Org1MSP does not hold it"):
                org2.blobs("Org2").get("ab" * 32, "Org1MSP")
    finally:
        org1.close()
        org2.close()


def test_a_damaged_copy_is_never_served_nor_kept(workdir):
    org1, org2 = Consortium.open(workdir, org="Org1"), Consortium.open(workdir, org="Org2")
    try:
        store = org1.blobs("Org1")
        digest = store.put(b"a checkpoint someone edits on disk")
        path = store.path(digest)
        path.write_bytes(b"a checkpoint someone edited on disk")
        with serving_blobs(org1, "Org1"):
            with pytest.raises(IntegrityError, match="corrupt or tampered"):
                org2.blobs("Org2").get(digest, "Org1MSP")
        assert not org2.blobs("Org2").has(digest)
    finally:
        org1.close()
        org2.close()
