"""Model of the simulation: one multi-head attention layer with low-rank updates on W_Q and W_V.

Seen as a hierarchical mixture of experts (the paper's lens): head h is a softmax-gated mixture whose
experts are the L tokens x_j (gate score <(W_Q^h + dW_Q^h) x_1, W_K^h x_j> / sqrt(d_h), expert
(W_V^h + dW_V^h) x_j); the layer output concatenates the H heads, a mixture of such mixtures.

Notation and shapes (P = 2 adapted projections, index 0 = q, 1 = v):
    X         (reps, n, L, d)      tokens; the query is token 0
    W_Q, W_K, W_V  (H, d_h, d)      frozen base weights, one block of rows per head
    dW        (R, P, H, d_h, d)    per-head blocks of the updates dW_P = B_P A_P
    y         (reps, n, k, H*d_h)  outputs for k parameter sets per replication (R = reps * k)
The output projection is the identity (heads are concatenated); it would only rotate the target.

Two parametrisations of the updates (DESIGN.md section 1), both with A_P (r x d) shared by the heads:
    LoRA:  B_P^h free                                          (d_h x r per head)
    HoRA:  B_P^h[:, c] = s + W2_P phi(W1 s),  s = S_P^h[:, c]   (residual, bias-free, phi = GELU)
with one generator body W1 (p x d_h) shared by both projections and all heads, and one output head
W2_P (d_h x p) per projection.  Parameters live in a flat vector theta (R, n_params) so that many
independent fits can be optimised at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

N_PROJ = 2  # adapted projections: q and v


@dataclass(frozen=True)
class Dims:
    """Sizes of the simulated layer: L tokens of dimension d, H heads of dimension d_h, rank r, width p."""

    d: int = 8
    L: int = 4
    H: int = 2
    d_h: int = 4
    r: int = 2
    p: int = 8


@dataclass(frozen=True)
class Base:
    """Frozen base weights W_Q, W_K, W_V, each (H, d_h, d)."""

    wq: torch.Tensor
    wk: torch.Tensor
    wv: torch.Tensor


@dataclass(frozen=True)
class Data:
    """A batch of data sets: tokens X (reps, n, L, d) and score features x_0 (x) x_j (reps, n * L, d * d)."""

    x: torch.Tensor
    pairs: torch.Tensor


def param_shapes(kind: str, dims: Dims) -> dict[str, tuple[int, ...]]:
    """Shapes (without the leading fit dimension R) of the parameters of `kind` in {"lora", "hora"}."""
    shapes = {"A": (N_PROJ, dims.r, dims.d)}
    if kind == "lora":
        shapes["B"] = (N_PROJ, dims.H, dims.d_h, dims.r)
    elif kind == "hora":
        shapes["S"] = (N_PROJ, dims.H, dims.d_h, dims.r)
        shapes["W1"] = (dims.p, dims.d_h)
        shapes["W2"] = (N_PROJ, dims.d_h, dims.p)
    else:
        raise ValueError(f"unknown parametrisation {kind!r}; expected 'lora' or 'hora'")
    return shapes


def n_params(kind: str, dims: Dims) -> int:
    """Number of free parameters of one fit."""
    return sum(math.prod(s) for s in param_shapes(kind, dims).values())


def unflatten(theta: torch.Tensor, kind: str, dims: Dims) -> dict[str, torch.Tensor]:
    """Split theta (R, n_params) into named views of shape (R, *param_shapes[name])."""
    out, start = {}, 0
    for name, shape in param_shapes(kind, dims).items():
        size = math.prod(shape)
        out[name] = theta[:, start : start + size].reshape(theta.shape[0], *shape)
        start += size
    return out


def flatten(params: dict[str, torch.Tensor], kind: str, dims: Dims) -> torch.Tensor:
    """Inverse of `unflatten`: concatenate named parameters (R, *shape) into theta (R, n_params)."""
    names = param_shapes(kind, dims)
    return torch.cat([params[name].reshape(params[name].shape[0], -1) for name in names], dim=1)


def hora_head_factors(seeds: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Residual bias-free generator applied column-wise: B = S + W2_P GELU(W1 S).

    seeds (R, P, H, d_h, r), w1 (R, p, d_h), w2 (R, P, d_h, p) -> head factors (R, P, H, d_h, r).
    """
    hidden = F.gelu(torch.einsum("Rfe,RPher->RPhfr", w1, seeds))
    return seeds + torch.einsum("RPef,RPhfr->RPher", w2, hidden)


def updates(theta: torch.Tensor, kind: str, dims: Dims) -> torch.Tensor:
    """Per-head update blocks dW_P^h = B_P^h A_P, shape (R, P, H, d_h, d), from theta (R, n_params)."""
    prm = unflatten(theta, kind, dims)
    b = prm["B"] if kind == "lora" else hora_head_factors(prm["S"], prm["W1"], prm["W2"])
    return torch.einsum("RPher,RPrd->RPhed", b, prm["A"])


def make_base(dims: Dims, gen: torch.Generator, dtype: torch.dtype) -> Base:
    """Frozen W_Q, W_K, W_V with i.i.d. N(0, 1/d) entries, so projected tokens have unit scale."""

    def draw() -> torch.Tensor:
        return torch.randn(dims.H, dims.d_h, dims.d, generator=gen, dtype=dtype) / math.sqrt(dims.d)

    return Base(draw(), draw(), draw())


def make_data(base: Base, reps: int, n: int, dims: Dims, gen: torch.Generator) -> Data:
    """Draw X with i.i.d. N(0, 1) tokens, shape (reps, n, L, d), and the score features x_0 (x) x_j."""
    x = torch.randn(reps, n, dims.L, dims.d, generator=gen, dtype=base.wq.dtype)
    pairs = (x[:, :, :1, :, None] * x[:, :, :, None, :]).reshape(reps, n * dims.L, dims.d * dims.d)
    return Data(x, pairs)


def attention(dw: torch.Tensor, base: Base, data: Data) -> torch.Tensor:
    """Multi-head attention output of the query token 0 with updates dW (R, P, H, d_h, d), R = reps * k.

    f(X)^h = (W_V^h + dW_V^h) sum_j a_j^h x_j,   a^h = softmax_j(x_0^T M^h x_j / sqrt(d_h)),
    M^h = (W_Q^h + dW_Q^h)^T W_K^h  (d x d).  Returns (reps, n, k, H * d_h).
    The scores are one matmul of the features x_0 (x) x_j with vec(M^h); the value map one bmm per
    (replication, fit, head); on CPU this is ~10x faster than per-sample products of d_h-vectors.
    """
    reps, n, length, d = data.x.shape
    heads, d_h = base.wq.shape[:2]
    dw = dw.reshape(reps, -1, *dw.shape[1:])
    k = dw.shape[1]
    score_maps = torch.einsum("rkhed,hef->rkhdf", base.wq + dw[:, :, 0], base.wk).reshape(reps, k * heads, d * d)
    scores = (data.pairs @ score_maps.transpose(1, 2)).reshape(reps, n, length, k * heads) / math.sqrt(d_h)
    mixed = torch.einsum("rnlc,rnld->rcnd", scores.softmax(dim=2), data.x).reshape(reps * k * heads, n, d)
    values = (base.wv + dw[:, :, 1]).reshape(reps * k * heads, d_h, d)
    out = torch.bmm(mixed, values.transpose(1, 2)).reshape(reps, k, heads, n, d_h)
    return out.permute(0, 3, 1, 2, 4).reshape(reps, n, k, heads * d_h)
