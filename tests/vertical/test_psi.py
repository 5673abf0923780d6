"""Private set intersection: both learn exactly the common IDs, nothing usable about the others."""

from __future__ import annotations

import threading

import pytest

from blockfedml.errors import CryptoError, InvalidInputError
from blockfedml.vertical import psi
from blockfedml.vertical.transport import LocalHub, Link

from .conftest import Recorder


def run_pair(a_ids, b_ids, wrap=lambda e: e, session="s1", timeout=10.0):
    """Run the PSI as A and B on two threads; return (results, errors) by party."""
    hub, results, errors = LocalHub(), {}, {}

    def run(party, ids):
        try:
            results[party] = psi.align(Link(wrap(hub.endpoint(party)), session, timeout), ids)
        except Exception as exc:
            errors[party] = exc

    threads = [threading.Thread(target=run, args=(p, ids)) for p, ids in (("A", a_ids), ("B", b_ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_both_parties_learn_the_intersection_and_agree_on_the_transcript():
    a_ids = [f"id{i}" for i in range(0, 300, 2)]
    b_ids = [f"id{i}" for i in range(0, 300, 3)][::-1]
    results, errors = run_pair(a_ids, b_ids)
    assert not errors
    expected = sorted(set(a_ids) & set(b_ids))
    assert results["A"].ids == results["B"].ids == expected
    assert [a_ids[i] for i in results["A"].positions] == expected
    assert [b_ids[i] for i in results["B"].positions] == expected
    assert results["A"].transcript == results["B"].transcript
    assert (results["A"].own_count, results["A"].other_count) == (150, 100)


def test_a_cannot_test_bs_other_ids_against_anything_it_received(monkeypatch):
    """A's best dictionary attack: blind a guessed ID with its own scalar and look for it."""
    scalars = {}
    real_scalar = psi.new_scalar

    def remember():
        scalar = real_scalar()
        scalars[threading.current_thread().name] = scalar
        return scalar

    monkeypatch.setattr(psi, "new_scalar", remember)
    recorders = {}
    a_ids, b_ids = [f"id{i}" for i in range(50)], [f"id{i}" for i in range(40, 120)]

    def wrap(endpoint):
        threading.current_thread().name = f"party-{endpoint.party}"
        return recorders.setdefault(endpoint.party, Recorder(endpoint))

    results, errors = run_pair(a_ids, b_ids, wrap)
    assert not errors and results["A"].size == 10
    a_scalar = scalars["party-A"]
    received = b"".join(data for _, _, data in recorders["A"].received)
    for other in sorted(set(b_ids) - set(a_ids)):
        point = psi.hash_to_group("s1", psi.canonical_ids([other])[1])[0]
        assert point not in received
        assert psi.blind([point], a_scalar)[0] not in received
        assert other.encode() not in received


def test_mismatched_id_types_are_refused_on_both_sides():
    results, errors = run_pair([1, 2, 3], ["1", "2", "3"])
    assert not results
    for party in "AB":
        assert isinstance(errors[party], InvalidInputError)
        assert "mismatched ID types" in str(errors[party])


def test_an_empty_intersection_is_an_error_for_both():
    results, errors = run_pair(["a", "b"], ["c", "d"])
    assert not results
    assert all("no common IDs" in str(errors[p]) for p in "AB")


@pytest.mark.parametrize("ids, message", [
    ([], "no IDs"),
    (["x", "x"], "twice"),
    ([1, "1"], "mixes integer and string"),
    ([True], "boolean"),
    ([1.5], "not an integer or a non-empty string"),
])
def test_bad_id_lists_are_refused_before_anything_is_sent(ids, message):
    with pytest.raises(InvalidInputError, match=message):
        psi.canonical_ids(ids, "party A")


def test_integer_and_string_ids_are_different_entities():
    assert psi.canonical_ids([7])[1] != psi.canonical_ids(["7"])[1]


def test_a_malformed_point_from_the_peer_is_a_crypto_error():
    class Garble(Recorder):
        def send(self, to, data):
            if b"psi.blind" in data[:200]:
                data = data[:-32] + b"\xff" * 32  # not a point of the group
            super().send(to, data)

    results, errors = run_pair(["a", "b", "c"], ["b", "c"], lambda e: Garble(e) if e.party == "B" else e, timeout=1)
    assert isinstance(errors["A"], CryptoError) and "not a valid group element" in str(errors["A"])
