"""Property-based checks over random head layouts and configs: merging and LoRA export are always exact."""

from __future__ import annotations

import peft
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import PretrainedConfig
from transformers.pytorch_utils import Conv1D

from hora import HoraConfig, export_lora


class TinyAttention(nn.Module):
    """q/k/v (separate or fused, Linear or Conv1D) and o projections.

    The forward is not attention, only a function of every projection, which is all the checks need."""

    def __init__(self, heads: int, kv_heads: int, head_dim: int, hidden: int, fused: bool, conv1d: bool) -> None:
        super().__init__()
        linear = (lambda i, o: Conv1D(o, i)) if conv1d else nn.Linear
        q, kv = heads * head_dim, kv_heads * head_dim
        self.fused = fused
        if fused:
            self.qkv_proj = linear(hidden, q + 2 * kv)
        else:
            self.q_proj, self.k_proj, self.v_proj = linear(hidden, q), linear(hidden, kv), linear(hidden, kv)
        self.o_proj = linear(q, hidden)
        self.sizes = (q, kv, kv)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            q, k, v = self.qkv_proj(x).split(self.sizes, dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        mixed = q + (k.sum(-1, keepdim=True) + v.sum(-1, keepdim=True))
        return self.o_proj(torch.tanh(mixed)) + x


class TinyModel(nn.Module):
    """Two blocks ``layers.N.self_attn`` and a config to read the heads from."""

    def __init__(self, heads: int, kv_heads: int, head_dim: int, hidden: int, fused: bool, conv1d: bool) -> None:
        super().__init__()
        self.config = PretrainedConfig(num_attention_heads=heads, num_key_value_heads=kv_heads,
                                       head_dim=head_dim, hidden_size=hidden)
        self.layers = nn.ModuleList(nn.Module() for _ in range(2))
        for block in self.layers:
            block.self_attn = TinyAttention(heads, kv_heads, head_dim, hidden, fused, conv1d)
        for parameter in self.parameters():
            nn.init.normal_(parameter, std=0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = block.self_attn(x)
        return x


layouts = st.tuples(
    st.sampled_from([(1, 1), (2, 1), (2, 2), (4, 1), (4, 2), (3, 3), (6, 2)]),  # (heads, kv heads)
    st.sampled_from([2, 4, 8]),  # head_dim
    st.sampled_from([8, 12]),  # hidden
    st.booleans(),  # fused
    st.booleans(),  # Conv1D
)
configs = st.fixed_dictionaries({
    "r": st.integers(1, 2),  # the smallest weight side drawn is 2 (one kv head of d_h 2)
    "alpha": st.sampled_from([1.0, 4.0, 16.0]),
    "projections": st.sampled_from([["q", "v"], ["q", "k", "v", "o"], ["o"], ["k"]]),
    "scope": st.sampled_from(["layer", "module"]),
    "generator": st.sampled_from(["mlp", "embedding", "identity"]),
    "head_mixing": st.booleans(),
    "generator_gain": st.sampled_from([1.0, 4.0]),
    "residual": st.booleans(),
    "joint_free_factor": st.booleans(),
    "use_rslora": st.booleans(),
    "hidden": st.sampled_from([None, 3]),
    "activation": st.sampled_from(["gelu", "tanh", "relu"]),
})


def build(layout, seed: int = 0) -> TinyModel:
    (heads, kv_heads), head_dim, hidden, fused, conv1d = layout
    torch.manual_seed(seed)
    return TinyModel(heads, kv_heads, head_dim, hidden, fused, conv1d).eval()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts, options=configs)
def test_merge_and_export_are_exact_for_any_layout(layout, options, tmp_path_factory):
    model = peft.get_peft_model(build(layout), HoraConfig(init_weights=False, **options))
    x = torch.randn(5, layout[2], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
        model.merge_adapter()
        assert relative_error(model(x), expected) <= 1e-5
        model.unmerge_adapter()
        folder = tmp_path_factory.mktemp("lora")
        export_lora(model, folder)
        lora = peft.PeftModel.from_pretrained(build(layout), folder)
        exported = lora(x)
    assert relative_error(exported, expected) <= 1e-5


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())
