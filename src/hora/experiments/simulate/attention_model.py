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

Three parametrisations of the updates (DESIGN.md section 1, docs/method.md), all with A_P (r x d) shared
by the heads:
    LoRA:   B_P^h free, A_P free                                 (d_h x r per head)
    HoRA:   B_P^h[:, c] = s + W2_P phi(W1 s),  s = S_P^h[:, c]    (residual, bias-free, phi = GELU), A_P free
    joint:  B_P^h = W2_P phi(W1 S_h),  A_P = W2A_P phi(W1A Abar)  (non-residual, bias-free)
HoRA has one generator body W1 (p x d_h) shared by both projections and all heads, and one output head
W2_P (d_h x p) per projection.  The joint form (the library's generator="joint") generates both factors:
its per-head seeds S_h (d_h x r) are shared by q and v and go through the same head hypernetwork (body W1,
heads W2_P), and one shared free seed Abar (r x d) goes through a free hypernetwork (body W1A p x r, one
output layer W2A_P r x p per projection).  Parameters live in a flat vector theta (R, n_params) so that
many independent fits can be optimised at once.
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


KINDS = ("lora", "hora", "joint")


def param_shapes(kind: str, dims: Dims) -> dict[str, tuple[int, ...]]:
    """Shapes (without the leading fit dimension R) of the parameters of `kind` in KINDS."""
    if kind == "lora":
        return {"A": (N_PROJ, dims.r, dims.d), "B": (N_PROJ, dims.H, dims.d_h, dims.r)}
    if kind == "hora":
        return {"A": (N_PROJ, dims.r, dims.d), "S": (N_PROJ, dims.H, dims.d_h, dims.r),
                "W1": (dims.p, dims.d_h), "W2": (N_PROJ, dims.d_h, dims.p)}
    if kind == "joint":
        return {"Abar": (dims.r, dims.d), "W1A": (dims.p, dims.r), "W2A": (N_PROJ, dims.r, dims.p),
                "S": (dims.H, dims.d_h, dims.r), "W1": (dims.p, dims.d_h), "W2": (N_PROJ, dims.d_h, dims.p)}
    raise ValueError(f"unknown parametrisation {kind!r}; expected one of {KINDS}")


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


def generate(seeds: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Bias-free two-layer generator applied to every seed column: W2_P GELU(W1 s).

    seeds (R, P or 1, G, e, c) (G seed groups, e.g. heads, of c columns of size e; a projection
    dimension of 1 means the seeds are shared by the projections), w1 (R, p, e), w2 (R, P, o, p)
    -> (R, P, G, o, c).
    """
    hidden = F.gelu(w1[:, None, None] @ seeds)  # (R, P or 1, G, p, c)
    return w2[:, :, None] @ hidden


def hora_head_factors(seeds: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Residual bias-free generator applied column-wise: B = S + W2_P GELU(W1 S).

    seeds (R, P, H, d_h, r), w1 (R, p, d_h), w2 (R, P, d_h, p) -> head factors (R, P, H, d_h, r).
    """
    return seeds + generate(seeds, w1, w2)


def joint_factors(prm: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of the joint form from its named parameters (R, *param_shapes("joint")):

    head factors B_P^h = W2_P GELU(W1 S_h)   (R, P, H, d_h, r), the seeds S (R, H, d_h, r) shared by q and v;
    free factors A_P  = W2A_P GELU(W1A Abar) (R, P, r, d), from the one shared seed Abar (R, r, d).
    """
    b = generate(prm["S"][:, None], prm["W1"], prm["W2"])
    a = generate(prm["Abar"][:, None, None], prm["W1A"], prm["W2A"])[:, :, 0]
    return b, a


def factors(theta: torch.Tensor, kind: str, dims: Dims) -> tuple[torch.Tensor, torch.Tensor]:
    """Head factors B (R, P, H, d_h, r) and free factors A (R, P, r, d) from theta (R, n_params)."""
    prm = unflatten(theta, kind, dims)
    if kind == "joint":
        return joint_factors(prm)
    b = prm["B"] if kind == "lora" else hora_head_factors(prm["S"], prm["W1"], prm["W2"])
    return b, prm["A"]


def updates(theta: torch.Tensor, kind: str, dims: Dims) -> torch.Tensor:
    """Per-head update blocks dW_P^h = B_P^h A_P, shape (R, P, H, d_h, d), from theta (R, n_params)."""
    b, a = factors(theta, kind, dims)
    return torch.einsum("RPher,RPrd->RPhed", b, a)


def local_dimension(kind: str, dims: Dims, gen: torch.Generator, dtype: torch.dtype = torch.float64) -> int:
    """Rank of the Jacobian d vec(dW) / d theta at a random theta ~ N(0, 1): the number of directions in
    which the parametrisation can move the update near a generic point, i.e. the dimension of the set of
    updates it reaches (parameters beyond it are redundant: they change the factors, not dW).
    """
    theta = torch.randn(n_params(kind, dims), generator=gen, dtype=dtype)
    jac = torch.autograd.functional.jacobian(lambda t: updates(t[None], kind, dims).reshape(-1), theta)
    return int(torch.linalg.matrix_rank(jac))


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
