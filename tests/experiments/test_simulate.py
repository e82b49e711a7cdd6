"""Fast checks of the theory simulation (hora.experiments.simulate*)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hora.experiments.simulate import (
    ESTIMATORS,
    METRICS,
    Regime,
    SimulationConfig,
    _fit,
    init_stds,
    make_truth,
    run_simulation,
)
from hora.experiments.simulate_fit import lbfgs
from hora.experiments.simulate_model import (
    N_PROJ,
    Dims,
    attention,
    flatten,
    hora_head_factors,
    joint_factors,
    local_dimension,
    make_base,
    make_data,
    n_params,
    param_shapes,
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


def test_joint_shapes_and_param_count():
    d, h, dh, r, p = DIMS.d, DIMS.H, DIMS.d_h, DIMS.r, DIMS.p
    assert param_shapes("joint", DIMS) == {"Abar": (r, d), "W1A": (p, r), "W2A": (N_PROJ, r, p),
                                           "S": (h, dh, r), "W1": (p, dh), "W2": (N_PROJ, dh, p)}
    # seeds shared by q and v: one set of H d_h r head seeds and one r x d free seed, not one per projection
    assert n_params("joint", DIMS) == r * d + p * r + 2 * r * p + h * dh * r + p * dh + 2 * dh * p == 60
    theta = torch.randn(3, n_params("joint", DIMS), generator=torch.Generator().manual_seed(4), dtype=DTYPE)
    b, a = joint_factors(unflatten(theta, "joint", DIMS))
    assert b.shape == (3, N_PROJ, h, dh, r) and a.shape == (3, N_PROJ, r, d)
    assert updates(theta, "joint", DIMS).shape == (3, N_PROJ, h, dh, d)
    with pytest.raises(ValueError, match="unknown parametrisation"):
        param_shapes("dora", DIMS)


def test_joint_updates_match_per_head_loop():
    """dW_P^h = W2_P gelu(W1 S_h) W2A_P gelu(W1A Abar), written out one fit, projection and head at a time."""
    dims = Dims(d=5, L=3, H=3, d_h=2, r=2, p=3)
    theta = torch.randn(2, n_params("joint", dims), generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    prm = unflatten(theta, "joint", dims)
    got = updates(theta, "joint", dims)
    gelu = torch.nn.functional.gelu
    for i in range(2):
        for proj in range(N_PROJ):
            a = prm["W2A"][i, proj] @ gelu(prm["W1A"][i] @ prm["Abar"][i])
            for h in range(dims.H):
                b = prm["W2"][i, proj] @ gelu(prm["W1"][i] @ prm["S"][i, h])
                torch.testing.assert_close(got[i, proj, h], b @ a)
    # the seeds are shared by q and v: moving one head's seed moves that head in both projections only
    moved = prm["S"].clone()
    moved[:, 1] += 1.0
    delta = updates(flatten({**prm, "S": moved}, "joint", dims), "joint", dims) - got
    assert float(delta[:, 0, 1].abs().max()) > 0.1 and float(delta[:, 1, 1].abs().max()) > 0.1
    assert float(delta[:, :, [0, 2]].abs().max()) == 0.0


def test_local_dimension():
    """LoRA reaches P (r d + H d_h r - r^2) update directions; a joint form narrower than the layer fewer."""
    gen = torch.Generator().manual_seed(6)
    lora = local_dimension("lora", DIMS, gen)
    assert lora == N_PROJ * (DIMS.r * DIMS.d + DIMS.H * DIMS.d_h * DIMS.r - DIMS.r**2) == 22
    assert local_dimension("hora", DIMS, gen) == lora  # the residual generator reaches every B
    dims = Dims()  # the simulation's layer, r = 2
    assert local_dimension("joint", dims, gen) == local_dimension("lora", dims, gen) == 56
    assert local_dimension("joint", Dims(p=2), gen) == 34 < 56


def _init(kind: str, dims: Dims, fits: int, seed: int) -> torch.Tensor:
    """Random start (fits, n_params) with the simulation's per-kind scales."""
    gen, shapes = torch.Generator().manual_seed(seed), param_shapes(kind, dims)
    return flatten({name: std * torch.randn(fits, *shapes[name], generator=gen, dtype=DTYPE)
                    for name, std in init_stds(kind, dims, 0.1).items()}, kind, dims)


@pytest.mark.parametrize("kind", ["lora", "hora"])
def test_estimators_recover_truth_noiseless(problem, kind):
    base, truth, data = problem
    y = attention(truth.expand(2, -1, -1, -1, -1), base, data)
    theta0 = _init(kind, DIMS, 2, 2)

    def loss(theta):
        return ((attention(updates(theta, kind, DIMS), base, data) - y) ** 2).mean(dim=(1, 3)).reshape(-1)

    theta = lbfgs(loss, theta0, max_iter=300)
    err = (updates(theta, kind, DIMS) - truth).pow(2).sum(dim=(1, 2, 3, 4)).sqrt()
    assert float(err.max()) < 1e-3 * float(truth.norm())


def test_joint_truth_recovered_by_joint_estimator():
    """A joint truth is reached by the joint estimator (the simulation's fit: best of restarts), and its
    update error falls with n (noise 0.5)."""
    dims = Dims(d=4, L=3, H=2, d_h=2, r=1, p=2)
    cfg = SimulationConfig(dims=dims, restarts=4, max_iter=300)
    gen = torch.Generator().manual_seed(8)  # (seed 7 draws a truth where 4 restarts can stay in a local minimum)
    base = make_base(dims, gen, DTYPE)
    truth = make_truth(Regime("J", "test", true_rank=1, truth="joint"), dims, 2.0, gen, DTYPE)
    errors = []
    for n in (64, 4096):
        data = make_data(base, 3, n, dims, gen)
        clean = attention(truth.expand(3, -1, -1, -1, -1), base, data)
        y = clean + 0.5 * torch.randn(clean.shape, generator=gen, dtype=DTYPE)
        dw, train_loss = _fit("joint", cfg, dims, base, data, y, gen)
        assert bool((train_loss <= ((clean - y) ** 2).mean(dim=(1, 2, 3)) * (1 + 1e-3)).all())  # as good as the truth
        errors.append(float((dw - truth).pow(2).sum(dim=(1, 2, 3, 4)).sqrt().mean()))
    assert errors[1] < 0.3 * errors[0] and errors[1] < 0.25 * float(truth.norm())


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
    assert set(saved["regimes"]) == {"R1", "R2", "R3", "R4", "R5"}
    assert saved["regimes"]["R3"]["truth"] == "joint" and saved["regimes"]["R4"]["dims"]["p"] == 2
    for reg in saved["regimes"].values():
        assert set(reg["estimators"]) == set(ESTIMATORS) == {"lora", "hora", "joint"}
        dims = Dims(**reg["dims"])
        for est in ESTIMATORS:
            assert reg["estimators"][est]["n_params"] == n_params(est, dims)
            assert 0 < reg["estimators"][est]["local_dimension"] <= n_params(est, dims)
            assert set(reg["estimators"][est]["metrics"]) == set(METRICS)
            for m in reg["estimators"][est]["metrics"].values():
                assert len(m["mean"]) == len(m["sem"]) == 2
                assert all(np.isfinite([m["slope"], m["ci_low"], m["ci_high"]]))
    assert (tmp_path / "simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["regimes"]["R1"]["estimators"]["lora"]["n_params"] == n_params("lora", DIMS)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
