"""Masking over a sparse random graph (SecAgg+): exact sums, dropout recovery, the audit follows it."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from blockfedml.audit import recompute
from blockfedml.audit.verify import audit_consortium
from blockfedml.consortium import Consortium
from blockfedml.crypto import FixedPoint, MaskSecrets, encoded_sum, graph, secagg
from blockfedml.crypto.graph import MaskingGraph, choose_degree, graph_of_round
from blockfedml.errors import CryptoError, IntegrityError, InvalidInputError
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

CODEC = FixedPoint()
ORGS = [f"Org{i:02d}" for i in range(12)]


def ledger_threshold(n: int) -> int:
    """The chaincode's mask_threshold at its default 51%."""
    return min(n, max(2, (51 * n + 99) // 100))


def test_the_graph_is_regular_symmetric_and_derived_from_ledger_facts():
    keys = {f"M{i:04d}": bytes([i % 256, i // 256]) * 16 for i in range(300)}
    g = MaskingGraph.for_round(5, "ab" * 32, keys, ledger_threshold(300))
    assert not g.is_complete and g.degree % 2 == 0 and g.degree < 300 // 3
    neighbours = {m: set(g.neighbours(m)) for m in g.members}
    assert all(len(v) == g.degree and m not in v for m, v in neighbours.items())
    assert all(a in neighbours[b] for a in neighbours for b in neighbours[a])  # symmetric
    assert all(len(g.holders(m)) == g.degree + 1 for m in g.members)
    # every party computes the same graph; another round, checkpoint or key gives another one
    assert MaskingGraph.for_round(5, "ab" * 32, dict(reversed(keys.items())), ledger_threshold(300)) == g
    others = [MaskingGraph.for_round(6, "ab" * 32, keys, ledger_threshold(300)),
              MaskingGraph.for_round(5, "cd" * 32, keys, ledger_threshold(300)),
              MaskingGraph.for_round(5, "ab" * 32, {**keys, "M0000": b"\x01" * 32}, ledger_threshold(300))]
    assert all(o.seed != g.seed and o.order != g.order for o in others)
    with pytest.raises(InvalidInputError, match="not one of the round's selected members"):
        g.neighbours("Stranger")


def test_the_degree_grows_gently_and_small_consortia_keep_the_complete_graph():
    degrees = {n: choose_degree(n, ledger_threshold(n)) for n in (3, 6, 10, 100, 1000)}
    assert degrees[3] == 2 and degrees[6] == 5 and degrees[10] == 9  # k would be >= n - 1: complete
    assert degrees[100] < 100 - 1 and degrees[1000] <= 150  # about 10x the members, about 2x the degree
    assert degrees[1000] < 3 * degrees[100]
    # stronger assumptions (fewer colluders, fewer dropouts) give sparser graphs
    assert choose_degree(100, 51, Fraction(1, 10), Fraction(1, 10)) < degrees[100]
    with pytest.raises(InvalidInputError, match="at least 2 members"):
        choose_degree(1, 1)
    with pytest.raises(InvalidInputError, match="degree"):
        MaskingGraph(tuple(ORGS), "00", 3, 2)  # odd and not n - 1: not a Harary graph


class SparseRound:
    """Twelve members with mask secrets and share bundles over a degree-4 graph (threshold 3)."""

    def __init__(self) -> None:
        self.secrets = {o: MaskSecrets.generate() for o in ORGS}
        self.mask_keys = {o: s.mask_public for o, s in self.secrets.items()}
        self.share_keys = {o: s.share_public for o, s in self.secrets.items()}
        self.graph = MaskingGraph(tuple(ORGS), "11" * 32, 4, 3)
        self.bundles = {o: secagg.share_bundle(s, round_number=2, org=o, share_keys=self.share_keys, threshold=3,
                                               graph=self.graph) for o, s in self.secrets.items()}

    def reveals(self, revealers, contributors, aggregator):
        return {o: secagg.reveal_shares(self.secrets[o], round_number=2, org=o, bundles=self.bundles,
                                        share_keys=self.share_keys, contributors=contributors,
                                        aggregator=aggregator, graph=self.graph) for o in revealers}


@pytest.fixture(scope="module")
def updates():
    rng = np.random.default_rng(11)
    return {o: (rng.normal(0, 1, 200), int(rng.integers(1, 500))) for o in ORGS}


def test_a_sparse_masked_sum_is_exact_and_recovers_a_dropped_member(updates):
    r = SparseRound()
    for o in ORGS:  # shares go to the neighbours and the member itself only
        header, _ = secagg.unpack(r.bundles[o], "share-bundle")
        assert header["recipients"] == list(r.graph.holders(o)) and header["graph"] == r.graph.to_dict()
    dropped = ORGS[5]
    contributors = [o for o in ORGS if o != dropped]
    sealed = {o: secagg.seal_masked(updates[o][0], updates[o][1], round_number=2, org=o, secrets_=r.secrets[o],
                                    mask_keys=r.mask_keys, codec=CODEC, graph=r.graph) for o in contributors}
    w = {o: updates[o][1] for o in contributors}
    masked_sum = secagg.sum_masked(sealed, round_number=2, weights=w, participants=ORGS)
    aggregator = contributors[0]
    reveals = r.reveals(contributors, contributors, aggregator)
    assert secagg.short_of_shares(r.graph, contributors, ORGS) == []
    result, opening = secagg.unmask(masked_sum, reveals, round_number=2, aggregator=aggregator,
                                    secrets_=r.secrets[aggregator], bundles=r.bundles, share_keys=r.share_keys,
                                    mask_keys=r.mask_keys, contributors=contributors, weight=sum(w.values()),
                                    threshold=3, graph=r.graph)
    expected = encoded_sum([CODEC.encode(updates[o][0], weight=updates[o][1]) for o in contributors])
    assert secagg.result_from_bytes(result, 2, contributors, sum(w.values())) == expected
    # the audit's own arithmetic follows the graph: only the dropped member's neighbours are undone
    _, seeds, keys = secagg.mask_opening_from_bytes(opening)
    neighbours = {m: r.graph.neighbours(m) for m in ORGS}
    assert np.array_equal(recompute.unmask(masked_sum, seeds, keys, r.mask_keys, 2, neighbours=neighbours),
                          expected.ints)
    assert not np.array_equal(recompute.unmask(masked_sum, seeds, keys, r.mask_keys, 2), expected.ints)


def test_unmasking_waits_until_every_neighbourhood_has_revealed_enough(updates):
    r = SparseRound()
    sealed = {o: secagg.seal_masked(updates[o][0], updates[o][1], round_number=2, org=o, secrets_=r.secrets[o],
                                    mask_keys=r.mask_keys, codec=CODEC, graph=r.graph) for o in ORGS}
    w = {o: updates[o][1] for o in ORGS}
    masked_sum = secagg.sum_masked(sealed, round_number=2, weights=w, participants=ORGS)
    victim = ORGS[3]
    silent = set(r.graph.holders(victim)) - {r.graph.holders(victim)[0]}  # only one of its 5 holders reveals
    revealers = [o for o in ORGS if o not in silent]
    assert secagg.short_of_shares(r.graph, revealers, ORGS) != [] and victim in secagg.short_of_shares(
        r.graph, revealers, ORGS)
    aggregator = revealers[0]
    with pytest.raises(CryptoError, match="too few survivors"):
        secagg.unmask(masked_sum, r.reveals(revealers, ORGS, aggregator), round_number=2, aggregator=aggregator,
                      secrets_=r.secrets[aggregator], bundles=r.bundles, share_keys=r.share_keys,
                      mask_keys=r.mask_keys, contributors=ORGS, weight=sum(w.values()), threshold=3, graph=r.graph)
    with pytest.raises(CryptoError, match="has nothing for"):  # a non-neighbour holds none of its shares
        outsider = next(o for o in ORGS if o not in r.graph.holders(victim))
        secagg.reveal_shares(r.secrets[outsider], round_number=2, org=outsider, bundles={victim: r.bundles[victim]},
                             share_keys=r.share_keys, contributors=ORGS, aggregator=aggregator)


def test_a_session_over_a_sparse_graph_reproduces_the_plaintext_session_and_audits(tmp_path, monkeypatch):
    """Eight organizations with assumptions weak enough (1% colluders, 1% dropouts) that the
    graph is sparse: the whole round over the embedded ledger is exact and the audit passes."""
    monkeypatch.setattr(graph, "COLLUSION", Fraction(1, 100))
    monkeypatch.setattr(graph, "DROPOUT", Fraction(1, 100))
    plain = Consortium.create(tmp_path / "plain", n_orgs=8, task=TaskSpec())
    secure = Consortium.create(tmp_path / "masking", n_orgs=8, task=TaskSpec())
    try:
        expected = Session(plain).run(1)
        results = Session(secure, mode="masking").run(1)
        assert [r.status for r in results] == ["accepted"]
        round_ = secure.contract("Auditor").evaluate_json("GetRound", 1)
        keys = {k["msp_id"]: k for k in secure.contract("Auditor").evaluate_json("GetMaskKeys", 1)}
        g = graph_of_round(round_, keys)
        assert not g.is_complete and g.degree < len(round_["selected"]) - 1
        assert results[0].test_accuracy == expected[0].test_accuracy
        report = audit_consortium(secure)
        assert [c.name for c in report.checks if c.status == "fail"] == []
    finally:
        plain.close()
        secure.close()


def test_a_share_bundle_that_ignores_the_graph_is_refused(updates):
    r = SparseRound()
    deviant = ORGS[2]  # shares with everyone, as on the complete graph: more holders than its neighbours
    r.bundles[deviant] = secagg.share_bundle(r.secrets[deviant], round_number=2, org=deviant,
                                             share_keys=r.share_keys, threshold=3)
    sealed = {o: secagg.seal_masked(updates[o][0], updates[o][1], round_number=2, org=o, secrets_=r.secrets[o],
                                    mask_keys=r.mask_keys, codec=CODEC, graph=r.graph) for o in ORGS}
    w = {o: updates[o][1] for o in ORGS}
    masked_sum = secagg.sum_masked(sealed, round_number=2, weights=w, participants=ORGS)
    aggregator = ORGS[0]
    with pytest.raises(IntegrityError, match="the ledger says"):
        secagg.unmask(masked_sum, r.reveals(ORGS, ORGS, aggregator), round_number=2, aggregator=aggregator,
                      secrets_=r.secrets[aggregator], bundles=r.bundles, share_keys=r.share_keys,
                      mask_keys=r.mask_keys, contributors=ORGS, weight=sum(w.values()), threshold=3, graph=r.graph)
