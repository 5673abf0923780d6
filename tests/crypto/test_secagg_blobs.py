"""A secure round without a ledger: exactness, dropout recovery and what the aggregator can read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blockfedml.crypto import FixedBaseRandomness, FixedPoint, MaskSecrets, SlotLayout, encoded_sum, secagg
from blockfedml.errors import CryptoError, IntegrityError
from blockfedml.store import sha256_hex

ORGS = ["A", "B", "C", "D"]
CODEC = FixedPoint()


@pytest.fixture(scope="module")
def updates():
    rng = np.random.default_rng(7)
    return {o: (rng.normal(0, 2, 300), int(rng.integers(1, 3000))) for o in ORGS}


def reference(updates, orgs):
    return encoded_sum([CODEC.encode(updates[o][0], weight=updates[o][1]) for o in orgs])


def weights(updates):
    return {o: w for o, (_, w) in updates.items()}


def test_paillier_sum_decrypts_to_the_plaintext_fixed_point_sum_exactly(private_key, public_key, updates):
    layout = SlotLayout.for_round(CODEC, public_key.bits, len(ORGS))
    randomness = FixedBaseRandomness(public_key)
    sealed = {o: secagg.seal_paillier(x, w, round_number=3, org=o, public_key=public_key, layout=layout,
                                      randomness=randomness) for o, (x, w) in updates.items()}
    for o, blob in sealed.items():  # the aggregator's view: ciphertexts only
        assert updates[o][0].astype("<f8").tobytes()[:64] not in blob
        packed = layout.pack(CODEC.encode(updates[o][0], weight=updates[o][1]))
        assert packed[0].to_bytes(layout.plaintext_bytes, "little")[:32] not in blob
    summed = secagg.sum_paillier(sealed, round_number=3, public_key=public_key, weights=weights(updates))
    total_weight = sum(weights(updates).values())
    # The key holder multiplies the committed ciphertexts itself: the same sum blob, byte for byte.
    own_sum, result, opening = secagg.open_paillier(sealed, private_key, round_number=3, weights=weights(updates),
                                                    layout=layout)
    assert own_sum == summed
    assert secagg.result_from_bytes(result, 3, ORGS, total_weight) == reference(updates, ORGS)
    # The opening re-encrypts: every published (m, r) gives back the product ciphertext, without the key.
    header, plaintexts, randomness = secagg.opening_from_bytes(opening)
    assert header["sum"] == sha256_hex(summed) and header["result"] == sha256_hex(result)
    product = public_key.ciphertexts_from_bytes(secagg.unpack(summed, "paillier-sum")[1], header["count"])
    n, nsquare = int(public_key.n), int(public_key.nsquare)
    assert all((1 + m * n) * pow(r, n, nsquare) % nsquare == c for m, r, c in zip(plaintexts, randomness, product))
    wider = SlotLayout.for_round(CODEC, public_key.bits, 2 * len(ORGS))  # not the round's layout
    with pytest.raises(IntegrityError, match="layout"):
        secagg.open_paillier(sealed, private_key, round_number=3, weights=weights(updates), layout=wider)
    with pytest.raises(IntegrityError):  # a blob of another round is refused
        secagg.open_paillier(sealed, private_key, round_number=4, weights=weights(updates), layout=layout)
    with pytest.raises(IntegrityError, match="weight"):  # the aggregator's weights come from the ledger
        secagg.sum_paillier(sealed, round_number=3, public_key=public_key, weights={**weights(updates), "A": 1})


class Masking:
    """Four members' mask secrets and share bundles (threshold 3), as after configuration."""

    def __init__(self, threshold: int = 3) -> None:
        self.secrets = {o: MaskSecrets.generate() for o in ORGS}
        self.mask_keys = {o: s.mask_public for o, s in self.secrets.items()}
        self.share_keys = {o: s.share_public for o, s in self.secrets.items()}
        self.threshold = threshold
        self.bundles = {o: secagg.share_bundle(s, round_number=1, org=o, share_keys=self.share_keys,
                                               threshold=threshold) for o, s in self.secrets.items()}

    def seal(self, updates, orgs):
        return {o: secagg.seal_masked(updates[o][0], updates[o][1], round_number=1, org=o,
                                      secrets_=self.secrets[o], mask_keys=self.mask_keys, codec=CODEC) for o in orgs}

    def reveal(self, revealers, contributors, aggregator="A"):
        return {o: secagg.reveal_shares(self.secrets[o], round_number=1, org=o, bundles=self.bundles,
                                        share_keys=self.share_keys, contributors=contributors,
                                        aggregator=aggregator) for o in revealers}

    def unmask(self, masked_sum, reveals, contributors, weight, aggregator="A"):
        return secagg.unmask(masked_sum, reveals, round_number=1, aggregator=aggregator,
                             secrets_=self.secrets[aggregator], bundles=self.bundles, share_keys=self.share_keys,
                             mask_keys=self.mask_keys, contributors=contributors, weight=weight,
                             threshold=self.threshold)[0]


