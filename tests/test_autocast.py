"""Half precision where it must not leak: an evaluation forward under bf16/fp16 autocast (as Trainer's evaluation
runs) leaves merge, unmerge, get_delta_weight and the LoRA export in the adapter's own dtype, for every
generator form; and factors generated under autocast are never served outside it."""

from __future__ import annotations

import copy

import peft
import pytest
import torch

from hora import HoraLayer, export_lora
from hora.export import lora_state_dict
from tiny_models import close, hora_model, logits, make_inputs

# every generator form and the config switches the named variants set (hora.experiments.methods.named_variants)
FORMS = {
    "residual": {},
    "non-residual": {"residual": False},
    "joint": {"generator": "joint"},
    "identity": {"generator": "identity"},
    "embedding": {"generator": "embedding"},
    "head-mixing": {"head_mixing": True},
    "joint-free-factor": {"joint_free_factor": True},
    "module-scope": {"scope": "module"},
}
HALF = [torch.bfloat16, torch.float16]


def _layers(model):
    return [m for m in model.modules() if isinstance(m, HoraLayer)]


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("form", FORMS)
def test_autocast_evaluation_then_merge_export_and_fp32_forward_equal_an_untouched_model(form, dtype, tmp_path):
    inputs = make_inputs("llama_gqa")
    untouched = hora_model("llama_gqa", **FORMS[form])
    model = copy.deepcopy(untouched)
    with torch.autocast("cpu", dtype=dtype):  # fills the evaluation cache under autocast
        half = logits(model, inputs)
    assert torch.isfinite(half).all()

    expected = logits(untouched, inputs)
    assert logits(model, inputs).dtype == torch.float32
    assert close(logits(model, inputs), expected)  # not the half-precision factors of the cache
    for layer, reference in zip(_layers(model), _layers(untouched), strict=True):
        delta = layer.get_delta_weight("default")
        assert delta.dtype == torch.float32
        assert torch.equal(delta, reference.get_delta_weight("default"))

    exported, reference = lora_state_dict(model), lora_state_dict(untouched)
    assert all(t.dtype == torch.float32 for t in exported.values())
    assert all(torch.equal(exported[k], reference[k]) for k in reference)
    export_lora(model, tmp_path / "lora")

    model.merge_adapter()
    assert close(logits(model, inputs), expected)
    model.unmerge_adapter()
    assert close(logits(model, inputs), expected)


@pytest.mark.parametrize("form", ["residual", "joint"])
def test_static_factors_ignore_an_enclosing_autocast(form):
    """get_delta_weight and merging are exact even when called inside an autocast region."""
    inputs = make_inputs("llama_gqa")
    model = hora_model("llama_gqa", **FORMS[form])
    expected = logits(model, inputs)
    reference = [layer.get_delta_weight("default") for layer in _layers(model)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        deltas = [layer.get_delta_weight("default") for layer in _layers(model)]
        model.merge_adapter()
    assert all(d.dtype == torch.float32 and torch.equal(d, r) for d, r in zip(deltas, reference, strict=True))
    assert close(logits(model, inputs), expected)


def test_the_cache_serves_each_autocast_state_its_own_factors():
    """Alternating autocast and plain evaluation forwards regenerate only when the state changes."""
    inputs = make_inputs("bert")
    model = hora_model("bert")
    bank = model.base_model.hora_bank["default"]
    dtypes = []
    bank.register_forward_hook(lambda module, args, out: dtypes.append(next(iter(out.values())).dtype))
    plain = logits(model, inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits(model, inputs)
        logits(model, inputs)  # served by the cache
    assert torch.equal(logits(model, inputs), plain)
    assert dtypes == [torch.float32, torch.bfloat16, torch.float32]


def test_a_peft_model_saved_after_autocast_evaluation_reloads_to_the_same_outputs(tmp_path):
    inputs = make_inputs("llama_gqa")
    model = hora_model("llama_gqa", generator="joint")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits(model, inputs)
    expected = logits(model, inputs)
    model.save_pretrained(tmp_path)
    from tiny_models import make_model

    reloaded = peft.PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path)
    assert close(logits(reloaded, inputs), expected)
