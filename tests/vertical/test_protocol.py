"""The A/B/C protocol end to end, in process: exactness, what each party sees, the ledger, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from blockfedml.crypto.encoding import EncodingOverflowError
from blockfedml.errors import CryptoError, ExchangeError, InvalidInputError
from blockfedml.vertical import audit as vaudit
from blockfedml.vertical.baseline import centralized
from blockfedml.vertical.data import PartyData, load_party_csv, save_party_csv, split_dataset
from blockfedml.vertical.ledger import VerticalLedger
from blockfedml.vertical.protocol import VerticalSettings
from blockfedml.vertical.session import create_vertical_consortium, party_store, run_in_process
from blockfedml.vertical.wire import Message

from .conftest import Recorder, synthetic


def settings(model="linear", encryption="paillier", **others):
    defaults = {"learning_rate": 0.3, "max_iterations": 3, "tolerance": 0.0}
    return VerticalSettings.of(model=model, encryption=encryption, **{**defaults, **others})


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    consortium = create_vertical_consortium(tmp_path_factory.mktemp("vertical") / "c")
    yield consortium
    consortium.close()


def auditor(consortium) -> VerticalLedger:
    return VerticalLedger(consortium.contract("Auditor"))


@pytest.mark.parametrize("model", ["linear", "logistic"])
def test_encrypted_training_reproduces_plain_training_bit_for_bit(keys, model):
    a, b, common = synthetic(model=model)
    test = common[::4]
    runs = {enc: run_in_process(a, b, settings(model, enc), test_ids=test, keys=keys,
                                precompute=2 if enc == "paillier" and model == "linear" else 0)
            for enc in ("plain", "paillier")}
    plain, paillier = runs["plain"], runs["paillier"]
    assert paillier.b.losses == plain.b.losses == paillier.a.losses == paillier.c.losses
    assert plain.b.losses[-1] < plain.b.losses[0]
    for party in "AB":
        assert np.array_equal(paillier.parties[party].theta, plain.parties[party].theta)
    assert paillier.b.predictions == plain.b.predictions and len(paillier.b.predictions) == len(test)
    assert paillier.a.alignment_size == paillier.b.alignment_size == len(common)
    assert (paillier.b.precompute_seconds > 0) == (model == "linear")  # random factors made before iteration 1


def test_each_party_sees_only_what_the_protocol_allows(keys, monkeypatch):
    a, b, common = synthetic(model="logistic")
    recorders: dict[str, Recorder] = {}
    decrypted: list[int] = []
    real_decrypt = type(keys).decrypt

    def spy(self, ciphertexts, what="ciphertexts"):  # everything C ever decrypts
        values = real_decrypt(self, ciphertexts, what)
        decrypted.extend(values)
        return values

    monkeypatch.setattr(type(keys), "decrypt", spy)
    run = run_in_process(a, b, settings("logistic"), test_ids=common[:5], keys=keys,
                         wrap=lambda e: recorders.setdefault(e.party, Recorder(e)))
    monkeypatch.undo()
    kinds = {p: {(sender, m.kind) for sender, m, _ in r.received} for p, r in recorders.items()}
    assert kinds["A"] == {("B", k) for k in ("hello", "psi.blind", "psi.double", "aligned", "d", "finished",
                                             "predict", "bye")} | {("C", "key"), ("C", "result")}
    assert kinds["B"] == {("A", k) for k in ("ready", "psi.blind", "psi.double", "u", "done", "predict.u")} | \
        {("C", k) for k in ("ready", "key", "result", "predict.result")}
    assert kinds["C"] == {("A", "approved"), ("A", "grad")} | {
        ("B", k) for k in ("hello", "approved", "loss", "grad", "finished", "predict.z", "bye")}

    # A and B never receive the other's features, labels or parameters, in any encoding
    secrets_of = {"A": [a.X, run.parties["A"].X, run.parties["A"].theta],
                  "B": [b.X, b.y, run.parties["B"].X, run.parties["B"].y, run.parties["B"].theta]}
    for party, other in (("A", "B"), ("B", "A")):
        received = b"".join(data for _, _, data in recorders[party].received)
        for array in secrets_of[other]:
            for value in np.asarray(array, dtype=np.float64).ravel():
                if value not in (0.0, 1.0, -1.0):
                    assert np.float64(value).tobytes() not in received

    # A cannot strip B's residuals out of [[d]]: B re-randomized them with its own fresh encryption
    n, n2 = int(keys.public.n), int(keys.public.nsquare)
    for sent_u, got_d in zip(recorders["A"].messages("u", "sent"), recorders["A"].messages("d")):
        width = keys.public.ciphertext_bytes
        us, ds = [[int.from_bytes(m.blobs["cipher"][i:i + width], "big") for i in range(0, len(m.blobs["cipher"]), width)]
                  for m in (sent_u, got_d)]
        for u, d in zip(us, ds):
            assert (d * pow(u, -1, n2) % n2 - 1) % n != 0  # not (1 + v n): the residual is still encrypted

    # C decrypts the loss in clear and otherwise only numbers masked uniformly mod n
    losses = sorted(round(loss * 2**32 * run.parties["B"].n) for loss in run.c.losses)
    assert sorted(v for v in decrypted if abs(v) < 2**80) == losses
    assert all(abs(v) > 2**1900 for v in decrypted if abs(v) >= 2**80)
    assert len(decrypted) == 3 * run.c.iterations + 5  # loss + one packed gradient each for A, B; 5 scores


def test_a_session_is_recorded_on_the_ledger_and_passes_the_audit(keys, consortium):
    a, b, common = synthetic(seed=3)
    run = run_in_process(a, b, settings(max_iterations=4), consortium=consortium, session="ledger-ok",
                         test_ids=common[:6], keys=keys)
    ledger = auditor(consortium)
    record = ledger.session("ledger-ok")
    assert record["phase"] == "finished" and record["iterations"] == 4
    assert record["alignment"] == {"size": len(common), "transcript": run.a.transcript}
    assert record["key_fingerprint"] == keys.public.fingerprint
    assert record["models"] == {"A": run.a.model_digest, "B": run.b.model_digest}
    assert record["final_loss"] == int(run.c.losses[-1] * 1_000_000)
    stores = {"A": party_store(consortium, "Org1"), "B": party_store(consortium, "Org2")}
    report = vaudit.verify_session(ledger, "ledger-ok", stores)
    assert report.ok, report.problems
    assert report.models_checked == ["A", "B"] and report.iterations == 4
    # a swapped model part is found
    path = stores["A"].path(run.a.model_digest)
    original = path.read_bytes()
    path.write_bytes(original[:-8] + bytes(8))
    try:
        assert "model part of A" in " ".join(vaudit.verify_session(ledger, "ledger-ok", stores).problems)
    finally:
        path.write_bytes(original)


def test_an_unreachable_collaborator_fails_before_anything_is_written(consortium):
    a, b, _ = synthetic()
    before = auditor(consortium).sessions()
    with pytest.raises(ExchangeError, match="collaborator C"):
        run_in_process(a, b, settings(encryption="plain"), consortium=consortium, session="no-c",
                       absent=("C",), timeout=1.0)
    assert auditor(consortium).sessions() == before


class Tamper(Recorder):
    """Replaces the first ciphertext of B's second [[d]] message with zeros."""

    def send(self, to, data):
        message = Message.from_bytes(data)
        if message.kind == "d" and message.iteration == 2:
            cipher = bytearray(message.blobs["cipher"])
            cipher[:512] = bytes(512)
            data = Message(message.kind, message.session, message.iteration, message.meta,
                           {**message.blobs, "cipher": bytes(cipher)}).to_bytes()
        super().send(to, data)


