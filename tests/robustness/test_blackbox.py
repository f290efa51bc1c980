"""HopSkipJump / Boundary against a real ONNX Runtime session of the exported digits CNN."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgebench.backends.onnxruntime import OnnxRuntimeBackend
from edgebench.backends.options import BackendOptions
from edgebench.errors import EdgebenchError
from edgebench.export.onnx import export_onnx
from edgebench.robustness.attacks import distances
from edgebench.robustness.blackbox import BlackBoxSpec, run_blackbox


class CountingEngine:
    """The ORT session as a query function, counting every row the engine is asked about."""

    def __init__(self, backend: OnnxRuntimeBackend) -> None:
        self.backend = backend
        self.name = backend.input_specs()[0].name
        self.rows = 0
        self.calls = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.rows += len(x)
        self.calls += 1
        return self.backend.infer({self.name: x})[0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.backend.infer({self.name: x})[0].argmax(1)


@pytest.fixture(scope="module")
def engine(digits_model, tmp_path_factory):
    path = export_onnx(digits_model, tmp_path_factory.mktemp("bb") / "digits.onnx", (1, 1, 8, 8))
    with OnnxRuntimeBackend(str(path), BackendOptions(threads=1)) as be:
        yield be


def test_hsj_respects_budget_and_shrinks_distance(engine, eval_batch):
    x, y = eval_batch
    x, y = x[:12], y[:12]
    q = CountingEngine(engine)
    spec = BlackBoxSpec("hsj", max_queries=150, gradient_queries=10, epsilons=(0.5, 1.0, 2.0, 4.0), batch_size=8)
    r = run_blackbox(q, x, y, spec, seed=0)
    # exact accounting: every row the engine saw is counted, and no sample exceeds its budget
    assert r.queries.sum() == q.rows
    assert r.queries.max() <= 150
    attacked = r.attacked & r.clean_correct
    assert attacked.sum() >= 10
    assert np.all(r.queries[attacked] == 150) and r.budget_exhausted[attacked].all()
    # every reported adversarial is confirmed by the engine, at the reported distance
    found = np.isfinite(r.distances) & r.clean_correct
    assert found[attacked].all()
    pred = q.predict(r.x_adv[found])
    assert np.all(pred != y[found]) and np.all(pred == r.adv_predictions[found])
    np.testing.assert_allclose(r.distances[found], distances(x[found], r.x_adv[found], "l2"), rtol=1e-5)
    # the attack walks towards the inputs: distances shrink as queries are spent
    meds = [d for _, d in r.history if d is not None]
    assert meds == sorted(meds, reverse=True)
    assert meds[-1] < 0.8 * meds[0]
    # success grows with epsilon, accuracy falls
    rates = [row["success_rate"] for row in r.summary()["rows"]]
    assert rates == sorted(rates) and rates[-1] > rates[0]
    s = r.summary()
    assert s["queries_total"] == q.rows and s["budget_exhausted"] == int(attacked.sum())
    per = json.loads(json.dumps({**s, "samples": r.per_sample()}, allow_nan=False))["samples"]
    assert per["queries"] == r.queries.tolist() and per["distances"][0] == pytest.approx(float(r.distances[0]))


def test_more_budget_gives_smaller_distances(engine, eval_batch):
    x, y = eval_batch
    x, y = x[12:20], y[12:20]
    small = run_blackbox(CountingEngine(engine), x, y, BlackBoxSpec(max_queries=40, gradient_queries=10))
    large = run_blackbox(CountingEngine(engine), x, y, BlackBoxSpec(max_queries=200, gradient_queries=10))
    ok = small.clean_correct & np.isfinite(small.distances)
    assert np.all(large.distances[ok] <= small.distances[ok] + 1e-6)
    assert np.median(large.distances[ok]) < np.median(small.distances[ok])


def test_explicit_pool_and_boundary(engine, digits, eval_batch):
    x, y = eval_batch
    _, _, x_te, y_te = digits
    q = CountingEngine(engine)
    r = run_blackbox(
        q,
        x[:6],
        y[:6],
        BlackBoxSpec("boundary", max_queries=60, batch_size=6),
        pool_x=x_te[100:140],
        pool_y=y_te[100:140],
    )
    assert r.pool_queries == 40 and r.queries.sum() + 40 == q.rows
    assert r.queries.max() <= 60
    found = np.isfinite(r.distances) & r.clean_correct
    assert found.sum() >= 5 and np.all(q.predict(r.x_adv[found]) != y[:6][found])


def test_misclassified_inputs_cost_one_query_and_have_distance_zero(engine, digits, digits_model):
    import torch

    _, _, x_te, y_te = digits
    with torch.no_grad():
        wrong = np.flatnonzero(digits_model(torch.from_numpy(x_te)).argmax(1).numpy() != y_te)
    assert len(wrong) >= 1  # the model is good but not perfect on held-out digits
    idx = np.concatenate([wrong[:1], np.arange(3)])
    r = run_blackbox(CountingEngine(engine), x_te[idx], y_te[idx], BlackBoxSpec(max_queries=30, gradient_queries=5))
    assert r.distances[0] == 0.0 and r.queries[0] == 1 and not r.clean_correct[0]


def test_bad_specs_and_query_functions(engine, eval_batch):
    x, y = eval_batch
    with pytest.raises(
        EdgebenchError, match=r"unknown black-box attack 'nes'; expected one of \['boundary', 'hsj', 'square'\]"
    ):
        BlackBoxSpec("nes")
    with pytest.raises(EdgebenchError, match=r"boundary: norm 'linf' is not supported; expected one of \['l2'\]"):
        BlackBoxSpec("boundary", norm="linf")
    with pytest.raises(EdgebenchError, match="max_queries must be an integer >= 10"):
        BlackBoxSpec(max_queries=5)
    with pytest.raises(EdgebenchError, match="epsilons must be > 0"):
        BlackBoxSpec(epsilons=(0.0,))
    with pytest.raises(EdgebenchError, match=r"expected logits of shape \(4, classes\)"):
        run_blackbox(lambda a: np.zeros(len(a)), x[:4], y[:4], BlackBoxSpec())
    with pytest.raises(EdgebenchError, match="pool_x given without pool_y"):
        run_blackbox(CountingEngine(engine), x[:4], y[:4], BlackBoxSpec(), pool_x=x[4:8])
