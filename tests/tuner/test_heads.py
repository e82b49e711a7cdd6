"""Head-layout discovery and its errors."""

from __future__ import annotations

import peft
import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel, LlamaConfig

import mha_like
from hora import HeadLayoutError, HoraConfig, HoraLayer, find_attention_targets
from hora.tuner.heads import AttentionShape, HeadLayout, Section, discover_layout, layer_key, projection_role
from tiny_models import logits, make_inputs, make_model

EXPECTED = {
    # kind: {module suffix: (side, [(projection, heads)], head_dim)}
    "bert": {"self.query": ("out", [("q", 4)], 8), "output.dense": ("in", [("o", 4)], 8)},
    "mpnet": {"attn.k": ("out", [("k", 4)], 8), "attn.o": ("in", [("o", 4)], 8)},
    "vit": {"attention.v_proj": ("out", [("v", 4)], 8), "attention.o_proj": ("in", [("o", 4)], 8)},
    "llama_gqa": {"self_attn.k_proj": ("out", [("k", 2)], 8), "self_attn.q_proj": ("out", [("q", 4)], 8)},
    "llama_mqa_headdim": {"self_attn.v_proj": ("out", [("v", 1)], 16), "self_attn.o_proj": ("in", [("o", 4)], 16)},
    "phi3_fused": {"self_attn.qkv_proj": ("out", [("q", 4), ("k", 2), ("v", 2)], 8)},
    "gpt2_conv1d": {"attn.c_attn": ("out", [("q", 4), ("k", 4), ("v", 4)], 8), "attn.c_proj": ("in", [("o", 4)], 8)},
    "bigcode_mqa_fused": {"attn.c_attn": ("out", [("q", 4), ("k", 1), ("v", 1)], 8)},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_layouts_of_real_architectures(kind):
    model = peft.get_peft_model(make_model(kind), HoraConfig(projections=["q", "k", "v", "o"]))
    found = {n: m.layout for n, m in model.base_model.model.named_modules() if isinstance(m, HoraLayer)}
    for suffix, (side, sections, head_dim) in EXPECTED[kind].items():
        matches = [layout for name, layout in found.items() if name.endswith(suffix)]
        assert matches, suffix
        expected = HeadLayout(side, tuple(Section(p, h) for p, h in sections), head_dim)
        assert all(layout == expected for layout in matches)


def test_mlp_projections_are_not_attention():
    assert projection_role("h.0.mlp.c_proj") is None
    assert projection_role("h.0.attn.c_proj") == "o"
    assert projection_role("encoder.layer.0.output.dense") is None
    assert projection_role("encoder.layer.0.attention.output.dense") == "o"
    names = find_attention_targets(make_model("gpt2_conv1d"), ["o"])
    assert names == ["transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj"]


def test_layer_key_groups_a_block():
    assert layer_key("encoder.layer.3.attention.self.query") == "encoder.layer.3"
    assert layer_key("encoder.layer.3.attention.output.dense") == "encoder.layer.3"
    assert layer_key("attn.q") == "attn"


def test_attention_shape_from_configs():
    assert AttentionShape.from_config(LlamaConfig(hidden_size=64, num_attention_heads=8, num_key_value_heads=2)) \
        == AttentionShape(8, 2, 8)
    assert AttentionShape.from_config(LlamaConfig(hidden_size=64, num_attention_heads=8, head_dim=32)) \
        == AttentionShape(8, 8, 32)


def test_head_count_that_does_not_divide_the_weight():
    model = make_model("llama_gqa")
    model.config.num_key_value_heads = 3  # k_proj has 16 rows = 2 heads x 8
    with pytest.raises(HeadLayoutError, match="does not match its output size 16"):
        peft.get_peft_model(model, HoraConfig(projections=["k"]))


def test_unknown_architecture_names_the_module_and_the_override():
    model = nn.Sequential()
    model.add_module("mixer", nn.Linear(16, 16))
    with pytest.raises(HeadLayoutError, match="head_layout"):
        peft.get_peft_model(model, HoraConfig())
    with pytest.raises(HeadLayoutError, match="'mixer' is not recognised.*head_layout"):
        peft.get_peft_model(model, HoraConfig(target_modules=["mixer"]))


def test_explicit_layout_for_an_unknown_fused_module():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wqkv_fused = nn.Linear(16, 32)  # 2 q heads + 1 k + 1 v, d_h 8

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.wqkv_fused(x)

    layout = {"wqkv_fused": {"sections": [["q", 2], ["k", 1], ["v", 1]], "head_dim": 8}}
    model = peft.get_peft_model(Block(), HoraConfig(r=2, target_modules=["wqkv_fused"], head_layout=layout,
                                                    init_weights=False))
    assert model.base_model.model.wqkv_fused.layout.num_heads == 4
    assert model(torch.randn(3, 16)).shape == (3, 32)
    with pytest.raises(HeadLayoutError, match="must look like"):
        discover_layout("wqkv_fused", nn.Linear(16, 32), None, {"wqkv_fused": {"heads": 4}})


def test_no_target_module_found():
    with pytest.raises(ValueError, match="No modules were targeted"):
        peft.get_peft_model(make_model("bert"), HoraConfig(target_modules=["does_not_exist"], task_type="SEQ_CLS"))


def test_rank_larger_than_the_weight_is_accepted_with_a_warning():
    """As PEFT's LoRA: r > min(d_in, d_out) is a valid (if wasteful) update of rank <= min(d_in, d_out)."""
    with pytest.warns(UserWarning, match=r"r=64 exceeds min\(d_in, d_out\) = 32 of '.*query'"):
        model = peft.get_peft_model(make_model("bert"), HoraConfig(r=64, init_weights=False, task_type="SEQ_CLS"))
    inputs = make_inputs("bert")
    unmerged = logits(model, inputs)
    assert torch.isfinite(unmerged).all()
    assert torch.allclose(logits(model.merge_and_unload(), inputs), unmerged, atol=1e-4)


def test_a_projection_inside_multihead_attention_is_refused_clearly():
    """nn.MultiheadAttention reads out_proj.weight directly: HoRA adapts it through the attention module."""

    class WithMha(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2)

    layout = {"sections": [["o", 2]], "head_dim": 8}
    with pytest.raises(TypeError, match="target the attention module 'mha' itself"):
        peft.get_peft_model(WithMha(), HoraConfig(target_modules=["mha.out_proj"],
                                                  head_layout={"mha.out_proj": layout}))


def test_discovery_names_multihead_attention_modules_not_their_insides():
    model = mha_like.make("torchvision_vit")
    expected = [f"encoder.layers.encoder_layer_{i}.self_attention" for i in range(2)]
    assert find_attention_targets(model, ["o"]) == expected
    adapted = peft.get_peft_model(model, HoraConfig(r=2))
    assert find_attention_targets(adapted.base_model.model, ["q"]) == expected  # adapted already: the same names


def test_adapter_loaded_onto_a_base_model_of_another_shape(tmp_path):
    small = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=8))
    peft.get_peft_model(small, HoraConfig(r=2)).save_pretrained(tmp_path)
    wide = BertModel(BertConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=4, intermediate_size=8))
    with pytest.raises(RuntimeError, match="does not fit this base model: module 'encoder.layer.0.attention"):
        peft.PeftModel.from_pretrained(wide, tmp_path)


def test_fused_and_split_models_of_the_same_weights_agree():
    """Phi-3 qkv_proj holding Llama's q|k|v: same outputs with and without HoRA (same factors)."""
    inputs = make_inputs("phi3_fused")
    base = logits(make_model("phi3_fused"), inputs)
    adapted = peft.get_peft_model(make_model("phi3_fused"), HoraConfig(r=2, init_weights=True))
    assert torch.equal(logits(adapted, inputs), base)
