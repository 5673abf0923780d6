"""Parties A and B of the paper's Fig. 3 (collaborator C is in ``collaborator.py``), each one object with one ``run``.

Message flow (``X>Y:kind``; docs/vertical.md has the full table):

setup        B>A:hello B>C:hello  A>B:ready C>B:ready
alignment    A<>B:psi.blind  A<>B:psi.double   (ledger: B OpenSession, B and A ApproveAlignment)
             B>A:aligned (training rows)  A>C:approved B>C:approved  (ledger: C PublishKey)
             C>A:key C>B:key              (A and B check the key against its fingerprint on the ledger)
iteration t  A>B:u      [[u_A]] and [[loss part of A]]
             B>A:d      [[d]] = [[u_A]] + [[u_B - k y]]  (B's own fresh encryption: A cannot strip it)
             B>C:loss   [[loss]] = [[A's part]] + sum_i [[u_A,i]] w_i + B's part
             A>C:grad   [[X_A^T d, packed]] + mask R_A     B>C:grad  likewise with R_B
             C>A:result C>B:result  masked gradients (decrypted) and the loss
             (ledger: every party records the digests of its messages and the loss)
finish       A>B:done  (ledger: A and B CommitModel, B FinishSession)  B>A:finished B>C:finished
prediction   B>A:predict  A>B:predict.u  B>C:predict.z ([[u_A + u_B + R]])  C>B:predict.result
             B>A:bye B>C:bye

A never holds a value of B's (features, labels, parameters, residuals) other
than under C's key; B never holds one of A's other than under C's key; C
decrypts only the loss and values masked with a uniform element of the
plaintext ring. Any failure aborts the session: the peers are told why, and a
session opened on the ledger is marked aborted with that reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from blockfedml.errors import BlockFedMLError, IntegrityError, InvalidInputError, NotAuthorizedError
from blockfedml.ml.serialization import params_to_bytes
from blockfedml.store import ModelStore, sha256_hex
from blockfedml.vertical import protocol as P
from blockfedml.vertical.he import (
    RANDOMNESS, PaillierPublicKey, PaillierScheme, PlainScheme, Scheme, centered, unpack_signed,
)
from blockfedml.vertical.ledger import VerticalLedger
from blockfedml.vertical.psi import align
from blockfedml.vertical.transport import DEFAULT_TIMEOUT, ROLE_NAMES, Endpoint, Link, SessionAborted

@dataclass
class PartyResult:
    """What one party saw of a session (it keeps its own model part to itself)."""

    role: str
    session: str = ""
    alignment_size: int = 0
    transcript: str = ""
    iterations: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)   # wall time of each iteration
    ledger_seconds: float = 0.0
    precompute_seconds: float = 0.0                       # random factors made before iteration 1
    model_digest: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)


class _Party:
    role = ""

    def __init__(self, endpoint: Endpoint, ledger: VerticalLedger | None = None, msp_id: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if endpoint.party != self.role:
            raise InvalidInputError(f"{ROLE_NAMES[self.role]} needs its own endpoint, got {endpoint.party}'s")
        self.endpoint, self.ledger, self.msp_id = endpoint, ledger, msp_id
        self.link = Link(endpoint, None, timeout)
        self.result = PartyResult(self.role)
        self.settings: P.VerticalSettings | None = None

    @property
    def name(self) -> str:
        return ROLE_NAMES[self.role]

    def _guarded(self, body: Callable[[], None]) -> PartyResult:
        try:
            body()
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self.result.session = self.link.session or ""
        return self.result

    def _fail(self, exc: BaseException) -> None:
        """Mark the session aborted on the ledger (first, so the record names the party that found
        the problem), then tell the peers why, passing a peer's abort on, so nobody waits for a
        message that will never come."""
        reason = str(exc) if isinstance(exc, SessionAborted) else f"{self.name}: {type(exc).__name__}: {exc}"
        if self.ledger is not None and self.link.session:
            try:
                self.ledger.abort(self.link.session, reason)
            except BlockFedMLError:  # not opened (yet), already aborted, or the ledger is the problem
                pass
        self.link.abort(reason)

    def _ledger(self, method: str, *args: Any) -> Any:
        if self.ledger is None:
            return None
        start = time.perf_counter()
        try:
            return getattr(self.ledger, method)(*args)
        finally:
            self.result.ledger_seconds += time.perf_counter() - start

    def _commit(self, iteration: int, loss_int: int, n: int) -> None:
        assert self.settings is not None
        loss = P.loss_fixed_point(loss_int, self.settings.frac_bits, n)
        self._ledger("commit_iteration", self.link.session, iteration, loss, self.link.take_digests())

    def _check_parties(self, parties: Any) -> dict[str, str]:
        if not isinstance(parties, dict) or sorted(parties) != ["A", "B", "C"]:
            raise InvalidInputError(f"the hello of party B names the parties {parties!r}, not A, B and C")
        if self.msp_id is not None and parties[self.role] != self.msp_id:
            raise NotAuthorizedError(f"session names {parties[self.role]} as {self.name}, but this is {self.msp_id}")
        return parties

    def _expect_key(self) -> Scheme:
        """C's public key, checked against the fingerprint C published on the ledger."""
        message = self.link.recv("C", "key")
        raw = message.blob("key", "collaborator C")
        scheme: Scheme = PlainScheme() if raw == b"plain" else PaillierScheme(PaillierPublicKey.from_bytes(raw),
                                                                             self.randomness)
        if self.settings is not None and scheme.name != self.settings.encryption:
            raise InvalidInputError(f"collaborator C sent a {scheme.name} key for a {self.settings.encryption} session")
        if self.ledger is not None:
            on_chain = self._ledger("session", self.link.session)["key_fingerprint"]
            if on_chain != scheme.fingerprint:
                raise IntegrityError(f"the key collaborator C sent has fingerprint {scheme.fingerprint}, "
                                     f"but C published {on_chain} on the ledger")
        return scheme

    randomness = RANDOMNESS


