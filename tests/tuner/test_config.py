"""HoraConfig validation and serialisation."""

from __future__ import annotations

import pytest
from peft import PeftConfig

from hora import HoraConfig


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"r": 0}, "r must be a positive integer"),
        ({"r": -3}, "r must be a positive integer"),
        ({"r": 2.5}, "r must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"hidden": 0}, "hidden must be a positive integer"),
        ({"activation": "softmax"}, "activation must be one of"),
        ({"scope": "model"}, "scope must be"),
        ({"generator": "attention"}, "generator must be"),
        ({"w2_init": "large"}, "w2_init must be"),
        ({"projections": ["q", "x"]}, "projections must be"),
        ({"projections": []}, "projections must be"),
        ({"target_modules": ".*query", "layers_to_transform": [0]}, "layers_to_transform cannot"),
        ({"head_layout": ["q"]}, "head_layout must be a dict"),
    ],
)
def test_bad_values_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        HoraConfig(**overrides)


def test_scaling_plain_and_rslora():
    assert HoraConfig(r=8, alpha=16).scaling == 2.0
    assert HoraConfig(r=16, alpha=16, use_rslora=True).scaling == 4.0


def test_round_trip_through_peft_config(tmp_path):
    config = HoraConfig(r=4, alpha=8, hidden=6, activation="tanh", scope="module", projections=["q", "k"],
                        head_layout={"attn.qkv": {"sections": [["q", 2]], "head_dim": 4}})
    config.save_pretrained(tmp_path)
    loaded = PeftConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, HoraConfig)
    assert loaded.peft_type == "HORA"
    for field in ("r", "alpha", "hidden", "activation", "scope", "projections", "head_layout"):
        assert getattr(loaded, field) == getattr(config, field)


def test_peft_type_is_saved_as_a_plain_string_and_reads_like_peft_enum(tmp_path):
    """PEFT's own code reads ``config.peft_type.value`` (model cards, mixed models, hotswap errors)."""
    import json

    config = HoraConfig()
    assert config.peft_type == "HORA" and config.peft_type.value == "HORA" and config.peft_type.name == "HORA"
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "HORA"
    saved_old_style = dict(saved, peft_type="HORA")  # adapters saved before peft_type had .value load too
    (tmp_path / "adapter_config.json").write_text(json.dumps(saved_old_style))
    assert PeftConfig.from_pretrained(tmp_path).peft_type.value == "HORA"


def test_mixed_model_refuses_hora_with_pefts_error():
    import peft

    from tiny_models import make_model

    with pytest.raises(ValueError, match="'HORA' is not compatible with the `PeftMixedModel`"):
        peft.get_peft_model(make_model("llama_gqa"), HoraConfig(r=2), mixed=True)
