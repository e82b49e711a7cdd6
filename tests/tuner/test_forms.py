"""The generator forms by name (hora.tuner.forms): one bank class per ``HoraConfig.generator`` value, built for the
adapted model, and each layer's factors coming from its form's bank."""

from __future__ import annotations

import peft
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import hora
from hora.tuner.config import GENERATORS
from hora.tuner.forms import BANK_FORMS
from hora.tuner.joint import JointBank
from hora.tuner.seed_banks import EmbeddingBank, IdentityBank, MlpBank


def test_every_generator_name_has_one_bank_class():
    assert set(BANK_FORMS) == set(GENERATORS)
    assert BANK_FORMS == {"mlp": MlpBank, "embedding": EmbeddingBank, "identity": IdentityBank, "joint": JointBank}


@pytest.mark.parametrize("generator", GENERATORS)
def test_a_model_gets_the_bank_of_its_form_and_its_layers_its_factors(generator):
    base = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                    intermediate_size=37, vocab_size=50))
    model = peft.get_peft_model(base, hora.HoraConfig(r=4, generator=generator, target_modules=["query", "value"],
                                                      init_weights=False))
    bank = model.base_model.model.hora.hora_bank["default"]
    assert type(bank) is BANK_FORMS[generator]
    layer = next(m for m in model.modules() if isinstance(m, hora.HoraLayer))
    A, B = layer.factors("default")
    assert A.shape == (4, 32) and B.shape == (32, 4)
    expected = bank.layer_factors(layer, "default", layer.hora_plans["default"], None)
    assert torch.equal(A, expected[0]) and torch.equal(B, expected[1])
    generated = (A, B) if generator == "joint" else (B,)  # query's heads split its output rows: B is generated
    assert all(t.grad_fn is not None for t in generated)  # made by the bank, not a stored parameter
