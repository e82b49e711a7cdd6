"""timm-style vision transformers: heads read from the attention module itself (no config, no head_layout).

Every check runs on the replica of timm's modules in timm_like.py and, when timm is importable, on timm's
own VisionTransformer (see timm_like.import_timm for how timm is imported without a usable torchvision).
"""

from __future__ import annotations

import peft
import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

from hora import HoraConfig, HoraLayer, export_lora
from hora.tuner.heads import HeadLayout, HeadLayoutError, Section, discover_layout
from timm_like import CHANNELS, CLASSES, HEADS, IMAGE, Attention, TinyViT, import_timm, real_timm_vit

TIMM, TIMM_HOW = import_timm()
D_H = 32 // HEADS
QKV = HeadLayout("out", (Section("q", HEADS), Section("k", HEADS), Section("v", HEADS)), D_H)
OUT = HeadLayout("in", (Section("o", HEADS),), D_H)


def build(kind: str, seed: int = 0) -> nn.Module:
    """The replica ('replica') or timm's own ViT ('timm'), random weights fixed by the seed, eval mode."""
    if kind == "timm" and TIMM is None:
        pytest.skip(TIMM_HOW)
    torch.manual_seed(seed)
    return (TinyViT() if kind == "replica" else real_timm_vit(TIMM)).eval()


def images(batch: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, CHANNELS, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))


def adapted(model: nn.Module) -> dict[str, HeadLayout]:
    return {name: module.layout for name, module in model.named_modules() if isinstance(module, HoraLayer)}


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


KINDS = ["replica", "timm"]
SETTINGS = {  # name: HoraConfig overrides, expected adapted module suffixes
    "default": ({}, {"attn.qkv": QKV}),
    "qkvo": ({"projections": ["q", "k", "v", "o"]}, {"attn.qkv": QKV, "attn.proj": OUT}),
    "joint": ({"generator": "joint"}, {"attn.qkv": QKV}),
    "joint-qkvo": ({"generator": "joint", "projections": ["q", "k", "v", "o"]}, {"attn.qkv": QKV, "attn.proj": OUT}),
}


@pytest.mark.parametrize("kind", KINDS)
def test_real_timm_is_tested_or_says_why_not(kind):
    model = build(kind)
    assert getattr(model, "config", None) is None  # nothing but the attention modules to read heads from
    attention = model.blocks[0].attn
    assert type(attention).__name__ == "Attention"
    assert (attention.num_heads, attention.head_dim, attention.qkv.out_features) == (HEADS, D_H, 3 * HEADS * D_H)


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("kind", KINDS)
def test_adapt_train_save_load_merge_export(kind, setting, tmp_path):
    overrides, expected = SETTINGS[setting]
    x, labels = images(), torch.tensor([0, 1, 2, 1])
    base = outputs(build(kind), x)
    model = peft.get_peft_model(build(kind), HoraConfig(r=4, alpha=8, **overrides))

    layouts = adapted(model)
    assert layouts == {f"base_model.model.blocks.{i}.{suffix}": layout
                       for i in range(2) for suffix, layout in expected.items()}
    assert torch.equal(outputs(model, x), base)  # dW = 0 at step 0

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(4):
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < losses[0]
    trained = outputs(model, x)
    assert not torch.allclose(trained, base, atol=1e-4)

    model.save_pretrained(tmp_path / "hora")
    export_lora(model, tmp_path / "lora")
    loaded = peft.PeftModel.from_pretrained(build(kind), tmp_path / "hora")
    assert torch.equal(outputs(loaded, x), trained)
    as_lora = peft.PeftModel.from_pretrained(build(kind), tmp_path / "lora")
    assert torch.allclose(outputs(as_lora, x), trained, atol=1e-5)
    merged = model.merge_and_unload()
    assert not any(isinstance(module, HoraLayer) for module in merged.modules())
    assert torch.allclose(outputs(merged, x), trained, atol=1e-5)


def test_grouped_query_heads_come_from_num_kv_heads():
    torch.manual_seed(0)
    model = peft.get_peft_model(TinyViT(num_kv_heads=2).eval(), HoraConfig(r=2, projections=["q", "k", "v", "o"],
                                                                          init_weights=False))
    layouts = adapted(model)
    prefix = "base_model.model.blocks.0.attn."
    assert layouts[prefix + "q_proj"] == HeadLayout("out", (Section("q", HEADS),), D_H)
    assert layouts[prefix + "k_proj"] == HeadLayout("out", (Section("k", 2),), D_H)
    assert layouts[prefix + "v_proj"] == HeadLayout("out", (Section("v", 2),), D_H)
    assert layouts[prefix + "proj"] == OUT
    assert model(images()).shape == (4, CLASSES)


def test_head_dim_is_inferred_from_the_weight_when_the_module_has_none():
    attention = Attention(32, num_heads=4)
    del attention.head_dim
    assert discover_layout("blocks.0.attn.qkv", attention.qkv, None, attention=attention) == QKV
    assert discover_layout("blocks.0.attn.proj", attention.proj, None, attention=attention) == OUT
    attention.num_heads = 5  # 96 outputs are not 15 heads of equal size
    with pytest.raises(HeadLayoutError, match=r"Cannot infer head_dim from Attention: 15 heads .* size 96"):
        discover_layout("blocks.0.attn.qkv", attention.qkv, None, attention=attention)


def test_module_heads_are_checked_against_the_weight():
    attention = Attention(32, num_heads=4)
    attention.head_dim = 16
    with pytest.raises(HeadLayoutError, match="x head_dim 16 = 192 does not match its output size 96"):
        discover_layout("blocks.0.attn.qkv", attention.qkv, None, attention=attention)


def test_a_config_without_head_counts_falls_back_to_the_attention_module():
    attention = Attention(32, num_heads=4)  # e.g. transformers' TimmWrapperConfig has no num_attention_heads
    assert discover_layout("blocks.0.attn.qkv", attention.qkv, PretrainedConfig(), attention=attention) == QKV
    with pytest.raises(HeadLayoutError, match="Cannot read num_attention_heads"):
        discover_layout("blocks.0.attn.qkv", attention.qkv, PretrainedConfig(), attention=nn.Module())


def test_the_model_config_wins_over_the_module():
    attention = Attention(32, num_heads=4)
    config = PretrainedConfig(num_attention_heads=2, hidden_size=32)  # 2 heads of 16
    layout = discover_layout("blocks.0.attn.qkv", attention.qkv, config, attention=attention)
    assert layout == HeadLayout("out", (Section("q", 2), Section("k", 2), Section("v", 2)), 16)


def test_no_config_and_no_head_attributes_keeps_the_explicit_layout_hint():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.Module()
            self.attn.qkv = nn.Linear(16, 48)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn.qkv(x)

    with pytest.raises(HeadLayoutError, match=r"no config to read head counts from \(module 'attn.qkv'\), nor does "
                                              r"its Module have num_heads; state the layout with HoraConfig\(head"):
        peft.get_peft_model(Block(), HoraConfig())
    with pytest.raises(HeadLayoutError, match=r"no config to read head counts from \(module 'x.qkv'\); state"):
        discover_layout("x.qkv", nn.Linear(16, 48), None)