class _Learner(_Party):
    """What A and B share: their standardized features, parameters and the masked-gradient round trip."""

    def __init__(self, endpoint: Endpoint, data: Any, ledger: VerticalLedger | None = None,
                 store: ModelStore | None = None, msp_id: str | None = None, randomness: str = RANDOMNESS,
                 timeout: float = DEFAULT_TIMEOUT, psi_workers: int = 1, precompute: int = 0) -> None:
        super().__init__(endpoint, ledger, msp_id, timeout)
        self.data, self.store, self.randomness, self.psi_workers = data, store, randomness, psi_workers
        self.precompute = precompute  # iterations' worth of random factors to make before training
        self.scheme: Scheme = PlainScheme()

    def _setup(self, rows: np.ndarray, intercept: bool) -> None:
        assert self.settings is not None
        s = self.settings
        raw = self.data.X[rows]
        self.mean, self.scale = P.standardize(raw)
        self.intercept = intercept
        self.X = self._transform(raw)
        self.n, self.m = self.X.shape
        self.Xq = P.encode(self.X, s.feature_frac_bits, s.feature_frac_bits + 20, f"{self.name}'s features")
        self.theta = np.zeros(self.m)
        self.reg = np.ones(self.m)
        if intercept:
            self.reg[-1] = 0.0  # the intercept is not penalized
        self.slot = P.slot_bits(self.n, s, int(np.abs(self.Xq).max()))
        P.check_ring(self.scheme.ring_bits(), self.n, s, self.slot, self.name)
        self.objective = P.OBJECTIVES[s.model]
        if self.precompute:
            started = time.perf_counter()
            self.scheme.precompute((self.n + 1) * min(self.precompute, s.max_iterations))
            self.result.precompute_seconds = time.perf_counter() - started

    def _transform(self, raw: np.ndarray) -> np.ndarray:
        X = (raw - self.mean) / self.scale
        return np.hstack([X, np.ones((len(X), 1))]) if self.intercept else X

    def _send_gradient(self, d: Any, iteration: int) -> list[int]:
        """Send [[X^T d]] packed and masked to C; return the masks."""
        packed = self.scheme.pack(self.scheme.matvec(d, self.Xq), self.slot)
        masks = self.scheme.masks(self.scheme.length(packed))
        masked = self.scheme.add_plain(packed, masks)
        self.link.send("C", "grad", iteration, blobs={"cipher": self.scheme.to_bytes(masked)})
        return masks

    def _receive_result(self, iteration: int, masks: list[int]) -> int:
        """Unmask C's answer, take the gradient step; return the decrypted loss integer."""
        s = self.settings
        assert s is not None
        message = self.link.recv("C", "result", iteration)
        width, modulus = self.scheme.plain_width(), self.scheme.modulus
        raw = message.blob("values", "collaborator C")
        if len(raw) != width * len(masks):
            raise InvalidInputError(f"collaborator C returned {len(raw)} bytes for {len(masks)} masked values")
        per, values = self.scheme.slots(self.slot), []
        for k, mask in enumerate(masks):
            value = int.from_bytes(raw[k * width:(k + 1) * width], "big")
            count = min(per, self.m - k * per)
            values += unpack_signed(centered(value - mask, modulus), count, self.slot)
        scale = self.objective.grad_scale / (float(1 << (s.frac_bits + s.feature_frac_bits)) * self.n)
        gradient = np.array(values, dtype=np.float64) * scale + s.l2 * self.reg * self.theta
        self.theta = self.theta - s.learning_rate * gradient
        return message.int_meta("loss", "collaborator C")

    def _model_bytes(self, extra: Sequence[float] = ()) -> bytes:
        assert self.settings is not None
        vector = np.concatenate([self.theta, self.mean, self.scale, np.asarray(extra, dtype=np.float64)])
        meta = {"kind": "vertical-part", "session": self.link.session, "party": self.role,
                "model": self.settings.model, "columns": list(self.data.columns), "intercept": int(self.intercept)}
        return params_to_bytes(vector, meta)

    def _save_model(self, extra: Sequence[float] = ()) -> str:
        blob = self._model_bytes(extra)
        digest = self.store.put(blob) if self.store is not None else sha256_hex(blob)
        self._ledger("commit_model", self.link.session, digest)
        self.result.model_digest = digest
        return digest

    def _record(self, iteration: int, loss_int: int, started: float) -> None:
        assert self.settings is not None
        self.result.iterations = iteration
        self.result.losses.append(loss_int / float(1 << (2 * self.settings.frac_bits)) / self.n)
        self.result.seconds.append(time.perf_counter() - started)


