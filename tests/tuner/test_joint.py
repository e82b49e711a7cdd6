"""The joint form (generator="joint", hora/tuner/joint.py): both factors generated, seeds shared by a layer."""

from __future__ import annotations

import copy

import peft
import pytest
import torch
from torch.nn import functional as F

from hora import HoraConfig, HoraLayer, export_lora, parameter_report
from hora.diagnostics import adapter_diagnostics
from hora.tuner.heads import HeadLayoutError
from hora.tuner.joint import JointBank
from tiny_models import logits, make_inputs, make_model, task_type, train_steps


def joint_model(kind: str = "llama_gqa", seed: int = 0, **overrides) -> peft.PeftModel:
    settings = dict(r=2, alpha=4, generator="joint", projections=["q", "k", "v", "o"], task_type=task_type(kind))
    settings.update(overrides)
    torch.manual_seed(seed)
    return peft.get_peft_model(make_model(kind), HoraConfig(**settings))


def bank_of(model: peft.PeftModel) -> JointBank:
    return model.base_model.hora_bank["default"]


def reference_factors(bank: JointBank, layer: int, projection: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The head factor (H_P, d_h, r) and the layer's free factors written out head by head, as in the
    paper's description: F_h = W2B_P gelu(W1B B_h), a KV head taking the mean pre-activation of its group."""
    seeds, body = bank.head_seeds[layer], bank.head_body[layer]
    slot = getattr(bank, f"layer_index_{projection}").tolist().index(layer)
    out_head = bank.head_out[projection][slot]
    heads = bank.heads_per_projection[projection]
    group = bank.num_seed_heads // heads
    blocks = []
    for head in range(heads):
        pre = torch.stack([body @ seeds[head * group + g] for g in range(group)]).mean(0)
        blocks.append(bank.scaling * out_head @ F.gelu(pre))
    hidden = F.gelu(bank.free_body[layer] @ bank.free_seeds[layer])
    free = [bank.free_out[m] @ hidden for m, owner in enumerate(bank.free_layer_index.tolist()) if owner == layer]
    return torch.stack(blocks), free


@pytest.mark.parametrize("kind", ["llama_gqa", "llama_mqa_headdim", "bert", "phi3_fused", "gpt2_conv1d"])
def test_batched_generation_equals_the_per_head_formula(kind):
    model = joint_model(kind, init_weights=False)
    bank = bank_of(model)
    generated = bank.generate()
    for projection in bank.head_out:
        for slot, layer in enumerate(getattr(bank, f"layer_index_{projection}").tolist()):
            expected, free = reference_factors(bank, layer, projection)
            assert torch.allclose(generated[projection][slot], expected, atol=1e-6)
    layer0 = [m for m, owner in enumerate(bank.free_layer_index.tolist()) if owner == 0]
    _, free = reference_factors(bank, 0, next(iter(bank.head_out)))
    assert all(torch.allclose(generated["free"][m], f, atol=1e-6) for m, f in zip(layer0, free, strict=True))


def test_update_is_zero_at_init_and_the_generator_gets_a_gradient_at_once():
    inputs = make_inputs("llama_gqa")
    model = joint_model()
    assert torch.equal(logits(model, inputs), logits(make_model("llama_gqa"), inputs))
    model.train()
    model(**inputs).logits.pow(2).mean().backward()
    bank = bank_of(model)
    assert all(head.grad.abs().sum() > 0 for head in bank.head_out.values())  # W2B: O(1) at step 1
    optimizer = torch.optim.AdamW(bank.parameters(), lr=1e-2)
    optimizer.step()
    optimizer.zero_grad()
    model(**inputs).logits.pow(2).mean().backward()
    for parameter in bank.parameters():  # after one step every part of both hypernetworks learns
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_generator_share_is_one_and_heads_are_coupled():
    model = joint_model("bert")
    diagnostics = adapter_diagnostics(model)
    assert diagnostics["generator_share"] == 1.0
    assert diagnostics["cross_head_influence"] > 0.1
    identity = peft.get_peft_model(make_model("bert"), HoraConfig(r=2, generator="identity", task_type="SEQ_CLS"))
    assert adapter_diagnostics(identity)["cross_head_influence"] == 0.0


def test_layers_hold_no_free_factor_and_the_parameter_report_is_exact():
    model = joint_model()
    layers = [m for m in model.modules() if isinstance(m, HoraLayer)]
    assert layers and not any(len(m.hora_A) or len(m.hora_B) or len(m.hora_mix) for m in layers)
    report = parameter_report(model)
    assert report["free_factors"] == 0
    assert report["hora"] == report["trainable"] == sum(p.numel() for p in bank_of(model).parameters())
    bank = bank_of(model)
    assert report["seeds"] == bank.head_seeds.numel() and report["shared_free"] == bank.free_seeds.numel()


def test_free_factors_start_at_loras_scale():
    bank = bank_of(joint_model("bert"))
    free = bank.generate()["free"]
    width = bank.free_seeds.shape[-1]
    rms = free.pow(2).mean(dim=(1, 2)).sqrt()
    assert torch.allclose(rms, torch.full_like(rms, (3 * width) ** -0.5), rtol=1e-4)


@pytest.mark.parametrize("seed_std", [0.1, 3.0])
def test_seed_std_sets_the_seeds_scale_and_keeps_the_update_zero(seed_std):
    bank = bank_of(joint_model("bert", seed_std=seed_std))
    for seeds in (bank.head_seeds, bank.free_seeds):
        assert seeds.std().item() == pytest.approx(seed_std, rel=0.1)
    assert all(factor.abs().max() == 0 for name, factor in bank.generate().items() if name != "free")


def test_seed_std_must_be_positive():
    with pytest.raises(ValueError, match="seed_std must be a positive number"):
        HoraConfig(generator="joint", seed_std=0.0)


def test_two_layer_gqa_model_trains_saves_loads_merges_and_exports(tmp_path):
    inputs = make_inputs("llama_gqa")
    model = joint_model()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    train_steps(model, inputs, optimizer, 3)
    expected = logits(model, inputs)
    assert not torch.allclose(expected, logits(make_model("llama_gqa"), inputs), atol=1e-4)
    model.save_pretrained(tmp_path / "hora")
    loaded = peft.PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path / "hora")
    assert torch.equal(logits(loaded, inputs), expected)
    export_lora(model, tmp_path / "lora")
    lora = peft.PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path / "lora")
    assert torch.allclose(logits(lora, inputs), expected, atol=1e-5)
    merged = copy.deepcopy(loaded).merge_and_unload()
    assert not any(isinstance(m, HoraLayer) for m in merged.modules())
    assert torch.allclose(logits(merged, inputs), expected, atol=1e-5)


def test_parameter_groups_cover_the_bank():
    bank = bank_of(joint_model())
    grouped = [id(p) for params in bank.parameter_groups().values() for p in params]
    assert sorted(grouped) == sorted(id(p) for p in bank.parameters())


@pytest.mark.parametrize("option", [dict(scope="module"), dict(head_mixing=True), dict(joint_free_factor=True)])
def test_options_that_contradict_the_joint_form_are_refused(option):
    with pytest.raises(ValueError, match="generator='joint'"):
        HoraConfig(generator="joint", **option)


def test_head_counts_that_cannot_share_seeds_are_refused():
    layout = {"q_proj": {"sections": [["q", 4]], "head_dim": 8}, "v_proj": {"sections": [["v", 3]], "head_dim": 8}}
    base = make_model("llama_gqa")
    for layer in base.model.layers:  # v: 3 heads of 8 (24 rows) against q's 4
        layer.self_attn.v_proj = torch.nn.Linear(layer.self_attn.v_proj.in_features, 24, bias=False)
    with pytest.raises(HeadLayoutError, match="must divide 4"):
        peft.get_peft_model(base, HoraConfig(generator="joint", target_modules=["q_proj", "v_proj"],
                                             head_layout=layout))
