"""The adapter's hot path, ``y + (x A^T) B^T``, as one autograd function that saves less for backward.

Shapes: ``result`` (..., d_out), ``x`` (..., d_in), ``A`` (r, d_in), ``B`` (d_out, r); with
``X`` = x flattened to (n, d_in) and ``G`` = dL/dy flattened to (n, d_out):

    forward    Y = result + (X A^T) B^T          (one mm and one addmm)
    backward   GB = G B                          (n, r)
               dL/dx = GB A                      (n, d_in)
               dL/dA = GB^T X                    (r, d_in)
               dL/dB = G^T (X A^T)               (d_out, r), X A^T recomputed here

Plain autograd (``F.linear`` then ``addmm``, as in PEFT's LoRA) keeps the hidden ``X A^T`` (n x r) of
every adapted module alive until backward. This function keeps only ``x``, which the adapter shares with
the frozen base layer, and recomputes ``X A^T`` in backward: one extra n x d_in x r product per module
(about r / (2 d_in) of that module's frozen matmuls) for n * r floats less memory per module.
"""

from __future__ import annotations

import functools

import torch


class LowRankAdd(torch.autograd.Function):
    """``result + (x A^T) B^T``; ``result`` may have another dtype than the factors (fp32 adapters on a
    bf16 model), and under autocast the factors may differ from each other."""

    @staticmethod
    def forward(ctx, result: torch.Tensor, x: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, A, B)
        return low_rank_add(result, x, A, B)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        saved = ctx.saved_tensors
        # under autocast the forward ran in low precision while factors generated there may be bf16 and
        # free factors fp32; backward runs outside autocast, so compute in the widest of their dtypes
        dtype = functools.reduce(torch.promote_types, [t.dtype for t in saved])
        x, A, B = (t.to(dtype) for t in saved)
        flat_x = x.reshape(-1, x.shape[-1])
        flat_grad = grad.reshape(-1, grad.shape[-1]).to(dtype)
        grad_hidden = flat_grad @ B  # (n, r)
        grad_x = grad_A = grad_B = None
        if ctx.needs_input_grad[1]:
            grad_x = (grad_hidden @ A).view(x.shape).to(saved[0].dtype)
        if ctx.needs_input_grad[2]:
            grad_A = (grad_hidden.t() @ flat_x).to(saved[1].dtype)
        if ctx.needs_input_grad[3]:
            grad_B = (flat_grad.t() @ (flat_x @ A.t())).to(saved[2].dtype)
        return grad if ctx.needs_input_grad[0] else None, grad_x, grad_A, grad_B

def low_rank_add(result: torch.Tensor, x: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``result + (x A^T) B^T`` without autograd bookkeeping of its own: one addmm when dtypes and layout
    allow (no separate update tensor), else a cast and an add."""
    shape = result.shape
    hidden = x.reshape(-1, x.shape[-1]) @ A.t()
    if result.dtype == B.dtype and result.is_contiguous():
        return torch.addmm(result.view(-1, shape[-1]), hidden, B.t()).view(shape)
    return result + (hidden @ B.t()).view(shape).to(result.dtype)


def add_low_rank_update(result: torch.Tensor, x: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``result + (x A^T) B^T``, through :class:`LowRankAdd` when a gradient is needed."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (result, x, A, B)):
        return LowRankAdd.apply(result, x, A, B)
    return low_rank_add(result, x, A, B)
