"""Exact export of HoRA adapters to standard PEFT LoRA adapters, and the identity-generator control."""

from __future__ import annotations

import json

import peft
import pytest
import torch

from hora import HoraConfig, HoraLayer, export_lora
from tiny_models import ARCHITECTURES, logits, make_inputs, make_model, task_type, train_steps


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_exported_lora_reproduces_logits(kind, tmp_path):
    inputs = make_inputs(kind)
    config = HoraConfig(r=2, projections=["q", "k", "v", "o"], init_weights=False, task_type=task_type(kind))
    model = peft.get_peft_model(make_model(kind), config)
    expected = logits(model, inputs)
    export_lora(model, tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["r"] == 2
    lora = peft.PeftModel.from_pretrained(make_model(kind), tmp_path)
    assert isinstance(lora.base_model, peft.LoraModel)
    assert relative_error(logits(lora, inputs), expected) <= 1e-5


def test_export_after_training_with_joint_free_factor(tmp_path):
    inputs = make_inputs("llama_gqa")
    config = HoraConfig(r=4, projections=["q", "k", "v", "o"], joint_free_factor=True, init_weights=False)
    model = peft.get_peft_model(make_model("llama_gqa"), config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    train_steps(model, inputs, optimizer, 2)
    export_lora(model, tmp_path)
    lora = peft.PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path)
    assert relative_error(logits(lora, inputs), logits(model, inputs)) <= 1e-5


def test_identity_generator_reproduces_peft_lora_exactly():
    """generator="identity" without joint free factors is LoRA: copy LoRA's factors in, get its outputs."""
    inputs = make_inputs("llama_gqa")
    torch.manual_seed(0)
    lora = peft.get_peft_model(make_model("llama_gqa"), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    hora = peft.get_peft_model(make_model("llama_gqa"), HoraConfig(r=4, alpha=8, generator="identity"))
    bank = hora.base_model.hora_bank["default"]
    assert bank.generated_parameters() == 0
    lora_modules = dict(lora.base_model.model.named_modules())
    with torch.no_grad():
        for name, layer in hora.base_model.model.named_modules():
            if not isinstance(layer, HoraLayer):
                continue
            source = lora_modules[name]
            layer.hora_A["default"].copy_(source.lora_A["default"].weight)
            (slot,) = layer.hora_plans["default"].slots
            heads = slot.num_heads
            bank.seeds[slot.projection][slot.index].copy_(source.lora_B["default"].weight.view(heads, -1, 4))
    assert torch.equal(logits(hora, inputs), logits(lora, inputs))


def test_export_rejects_unknown_adapter(tmp_path):
    model = peft.get_peft_model(make_model("bert"), HoraConfig(task_type="SEQ_CLS"))
    with pytest.raises(ValueError, match="No HoRA adapter named 'nope'"):
        export_lora(model, tmp_path, adapter_name="nope")
    with pytest.raises(TypeError, match="HoRA PeftModel"):
        export_lora(peft.get_peft_model(make_model("llama_gqa"), peft.LoraConfig(target_modules=["q_proj"])),
                    tmp_path)