class PartyA(_Learner):
    """Holds some features of the entities; no labels."""

    role = "A"

    def run(self) -> PartyResult:
        return self._guarded(self._run)

    def _run(self) -> None:
        hello = self.link.recv("B", "hello")
        self._check_parties(hello.meta.get("parties"))
        self.settings = P.VerticalSettings.from_dict(hello.meta.get("settings"))
        self.link.send("B", "ready")
        alignment = align(self.link, self.data.ids, self.psi_workers)
        self.aligned = alignment.ids
        self.result.alignment_size, self.result.transcript = alignment.size, alignment.transcript
        positions = _positions(self.link.recv("B", "aligned").blob("rows", "party B"), alignment.size)
        self._ledger("approve_alignment", self.link.session, alignment.size, alignment.transcript)
        self.link.send("C", "approved")
        self.scheme = self._expect_key()
        self._setup(self.data.rows([self.aligned[i] for i in positions]), intercept=False)
        self.link.take_digests()
        self._train()
        self._save_model()
        self.link.send("B", "done")
        self.link.recv("B", "finished")
        self._serve()

    def _train(self) -> None:
        s, previous, iteration = self.settings, None, 0
        assert s is not None
        while True:
            iteration += 1
            started = time.perf_counter()
            u = self.X @ self.theta
            uq = P.encode(u, s.frac_bits, s.frac_bits + s.int_bits, "A's partial predictions")
            part = self.objective.a_coef * float(u @ u) + self.n * s.l2 / 2 * float(self.theta @ self.theta)
            part_q = P.encode_scalar(part, 2 * s.frac_bits, self.scheme.ring_bits() - 3, "A's loss part")
            cipher = self.scheme.encrypt(uq)
            self.scheme.prepare(self.n + 1)  # the next iteration's random factors, while B and C work
            self.link.send("B", "u", iteration, blobs={
                "cipher": self.scheme.to_bytes(cipher),
                "loss": self.scheme.to_bytes(self.scheme.encrypt(np.array([part_q])))})
            d = self.scheme.from_bytes(self.link.recv("B", "d", iteration).blob("cipher", "party B"),
                                       self.n, "the encrypted residuals from party B")
            masks = self._send_gradient(d, iteration)
            loss = self._receive_result(iteration, masks)
            self._commit(iteration, loss, self.n)
            self._record(iteration, loss, started)
            if s.converged(iteration, loss, previous):
                return
            previous = loss

    def _serve(self) -> None:
        """Answer B's prediction requests with encrypted partial predictions until B says bye."""
        assert self.settings is not None
        request = 0
        while True:
            message = self.link.recv("B", ("predict", "bye"), request + 1)
            if message.kind == "bye":
                return
            request += 1
            positions = _positions(message.blob("rows", "party B"), len(self.aligned))
            rows = self.data.rows([self.aligned[i] for i in positions])
            u = self._transform(self.data.X[rows]) @ self.theta
            s = self.settings
            uq = P.encode(u, s.frac_bits, s.frac_bits + s.int_bits, "A's partial predictions")
            self.link.send("B", "predict.u", request, blobs={"cipher": self.scheme.to_bytes(self.scheme.encrypt(uq))})


