"""Named variants resolve to a base method plus HoraConfig options, and build the intended adapters."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import hora
from hora.experiments.errors import HoraError
from hora.experiments.methods import build, named_variants


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                    intermediate_size=40, vocab_size=64))


def test_unknown_variant_is_a_one_line_error_with_suggestions_not_the_whole_list():
    with pytest.raises(HoraError, match="unknown method 'hroa'; did you mean 'hora'\\? methods: hora, lora, dora, "
                                        "vera, full, a named variant") as error:
        build.check_method("hroa")
    assert "hora-jointgen-glr0.25-p8" not in str(error.value)  # not the 25 names
    with pytest.raises(HoraError, match="did you mean 'lora-matched' or 'lora-matched-jointgen'\\?"):
        build.check_method("lora-macthed")
    with pytest.raises(HoraError, match="unknown method 'xyz'; methods: hora, lora, dora, vera, full, a named .* "
                                        "a PEFT method"):
        build.check_method("xyz")


@pytest.mark.parametrize("name", [n for n, v in named_variants.VARIANTS.items() if v.method == "hora"])
def test_every_hora_variant_builds_with_its_options(name):
    model, _ = build.build_adapted_model(name, tiny_bert(), r=4, head_modules=["classifier"])
    config = model.peft_config["default"]
    for key, value in named_variants.VARIANTS[name].options.items():
        assert getattr(config, key) == value
    assert hora.parameter_report(model)["hora"] > 0


@pytest.mark.parametrize(("lora_name", "hora_name"), [("lora-matched", "hora"),
                                                       ("lora-matched-jointgen", "hora-jointgen")])
def test_lora_matched_reaches_the_matched_horas_parameter_count(lora_name, hora_name):
    hora_model, _ = build.build_adapted_model(hora_name, tiny_bert(), r=4, head_modules=["classifier"])
    lora_model, info = build.build_adapted_model(lora_name, tiny_bert(), r=4, head_modules=["classifier"])
    report = hora.parameter_report(hora_model)
    lora_rank = info["matched_rank"]
    per_rank = report["lora_equivalent"] / 4
    assert lora_rank * per_rank >= report["hora"] > (lora_rank - 1) * per_rank
    assert lora_model.peft_config["default"].r == lora_rank


def test_variant_learning_rate_defaults_to_its_base_method():
    assert build.default_lr("hora-embed") == build.DEFAULT_LR["hora"]
    assert build.default_lr("lora-matched") == build.DEFAULT_LR["lora"]
