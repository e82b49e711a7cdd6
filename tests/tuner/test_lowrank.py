"""The low-rank update function: exact gradients, mixed dtypes, and fewer saved bytes than plain autograd."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from hora.tuner.lowrank import LowRankAdd, add_low_rank_update


def _inputs(dtype=torch.float64, n=(3, 5), d_in=7, d_out=6, r=2):
    g = torch.Generator().manual_seed(0)
    result = torch.randn(*n, d_out, dtype=dtype, generator=g, requires_grad=True)
    x = torch.randn(*n, d_in, dtype=dtype, generator=g, requires_grad=True)
    A = torch.randn(r, d_in, dtype=dtype, generator=g, requires_grad=True)
    B = torch.randn(d_out, r, dtype=dtype, generator=g, requires_grad=True)
    return result, x, A, B


def test_gradcheck_float64():
    assert torch.autograd.gradcheck(LowRankAdd.apply, _inputs(), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("frozen", ["x", "A", "B"])
def test_matches_plain_autograd_with_some_inputs_frozen(frozen):
    ours = _inputs(torch.float32)
    ref = [t.detach().clone().requires_grad_(True) for t in ours]
    index = {"x": 1, "A": 2, "B": 3}[frozen]
    ours[index].requires_grad_(False)
    ref[index].requires_grad_(False)
    out = add_low_rank_update(*ours)
    expected = ref[0] + F.linear(F.linear(ref[1], ref[2]), ref[3])
    torch.testing.assert_close(out, expected)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    for a, b in zip(ours, ref, strict=True):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad)


def test_bf16_result_with_fp32_adapter():
    result, x, A, B = _inputs(torch.float32)
    result_bf16 = result.detach().to(torch.bfloat16).requires_grad_(True)
    out = add_low_rank_update(result_bf16, x, A, B)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert result_bf16.grad.dtype == torch.bfloat16 and A.grad.dtype == torch.float32
    expected_B = torch.ones(*out.shape).reshape(-1, out.shape[-1]).t() @ (x.reshape(-1, x.shape[-1]) @ A.t())
    torch.testing.assert_close(B.grad, expected_B.detach(), rtol=1e-2, atol=1e-2)


def _saved_bytes(fn) -> int:
    sizes = []

    def pack(t):
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(sizes)


def test_saves_less_than_plain_autograd_and_no_grad_path_records_nothing():
    result, x, A, B = _inputs(torch.float32, n=(64, 32), d_in=48, d_out=48, r=8)
    plain = _saved_bytes(lambda: torch.addmm(result.view(-1, 48), F.linear(x, A).view(-1, 8), B.t()))
    ours = _saved_bytes(lambda: add_low_rank_update(result, x, A, B))
    hidden = 64 * 32 * 8 * 4  # the n x r activation plain autograd keeps
    assert ours <= plain - hidden
    with torch.no_grad():
        out = add_low_rank_update(result, x, A, B)
    assert out.grad_fn is None
