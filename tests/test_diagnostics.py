"""Exact parameter accounting and the collapse diagnostics."""

from __future__ import annotations

import peft
import pytest
import torch

from hora import HoraConfig, export_lora, parameter_report
from hora.diagnostics import adapter_diagnostics, head_shared_energy, lora_diagnostics, stable_rank
from hora.tuner.config import PROJECTIONS
from tiny_models import make_model, task_type


def test_parameter_report_matches_the_formula_on_gqa():
    # llama_gqa: 2 layers, hidden 32, H_q 4, H_kv 2, d_h 8; q: 32->32, v: 32->16
    r, p = 4, 6
    model = peft.get_peft_model(make_model("llama_gqa"), HoraConfig(r=r, hidden=p))
    report = parameter_report(model)
    layers, d_h = 2, 8
    assert report["seeds"] == layers * (4 + 2) * d_h * r
    assert report["free_factors"] == layers * 2 * r * 32
    assert report["generator"] == layers * p * d_h * (1 + 2)  # W1 + one W2 per projection
    assert report["lora_equivalent"] == layers * r * ((32 + 32) + (32 + 16))
    assert report["hora"] == report["seeds"] + report["free_factors"] + report["generator"]
    assert report["hora"] - report["generator"] == report["lora_equivalent"]
    assert report["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert report["trainable"] == report["hora"] + report["other_trainable"]


def test_identity_generator_has_exactly_lora_parameters():
    model = peft.get_peft_model(make_model("bert"), HoraConfig(generator="identity", task_type="SEQ_CLS"))
    lora = peft.get_peft_model(make_model("bert"), peft.LoraConfig(r=8, target_modules=["query", "value"],
                                                                   task_type="SEQ_CLS"))
    report = parameter_report(model)
    assert report["hora"] == report["lora_equivalent"]
    assert report["trainable"] == sum(p.numel() for p in lora.parameters() if p.requires_grad)


def test_stable_rank_and_head_shared_energy_on_known_matrices():
    assert stable_rank(torch.outer(torch.randn(5), torch.randn(7))) == pytest.approx(1.0)
    assert stable_rank(torch.eye(4)) == pytest.approx(4.0)
    same = torch.randn(1, 8, 2).repeat(6, 1, 1)
    assert head_shared_energy(same) == pytest.approx(1.0)
    opposite = torch.cat([same[:3], -same[:3]])
    assert head_shared_energy(opposite) == pytest.approx(0.0)
    torch.manual_seed(0)
    unrelated = torch.randn(12, 256, 4)
    assert abs(head_shared_energy(unrelated) - 1 / 12) < 0.02


def test_adapter_diagnostics_report_every_module():
    model = peft.get_peft_model(make_model("llama_gqa"), HoraConfig(r=4, init_weights=False))
    diagnostics = adapter_diagnostics(model)
    assert len(diagnostics["modules"]) == 4
    assert 1.0 <= diagnostics["stable_rank"] <= 4.0
    assert 0.0 < diagnostics["head_shared_energy"] < 1.0
    assert 0.0 < diagnostics["generator_share"]
    identity = peft.get_peft_model(make_model("llama_gqa"), HoraConfig(r=4, generator="identity",
                                                                       init_weights=False))
    assert adapter_diagnostics(identity)["generator_share"] == 0.0


@pytest.mark.parametrize("kind", ["bert", "llama_gqa", "phi3_fused"])
def test_lora_diagnostics_of_an_exported_adapter_equal_horas(kind, tmp_path):
    """The exported LoRA is the same update as the HoRA adapter, so LoRA's diagnostics (the head factor split
    by the same layout, fused q|k|v sections included) give HoRA's, module by module."""
    config = HoraConfig(r=2, projections=list(PROJECTIONS), init_weights=False, task_type=task_type(kind))
    model = peft.get_peft_model(make_model(kind), config)
    export_lora(model, tmp_path)
    lora = peft.PeftModel.from_pretrained(make_model(kind), tmp_path)
    expected, found = adapter_diagnostics(model), lora_diagnostics(lora)
    assert found["modules"].keys() == expected["modules"].keys()
    for name, values in found["modules"].items():
        for key in ("stable_rank", "head_shared_energy"):
            assert values[key] == pytest.approx(expected["modules"][name][key], rel=1e-4), (name, key)
    assert lora_diagnostics(lora, adapter_name="other") == {}
