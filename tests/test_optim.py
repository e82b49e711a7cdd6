"""Optimizer parameter groups: the shared generator at lr x generator_lr_ratio, everything else at lr."""

from __future__ import annotations

import peft

from hora import param_groups
from tiny_models import hora_model, make_model


def test_param_groups_boost_only_the_generator():
    model = hora_model("llama_gqa", generator_lr_ratio=8.0, head_mixing=True)
    groups = param_groups(model, lr=1e-3)
    bank = model.base_model.hora_bank["default"]
    boosted = next(g for g in groups if g["lr"] == 8e-3)
    assert {id(p) for p in boosted["params"]} == {id(p) for p in bank.generator_parameters()}
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_param_groups_of_a_model_without_hora_are_one_group_of_its_trainable_parameters():
    model = peft.get_peft_model(make_model("llama_gqa"), peft.LoraConfig(r=2, target_modules=["q_proj"]))
    (group,) = param_groups(model, lr=1e-3, weight_decay=0.1)
    assert group["lr"] == 1e-3 and group["weight_decay"] == 0.1
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters() if p.requires_grad]