def test_masked_sum_is_exact_with_one_member_dropped_before_and_one_after_sending(updates):
    m = Masking(threshold=3)
    contributors = ["A", "B", "C"]  # D shared its keys, then dropped before sending its masked input
    sealed = m.seal(updates, contributors)
    for o, blob in sealed.items():  # the aggregator's view: masked vectors look random
        _, payload = secagg.unpack(blob, "masked-update")
        as_if_clear = np.frombuffer(payload, "<i8") / (updates[o][1] * CODEC.scale)
        assert np.median(np.abs(as_if_clear - updates[o][0])) > 1e6
    w = {o: updates[o][1] for o in contributors}
    masked_sum = secagg.sum_masked(sealed, round_number=1, weights=w, participants=ORGS)
    reveals = m.reveal(["A", "B", "C"], contributors)  # D's mask key is rebuilt from these shares
    result = m.unmask(masked_sum, reveals, contributors, sum(w.values()))
    assert secagg.result_from_bytes(result, 1, contributors, sum(w.values())) == reference(updates, contributors)
    with pytest.raises(CryptoError, match="too few survivors"):
        m.unmask(masked_sum, {o: reveals[o] for o in ["A", "B"]}, contributors, sum(w.values()))
    # The opening: the contributors' seeds and D's key, with which anyone removes the masks again.
    _, opening = secagg.unmask(masked_sum, reveals, round_number=1, aggregator="A", secrets_=m.secrets["A"],
                               bundles=m.bundles, share_keys=m.share_keys, mask_keys=m.mask_keys,
                               contributors=contributors, weight=sum(w.values()), threshold=3)
    header, seeds, keys = secagg.mask_opening_from_bytes(opening)
    assert sorted(seeds) == contributors and sorted(keys) == ["D"]
    assert header["sum"] == sha256_hex(masked_sum) and header["result"] == sha256_hex(result)
    assert secagg.remove_masks(masked_sum, seeds, keys, m.mask_keys, round_number=1,
                               weight=sum(w.values())) == result


def test_a_contributor_that_drops_after_sending_is_recovered_from_the_others(updates):
    m = Masking(threshold=2)
    sealed = m.seal(updates, ORGS)
    w = weights(updates)
    masked_sum = secagg.sum_masked(sealed, round_number=1, weights=w, participants=ORGS)
    reveals = m.reveal(["A", "B"], ORGS)  # C and D sent their masked inputs, then went away
    result = m.unmask(masked_sum, reveals, ORGS, sum(w.values()))
    assert secagg.result_from_bytes(result, 1, ORGS, sum(w.values())) == reference(updates, ORGS)


def test_reveals_follow_the_recorded_contributor_set(updates):
    """A member reveals a self-mask seed share or a mask-key share for each member, never both."""
    m = Masking(threshold=2)
    contributors = ["A", "B", "C"]
    reveal = m.reveal(["B"], contributors)["B"]
    header, sealed = secagg.unpack(reveal, "share-reveal")
    body = json.loads(secagg.masking.open_share(
        m.secrets["A"].share_key, m.share_keys["B"], 1, "B", "A", sealed))
    assert sorted(body["self_seeds"]) == contributors and sorted(body["mask_keys"]) == ["D"]
    with pytest.raises(CryptoError, match="does not decrypt"):  # sealed to the aggregator only
        secagg.masking.open_share(m.secrets["C"].share_key, m.share_keys["B"], 1, "B", "A", sealed)
    masked_sum = secagg.sum_masked(m.seal(updates, contributors), round_number=1,
                                   weights={o: updates[o][1] for o in contributors}, participants=ORGS)
    with pytest.raises(IntegrityError, match="contributors"):  # reveals made for another set are refused
        m.unmask(masked_sum, m.reveal(["A", "B"], ORGS), contributors, sum(updates[o][1] for o in contributors))
