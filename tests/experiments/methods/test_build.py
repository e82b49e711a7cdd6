"""Every method builds from PEFT (or HoRA) on the same target modules, with a trainable head."""

from __future__ import annotations

import pytest

from hora.experiments.errors import HoraError
from hora.experiments.methods import build
from hora.experiments.models import loaders


def _base(folder):
    import torch

    torch.manual_seed(0)
    return loaders.load_base_model(folder, "text", ["neg", "pos"])


@pytest.mark.parametrize("method", build.METHODS)
def test_method_builds_with_shared_targets_and_trainable_head(tiny_bert, method):
    base = _base(tiny_bert)
    expected = build.attention_targets(base, ("q", "v"))
    assert expected == [f"bert.encoder.layer.{i}.attention.self.{p}" for i in range(2) for p in ("query", "value")]
    model, info = build.build_adapted_model(method, base, r=4, alpha=8, head_modules=["classifier"])
    trainable, total = build.count_parameters(model)
    if method == "full":
        assert trainable == total and info["targets"] == []
        return
    assert info["targets"] == expected
    assert 0 < trainable < total
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("classifier" in n for n in names), names
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any("attention.self.query.base_layer.weight" in n for n in frozen)


def test_hora_costs_a_little_more_than_lora(tiny_bert):
    hora_model, _ = build.build_adapted_model("hora", _base(tiny_bert), r=4, head_modules=["classifier"])
    lora_model, _ = build.build_adapted_model("lora", _base(tiny_bert), r=4, head_modules=["classifier"])
    import hora

    report = hora.parameter_report(hora_model)
    lora_adapter = sum(p.numel() for n, p in lora_model.named_parameters() if "lora_" in n)
    assert report["lora_equivalent"] == lora_adapter
    assert build.count_parameters(hora_model)[0] > build.count_parameters(lora_model)[0]


def test_bad_method_rank_and_projection():
    with pytest.raises(HoraError, match="unknown method 'adapterx'"):
        build.check_method("adapterx")
    with pytest.raises(HoraError, match="unknown projection"):
        build.parse_projections("q,z")
    assert build.parse_projections("Q, v ,o") == ("q", "v", "o")


def test_hora_info_counts_parameters_of_a_hub_model_from_the_cache(hub_cache):
    report, modules = build.hora_parameter_report("hora-test/tiny-bert", r=4, alpha=8.0, hidden=None, targets="q,v")
    assert modules == 4 and report["hora"] > report["lora_equivalent"] > 0  # query and value of 2 layers