class PartyB(_Learner):
    """Holds the other features and the labels; opens the session, decides the training rows, predicts."""

    role = "B"

    def __init__(self, endpoint: Endpoint, data: Any, session: str, parties: dict[str, str],
                 settings: P.VerticalSettings, ledger: VerticalLedger | None = None, store: ModelStore | None = None,
                 msp_id: str | None = None, randomness: str = RANDOMNESS, timeout: float = DEFAULT_TIMEOUT,
                 psi_workers: int = 1, test_ids: Sequence[Any] = (), precompute: int = 0) -> None:
        super().__init__(endpoint, data, ledger, store, msp_id, randomness, timeout, psi_workers, precompute)
        if data.y is None:
            raise InvalidInputError("party B holds the labels: its data needs a label column")
        self.settings, self.parties, self.test_ids = settings, self._check_parties(parties), list(test_ids)
        self.link.session = session
        self.requests = 0

    def run(self) -> PartyResult:
        return self._guarded(self._run)

    def _run(self) -> None:
        s, session = self.settings, self.link.session
        assert s is not None and session is not None
        labels = _labels(self.data.y, s.model)
        hello = {"parties": self.parties, "settings": s.to_dict()}
        self.link.send("A", "hello", meta=hello)
        self.link.send("C", "hello", meta=hello)
        self.link.recv("A", "ready")
        self.link.recv("C", "ready")
        alignment = align(self.link, self.data.ids, self.psi_workers)
        self.aligned = alignment.ids
        self.result.alignment_size, self.result.transcript = alignment.size, alignment.transcript
        held_out = set(self.test_ids)
        positions = [i for i, v in enumerate(self.aligned) if v not in held_out]
        if not positions:
            raise InvalidInputError("every aligned entity is held out for testing: nothing to train on")
        self._ledger("open_session", session, self.parties, s.to_dict())
        self._ledger("approve_alignment", session, alignment.size, alignment.transcript)
        self.link.send("A", "aligned", blobs={"rows": np.asarray(positions, dtype="<u4").tobytes()})
        self.link.send("C", "approved", meta={"entities": len(positions)})
        self.scheme = self._expect_key()
        rows = self.data.rows([self.aligned[i] for i in positions])
        self._setup(rows, intercept=True)
        y = labels[rows]
        self.y_mean, self.y_scale = (float(y.mean()), float(y.std() or 1.0)) if s.model == "linear" else (0.0, 1.0)
        self.y = (y - self.y_mean) / self.y_scale
        self.link.take_digests()
        self._train()
        self.link.recv("A", "done")
        self._save_model(extra=[self.y_mean, self.y_scale])
        self._ledger("finish", session)
        self.link.send("A", "finished")
        self.link.send("C", "finished")
        test = [v for v in self.aligned if v in held_out]
        if test:
            self._evaluate(test, labels[self.data.rows(test)])
        self.link.send("A", "bye", self.requests + 1)
        self.link.send("C", "bye", self.requests + 1)

    def _train(self) -> None:
        s, obj, previous, iteration = self.settings, self.objective, None, 0
        assert s is not None
        limit = s.frac_bits + s.int_bits
        while True:
            iteration += 1
            started = time.perf_counter()
            u = self.X @ self.theta
            vq = P.encode(u - obj.label_factor * self.y, s.frac_bits, limit, "B's residuals u_B - k y")
            wq = P.encode(obj.cross_weight(u, self.y), s.frac_bits, limit, "B's loss weights")
            part = float(obj.b_part(u, self.y).sum()) + self.n * s.l2 / 2 * float((self.reg * self.theta) @ self.theta)
            part_q = P.encode_scalar(part, 2 * s.frac_bits, self.scheme.ring_bits() - 3, "B's loss part")
            fresh = self.scheme.encrypt(vq)  # ready before A's message arrives
            self.scheme.prepare(self.n)  # the next iteration's random factors, while A and C work
            message = self.link.recv("A", "u", iteration)
            u_a = self.scheme.from_bytes(message.blob("cipher", "party A"), self.n, "the encrypted predictions of A")
            loss_a = self.scheme.from_bytes(message.blob("loss", "party A"), 1, "the encrypted loss part of A")
            d = self.scheme.add(u_a, fresh)
            self.link.send("A", "d", iteration, blobs={"cipher": self.scheme.to_bytes(d)})
            cross = self.scheme.matvec(u_a, wq[:, None])
            loss = self.scheme.add_plain(self.scheme.add(loss_a, cross), [part_q])
            self.link.send("C", "loss", iteration, blobs={"cipher": self.scheme.to_bytes(loss)})
            masks = self._send_gradient(d, iteration)
            loss_int = self._receive_result(iteration, masks)
            self._commit(iteration, loss_int, self.n)
            self._record(iteration, loss_int, started)
            if s.converged(iteration, loss_int, previous):
                return
            previous = loss_int

    def predict(self, ids: Sequence[Any]) -> np.ndarray:
        """Scores z = u_A + u_B for aligned entities, in the order of ``ids``.

        A contributes its part encrypted, B adds its own and a uniform mask,
        C decrypts the masked sum: only B learns the scores.
        """
        s = self.settings
        assert s is not None
        index = {v: i for i, v in enumerate(self.aligned)}
        unknown = [v for v in ids if v not in index]
        if unknown or len(set(ids)) != len(ids) or not ids:
            raise InvalidInputError(f"predictions need distinct aligned IDs; not aligned: {unknown[:5]}")
        order = np.argsort([index[v] for v in ids])
        ordered = [ids[k] for k in order]
        self.requests += 1
        request = self.requests
        self.link.send("A", "predict", request, blobs={
            "rows": np.asarray([index[v] for v in ordered], dtype="<u4").tobytes()})
        u_b = self._transform(self.data.X[self.data.rows(ordered)]) @ self.theta
        uq = P.encode(u_b, s.frac_bits, s.frac_bits + s.int_bits, "B's partial predictions")
        u_a = self.scheme.from_bytes(self.link.recv("A", "predict.u", request).blob("cipher", "party A"),
                                     len(ids), "the encrypted partial predictions of A")
        masks = self.scheme.masks(len(ids))
        masked = self.scheme.add_plain(u_a, [int(q) + m for q, m in zip(uq, masks)])
        self.link.send("C", "predict.z", request, blobs={"cipher": self.scheme.to_bytes(masked)})
        raw = self.link.recv("C", "predict.result", request).blob("values", "collaborator C")
        width, modulus = self.scheme.plain_width(), self.scheme.modulus
        if len(raw) != width * len(ids):
            raise InvalidInputError(f"collaborator C returned {len(raw)} bytes for {len(ids)} predictions")
        z = np.empty(len(ids))
        for k, mask in enumerate(masks):
            value = centered(int.from_bytes(raw[k * width:(k + 1) * width], "big") - mask, modulus)
            z[order[k]] = value / float(1 << s.frac_bits)
        return z

    def _evaluate(self, ids: list[Any], truth: np.ndarray) -> None:
        assert self.settings is not None
        z = self.predict(ids)
        if self.settings.model == "linear":
            prediction = z * self.y_scale + self.y_mean
            mse = float(np.mean((prediction - truth) ** 2))
            self.result.metrics = {"test_mse": mse, "test_rmse": mse ** 0.5, "test_entities": float(len(ids))}
        else:
            prediction = P.sigmoid(z)
            accuracy = float(np.mean((prediction >= 0.5) == (truth > 0)))
            self.result.metrics = {"test_accuracy": accuracy, "test_entities": float(len(ids))}
        self.result.predictions = {str(v): float(p) for v, p in zip(ids, prediction)}


def _labels(y: np.ndarray, model: str) -> np.ndarray:
    """Linear: the target as is. Logistic: 0/1 (or -1/1) labels as -1/1."""
    if model == "linear":
        return y
    values = set(np.unique(y).tolist())
    if values <= {0.0, 1.0}:
        return 2.0 * y - 1.0
    if values <= {-1.0, 1.0}:
        return y.copy()
    raise InvalidInputError(f"logistic regression needs labels 0/1 (or -1/1); B's labels include "
                            f"{sorted(values - {0.0, 1.0, -1.0})[:5]}")


def _positions(raw: bytes, limit: int) -> list[int]:
    if len(raw) % 4:
        raise InvalidInputError("malformed list of rows from party B")
    positions = np.frombuffer(raw, dtype="<u4").astype(np.int64)
    if len(positions) == 0 or positions.max() >= limit or np.any(np.diff(positions) <= 0):
        raise InvalidInputError(f"party B named rows outside the {limit} aligned entities, or not in order")
    return positions.tolist()
