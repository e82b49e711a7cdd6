"""The simulated attention layer and its three parametrisations (hora.experiments.simulate.attention_model)."""

from __future__ import annotations

import pytest
import torch
from simulate_helpers import DIMS, DTYPE

from hora.experiments.simulate.attention_model import (
    N_PROJ,
    Dims,
    attention,
    factors,
    flatten,
    hora_head_factors,
    joint_factors,
    local_dimension,
    n_params,
    param_shapes,
    unflatten,
    updates,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


def test_data_and_attention_shapes(problem):
    base, truth, data = problem
    assert data.x.shape == (2, 200, DIMS.L, DIMS.d)
    y = attention(truth.expand(2, -1, -1, -1, -1), base, data)
    assert y.shape == (2, 200, 1, DIMS.H * DIMS.d_h)


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


def test_factors_of_lora_and_hora():
    """LoRA's factors are its parameters; HoRA's head factors are B = S + W2_P gelu(W1 S), column by column,
    so with the output layers at zero they are the seeds; flatten undoes unflatten."""
    gen = torch.Generator().manual_seed(2)
    lora = torch.randn(2, n_params("lora", DIMS), generator=gen, dtype=DTYPE)
    prm = unflatten(lora, "lora", DIMS)
    b, a = factors(lora, "lora", DIMS)
    assert torch.equal(b, prm["B"]) and torch.equal(a, prm["A"])
    assert torch.equal(flatten(prm, "lora", DIMS), lora)

    theta = torch.randn(2, n_params("hora", DIMS), generator=gen, dtype=DTYPE)
    prm = unflatten(theta, "hora", DIMS)
    b, a = factors(theta, "hora", DIMS)
    assert b.shape == (2, N_PROJ, DIMS.H, DIMS.d_h, DIMS.r) and torch.equal(a, prm["A"])
    gelu = torch.nn.functional.gelu
    for i in range(2):
        for proj in range(N_PROJ):
            for h in range(DIMS.H):
                for c in range(DIMS.r):
                    s = prm["S"][i, proj, h, :, c]
                    torch.testing.assert_close(b[i, proj, h, :, c], s + prm["W2"][i, proj] @ gelu(prm["W1"][i] @ s))
    silent = flatten({**prm, "W2": torch.zeros_like(prm["W2"])}, "hora", DIMS)
    assert torch.equal(factors(silent, "hora", DIMS)[0], prm["S"])


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