def test_a_malformed_ciphertext_aborts_the_session_and_leaves_no_half_state(keys, consortium):
    a, b, _ = synthetic(seed=4)
    with pytest.raises(CryptoError, match="encrypted residuals from party B"):
        run_in_process(a, b, settings(), consortium=consortium, session="tampered", keys=keys, timeout=20.0,
                       wrap=lambda e: Tamper(e) if e.party == "B" else e)
    ledger = auditor(consortium)
    record = ledger.session("tampered")
    assert record["phase"] == "aborted" and record["abort"]["party"] == "A"
    assert "not a ciphertext" in record["abort"]["reason"]
    assert record["models"] == {} and ledger.models("tampered") == {}
    assert {(r["iteration"], r["party"]) for r in ledger.iterations("tampered")} == {(1, "A"), (1, "B"), (1, "C")}
    assert not vaudit.verify_session(ledger, "tampered").ok


@pytest.mark.parametrize("case, error, message", [
    ("id types", InvalidInputError, "mismatched ID types"),
    ("disjoint", InvalidInputError, "no common IDs"),
    ("labels", InvalidInputError, "labels 0/1"),
])
def test_bad_data_is_refused_before_the_ledger_is_touched(consortium, case, error, message):
    a, b, _ = synthetic(model="logistic")
    model = "logistic"
    if case == "id types":
        a = PartyData([int(i.split("-")[1]) for i in a.ids], a.X, a.columns)
    elif case == "disjoint":
        a = PartyData([f"other-{i}" for i in a.ids], a.X, a.columns)
    else:
        b = PartyData(b.ids, b.X, b.columns, b.y * 3)
    before = auditor(consortium).sessions()
    with pytest.raises(error, match=message):
        run_in_process(a, b, settings(model, "plain"), consortium=consortium, session=f"bad-{case.split()[0]}",
                       timeout=5.0)
    assert auditor(consortium).sessions() == before


def test_divergence_is_a_clear_error_and_aborts_the_session(consortium):
    a, b, _ = synthetic(seed=5)
    with pytest.raises(EncodingOverflowError, match="lower the learning rate"):
        run_in_process(a, b, settings(encryption="plain", learning_rate=9.0, max_iterations=60),
                       consortium=consortium, session="diverged")
    assert auditor(consortium).session("diverged")["phase"] == "aborted"


def test_non_numeric_features_are_named_by_row_and_column(tmp_path):
    with pytest.raises(InvalidInputError, match="numeric"):
        PartyData(["a", "b"], np.array([["1", "x"], ["2", "3"]], dtype=object), ("f", "g"))
    a, _, _ = synthetic()
    path = save_party_csv(a, tmp_path / "a.csv")
    assert load_party_csv(path).ids == a.ids
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",n/a"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=r"row 4, column 'a2': 'n/a' is not a number"):
        load_party_csv(path)


@pytest.mark.parametrize("name", ["diabetes", "breast_cancer"])
def test_the_demo_datasets_reach_centralized_quality(name):
    """Plain ring (bit-identical to Paillier, see above) to convergence on the full datasets."""
    split = split_dataset(name)
    chosen = settings(split.model, "plain", learning_rate=0.4 if name == "diabetes" else 0.5,
                      max_iterations=400, tolerance=1e-6)
    run = run_in_process(split.a, split.b, chosen, test_ids=split.test_ids)
    reference = centralized(split, chosen)
    if name == "diabetes":
        assert abs(run.b.metrics["test_mse"] / reference["test_mse"] - 1) < 0.01
        assert abs(run.b.losses[-1] / reference["optimum_loss"] - 1) < 0.01
    else:
        assert run.b.metrics["test_accuracy"] >= reference["test_accuracy"] - 0.011  # one of 93 entities
