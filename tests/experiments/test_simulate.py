"""Fast checks of the theory simulation (hora.experiments.simulate*)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hora.experiments.simulate import METRICS, Regime, SimulationConfig, make_truth, run_simulation
from hora.experiments.simulate_fit import lbfgs
from hora.experiments.simulate_model import (
    Dims,
    attention,
    flatten,
    hora_head_factors,
    make_base,
    make_data,
    n_params,
    unflatten,
    updates,
)
from hora.experiments.simulate_stats import fit_slope

DIMS = Dims(d=6, L=3, H=2, d_h=3, r=1, p=4)
DTYPE = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """Small batched ops run fastest on one thread (see run_simulation)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def problem():
    gen = torch.Generator().manual_seed(0)
    base = make_base(DIMS, gen, DTYPE)
    truth = make_truth(Regime("R", "test", true_rank=1), DIMS, 2.0, gen, DTYPE)
    data = make_data(base, 2, 200, DIMS, gen)
    return base, truth, data


def test_shapes_and_zero_head(problem):
    base, truth, data = problem
    assert data.x.shape == (2, 200, DIMS.L, DIMS.d)
    assert truth.shape == (1, 2, DIMS.H, DIMS.d_h, DIMS.d)
    y = attention(truth.expand(2, -1, -1, -1, -1), base, data)
    assert y.shape == (2, 200, 1, DIMS.H * DIMS.d_h)
    zero = make_truth(Regime("Z", "test", true_rank=1, zero_heads=(1,)), DIMS, 2.0, torch.Generator(), DTYPE)
    assert zero[:, :, 1].abs().max() == 0 and zero[:, :, 0].abs().max() > 0


def test_attention_matches_reference(problem):
    """The batched layer equals a per-head softmax(q.k / sqrt(d_h)) weighted sum of values."""
    base, truth, data = problem
    x = data.x[0]
    wq, wv = base.wq + truth[0, 0], base.wv + truth[0, 1]
    heads = []
    for h in range(DIMS.H):
        scores = torch.einsum("nle,ne->nl", x @ base.wk[h].T, x[:, 0] @ wq[h].T) / DIMS.d_h**0.5
        heads.append(torch.einsum("nl,nle->ne", scores.softmax(dim=1), x @ wv[h].T))
    expected = torch.cat(heads, dim=1)
    got = attention(truth.expand(2, -1, -1, -1, -1), base, data)[0, :, 0]
    torch.testing.assert_close(got, expected)


def test_true_parameters_reproduce_noiseless_target(problem):
    """A target made by HoRA parameters is reproduced exactly by them and by LoRA with B = g(S)."""
    base, _, data = problem
    theta = torch.randn(1, n_params("hora", DIMS), generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    prm = unflatten(theta, "hora", DIMS)
    target = attention(updates(theta, "hora", DIMS).expand(2, -1, -1, -1, -1), base, data)
    lora = flatten({"A": prm["A"], "B": hora_head_factors(prm["S"], prm["W1"], prm["W2"])}, "lora", DIMS)
    for kind, th in (("hora", theta), ("lora", lora)):
        fit = attention(updates(th, kind, DIMS).expand(2, -1, -1, -1, -1), base, data)
        assert float((fit - target).abs().max()) < 1e-12


@pytest.mark.parametrize("kind", ["lora", "hora"])
def test_estimators_recover_truth_noiseless(problem, kind):
    base, truth, data = problem
    y = attention(truth.expand(2, -1, -1, -1, -1), base, data)
    theta0 = 0.1 * torch.randn(2, n_params(kind, DIMS), generator=torch.Generator().manual_seed(2), dtype=DTYPE)

    def loss(theta):
        return ((attention(updates(theta, kind, DIMS), base, data) - y) ** 2).mean(dim=(1, 3)).reshape(-1)

    theta = lbfgs(loss, theta0, max_iter=300)
    err = (updates(theta, kind, DIMS) - truth).pow(2).sum(dim=(1, 2, 3, 4)).sqrt()
    assert float(err.max()) < 1e-3 * float(truth.norm())


def test_fit_slope_recovers_known_slope():
    rng = np.random.default_rng(0)
    sizes = 2.0 ** np.arange(7, 15)
    errors = 3.0 * sizes[:, None] ** -0.5 * rng.lognormal(0.0, 0.2, size=(sizes.size, 20))
    fit = fit_slope(sizes, errors, n_boot=500, rng=rng)
    assert fit["ci_low"] < -0.5 < fit["ci_high"]
    assert abs(fit["slope"] + 0.5) < 0.05 and fit["ci_high"] - fit["ci_low"] < 0.2


def test_run_simulation_writes_json_and_png(tmp_path):
    cfg = SimulationConfig(dims=DIMS, sample_sizes=(64, 128), replications=3, max_iter=10, n_test=256,
                           fit_from=64, n_boot=50)
    result = run_simulation(tmp_path, seed=3, config=cfg, progress=False)
    saved = json.loads((tmp_path / "simulation.json").read_text())
    assert saved["config"]["seed"] == 3 and saved["config"]["sample_sizes"] == [64, 128]
    assert set(saved["regimes"]) == {"R1", "R2"}
    for reg in saved["regimes"].values():
        for est in ("lora", "hora"):
            assert set(reg["estimators"][est]["metrics"]) == set(METRICS)
            for m in reg["estimators"][est]["metrics"].values():
                assert len(m["mean"]) == len(m["sem"]) == 2
                assert all(np.isfinite([m["slope"], m["ci_low"], m["ci_high"]]))
    assert (tmp_path / "simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["regimes"]["R1"]["estimators"]["lora"]["n_params"] == n_params("lora", DIMS)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
