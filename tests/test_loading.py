"""Hostile adapter folders: each a clear AdapterLoadError."""

from __future__ import annotations

import dataclasses
import json

import peft
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hora import HoraConfig
from hora.loading import AdapterLoadError, AdapterShapeError, load_adapter
from tiny_models import DECODER, logits, make_inputs, make_model


@pytest.fixture
def saved(tmp_path):
    model = peft.get_peft_model(make_model("llama_gqa"), HoraConfig(r=2, init_weights=False))
    model.save_pretrained(tmp_path)
    return tmp_path, logits(model, make_inputs("llama_gqa"))


def edit_config(folder, **changes):
    path = folder / "adapter_config.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_valid_adapter_loads_identically(saved):
    folder, expected = saved
    loaded = load_adapter(make_model("llama_gqa"), folder)
    assert torch.equal(logits(loaded, make_inputs("llama_gqa")), expected)


def test_a_saved_config_names_every_field_so_new_defaults_leave_old_adapters_as_saved(saved):
    """An adapter records its form explicitly (e.g. ``"residual": true``), so changing a HoraConfig default
    would not change how an adapter saved before loads."""
    folder, _ = saved
    recorded = json.loads((folder / "adapter_config.json").read_text())
    fields = {f.name for f in dataclasses.fields(HoraConfig) if f.init}
    assert fields <= set(recorded), sorted(fields - set(recorded))
    assert recorded["residual"] is True and recorded["generator"] == "mlp"


def test_truncated_weights(saved):
    folder, _ = saved
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(AdapterLoadError, match="truncated or corrupt"):
        load_adapter(make_model("llama_gqa"), folder)


def test_corrupt_header(saved):
    folder, _ = saved
    (folder / "adapter_model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(AdapterLoadError, match="truncated or corrupt"):
        load_adapter(make_model("llama_gqa"), folder)


@pytest.mark.parametrize("changes, message", [
    ({"r": "8"}, "field 'r' has the wrong type"),
    ({"residual": "yes"}, "field 'residual' has the wrong type"),
    ({"r": True}, "field 'r' has the wrong type"),
    ({"surprise": 1}, r"unknown fields \['surprise'\]"),
    ({"peft_type": "LORA"}, "not HoRA"),
    ({"activation": "softmax"}, "activation must be one of"),
])
def test_bad_config(saved, changes, message):
    folder, _ = saved
    edit_config(folder, **changes)
    with pytest.raises(AdapterLoadError, match=message):
        load_adapter(make_model("llama_gqa"), folder)


def test_config_that_is_not_json(saved):
    folder, _ = saved
    (folder / "adapter_config.json").write_bytes(b"\x80not json")
    with pytest.raises(AdapterLoadError, match="not valid UTF-8 JSON"):
        load_adapter(make_model("llama_gqa"), folder)


def test_missing_files(tmp_path):
    with pytest.raises(AdapterLoadError, match="does not exist"):
        load_adapter(make_model("llama_gqa"), tmp_path)


def test_adapter_for_a_base_model_of_another_shape(saved):
    folder, _ = saved
    with pytest.raises(AdapterLoadError, match="another shape"):
        load_adapter(make_model("llama_mqa_headdim"), folder)


@pytest.mark.parametrize("low_cpu_mem_usage", [False, True])
def test_peft_loading_onto_another_shape_names_module_and_shapes(saved, low_cpu_mem_usage):
    """PeftModel.from_pretrained itself (not only load_adapter) gives one line, not torch's key dump."""
    folder, _ = saved
    with pytest.raises(AdapterShapeError) as caught:
        peft.PeftModel.from_pretrained(make_model("llama_mqa_headdim"), folder, low_cpu_mem_usage=low_cpu_mem_usage)
    message = str(caught.value)
    assert "\n" not in message and "size mismatch" not in message
    assert "the bank tensor 'hora_bank.default." in message and "in the adapter but (" in message
    assert "Load it onto the base model it was trained for" in message


def test_a_layer_mismatch_names_the_module(saved):
    folder, _ = saved
    wider = LlamaForCausalLM(LlamaConfig(**dict(DECODER, hidden_size=48), num_key_value_heads=2))
    with pytest.raises(AdapterShapeError, match=r"module 'model.layers.0.self_attn.q_proj' \(hora_A.default\) has "
                       r"shape \(2, 32\) in the adapter but \(2, 48\) in this model and \d+ more tensors\."):
        peft.PeftModel.from_pretrained(wider, folder)


def test_ignore_mismatched_sizes_still_skips_them(saved):
    folder, _ = saved
    with pytest.warns(UserWarning, match="ignore_mismatched_sizes"):
        peft.PeftModel.from_pretrained(make_model("llama_mqa_headdim"), folder, ignore_mismatched_sizes=True)


def test_adapter_for_another_architecture(saved):
    folder, _ = saved
    edit_config(folder, target_modules=None)
    with pytest.raises(AdapterLoadError, match="does not fit this base model"):
        load_adapter(make_model("phi3_fused"), folder)
