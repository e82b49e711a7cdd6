"""PEFT's tuner checklist for HoRA on every supported head layout (tiny random models), nn.MultiheadAttention
and PEFT's inject_adapter_in_model included."""

from __future__ import annotations

import copy

import peft
import pytest
import torch

import mha_like
from hora import HoraConfig, HoraLayer
from hora.tuner.config import PROJECTIONS
from tiny_models import (
    ARCHITECTURES,
    GENERATOR_FORMS,
    close,
    hora_model,
    logits,
    make_inputs,
    make_model,
    task_type,
    train_steps,
)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_output_equals_base_at_init(kind, generator):
    inputs = make_inputs(kind)
    base = logits(make_model(kind), inputs)
    model = hora_model(kind, init_weights=True, generator=generator)
    if task_type(kind):  # the classifier head is trainable but unchanged
        assert close(logits(model, inputs), base)
    else:
        assert torch.equal(logits(model, inputs), base)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_random_init_changes_output(kind, generator):
    inputs = make_inputs(kind)
    assert not close(logits(hora_model(kind, generator=generator), inputs), logits(make_model(kind), inputs), 1e-3)


def test_unload_returns_the_base_model():
    inputs = make_inputs("bert")
    model = hora_model("bert")
    plain = model.unload()
    assert not any(isinstance(m, HoraLayer) for m in plain.modules())
    reference = make_model("bert")
    reference.classifier = plain.classifier
    assert close(logits(plain, inputs), logits(reference, inputs))


@pytest.mark.parametrize("kind", ["bert", "llama_gqa", "gpt2_conv1d"])
def test_only_adapter_parameters_train(kind):
    inputs = make_inputs(kind)
    model = hora_model(kind, init_weights=True)
    model.train()
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any("hora_bank" in n for n in trainable) and any("hora_A" in n for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        out = model(**inputs).logits
        out.float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in frozen.items())
    changed = [n for n, p in trainable.items() if not torch.equal(params[n], p)]
    assert any("seeds" in n for n in changed) and any("output_heads" in n for n in changed)
    assert not close(logits(model, inputs), logits(make_model(kind), inputs), 1e-4)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_save_load_round_trip(kind, generator, tmp_path):
    inputs = make_inputs(kind)
    model = hora_model(kind, generator=generator)
    expected = logits(model, inputs)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "adapter_model.safetensors").exists()
    loaded = peft.PeftModel.from_pretrained(make_model(kind), tmp_path)
    assert torch.equal(logits(loaded, inputs), expected)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_round_trip_after_training_and_under_another_name(tmp_path):
    inputs = make_inputs("bert")
    model = hora_model("bert", init_weights=True)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    train_steps(model, inputs, optimizer, 3)
    expected = logits(model, inputs)
    model.save_pretrained(tmp_path)
    loaded = peft.PeftModel.from_pretrained(make_model("bert"), tmp_path, adapter_name="other", is_trainable=True)
    assert torch.equal(logits(loaded, inputs), expected)
    assert any(p.requires_grad for n, p in loaded.named_parameters() if "hora_bank.other" in n)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
def test_several_adapters_switch_add_delete(tmp_path, generator):
    inputs = make_inputs("llama_gqa")
    first = hora_model("llama_gqa", adapter_seed=1)
    out_first = logits(first, inputs)
    second = hora_model("llama_gqa", adapter_seed=2, generator=generator)
    out_second = logits(second, inputs)
    second.save_pretrained(tmp_path)
    first.load_adapter(tmp_path, adapter_name="second")
    assert torch.equal(logits(first, inputs), out_first)
    first.set_adapter("second")
    assert torch.equal(logits(first, inputs), out_second)
    banks = first.base_model.hora_bank
    assert all(p.requires_grad for p in banks["second"].parameters())
    assert not any(p.requires_grad for p in banks["default"].parameters())
    first.set_adapter("default")
    assert torch.equal(logits(first, inputs), out_first)
    first.delete_adapter("second")
    assert "second" not in first.base_model.hora_bank
    assert torch.equal(logits(first, inputs), out_first)


def test_add_adapter_builds_its_own_bank():
    model = hora_model("bert")
    model.add_adapter("extra", HoraConfig(r=3, projections=["q", "v"], task_type="SEQ_CLS"))
    bank = model.base_model.hora_bank["extra"]
    assert bank.seeds["q"].shape == (2, 4, 8, 3)
    assert set(bank.seeds) == {"q", "v"}


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_forward_is_finite(dtype, generator):
    inputs = make_inputs("llama_gqa")
    model = hora_model("llama_gqa", generator=generator)
    model.to(dtype)
    out = logits(model, inputs)
    assert out.dtype == dtype and torch.isfinite(out).all()


def test_fp32_adapters_under_bf16_base_and_autocast():
    inputs = make_inputs("llama_gqa")
    base = make_model("llama_gqa").to(torch.bfloat16)
    model = peft.get_peft_model(base, HoraConfig(r=2, init_weights=False))
    bank = model.base_model.hora_bank["default"]
    assert all(p.dtype == torch.float32 for p in bank.parameters())
    out = logits(model, inputs)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**inputs).logits.float().pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in bank.parameters())


def test_eval_factors_are_cached_until_parameters_change():
    inputs = make_inputs("bert")
    model = hora_model("bert")
    bank = model.base_model.hora_bank["default"]
    calls = []
    original = bank.generate
    bank.generate = lambda: calls.append(1) or original()
    logits(model, inputs)
    logits(model, inputs)
    assert len(calls) == 1
    with torch.no_grad():
        bank.seeds["q"].add_(1.0)
    logits(model, inputs)
    assert len(calls) == 2


def test_training_generates_once_per_forward_and_supports_accumulation():
    inputs = make_inputs("bert")
    model = hora_model("bert")
    model.train()
    bank = model.base_model.hora_bank["default"]
    calls = []
    original = bank.generate
    bank.generate = lambda: calls.append(1) or original()
    for _ in range(2):  # gradient accumulation: two backward passes before any step
        model(**inputs).logits.pow(2).mean().backward()
    assert len(calls) == 2


def test_copied_model_is_independent():
    inputs = make_inputs("bert")
    model = hora_model("bert")
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.base_model.hora_bank["default"].seeds["q"].add_(1.0)
    assert not close(logits(clone, inputs), logits(model, inputs), 1e-4)


def test_modules_to_save_are_trained_and_saved(tmp_path):
    inputs = make_inputs("llama_gqa")
    model = hora_model("llama_gqa", modules_to_save=["lm_head"])
    with torch.no_grad():
        model.base_model.model.lm_head.modules_to_save["default"].weight.mul_(2.0)
    expected = logits(model, inputs)
    model.save_pretrained(tmp_path)
    loaded = peft.PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path)
    assert torch.equal(logits(loaded, inputs), expected)


def test_a_head_named_by_the_user_and_by_peft_is_saved_once(tmp_path):
    """PeftModelForSequenceClassification appends "classifier" and "score" to the modules_to_save given."""
    import json

    model = hora_model("bert", modules_to_save=["classifier"])
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["modules_to_save"] == ["classifier", "score"]
    loaded = peft.PeftModel.from_pretrained(make_model("bert"), tmp_path)
    assert loaded.peft_config["default"].modules_to_save == ["classifier", "score"]


def test_layers_to_transform_limits_adaptation():
    model = hora_model("llama_gqa", layers_to_transform=[1])
    names = [n for n, m in model.named_modules() if isinstance(m, HoraLayer)]
    assert names and all(".layers.1." in n for n in names)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(reentrant, generator):
    inputs = make_inputs("llama_gqa")
    grads = []
    for checkpointing in (False, True):
        model = hora_model("llama_gqa", generator=generator)
        if checkpointing:
            model.base_model.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": reentrant})
            model.enable_input_require_grads()
        model.train()
        model(**inputs).logits.pow(2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


@pytest.mark.parametrize("is_trainable", [False, True])
def test_loading_another_adapter_keeps_trainability(tmp_path, is_trainable):
    """PEFT's rule: load_adapter leaves existing adapters' trainability alone, the bank included."""
    hora_model("llama_gqa").save_pretrained(tmp_path)
    model = peft.PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path, is_trainable=is_trainable)
    model.load_adapter(tmp_path, adapter_name="other", is_trainable=is_trainable)
    for name, param in model.named_parameters():
        adapter = ".default" in name or ".other" in name
        assert param.requires_grad == (is_trainable and adapter), name


def test_mixed_adapter_batches_are_refused_as_peft_does():
    """PEFT drops ``adapter_names`` silently for tuners without support; HoRA says so instead."""
    model = hora_model("llama_gqa")
    model.add_adapter("other", HoraConfig(r=2, init_weights=False))
    inputs = make_inputs("llama_gqa")
    for call in (model, model.generate):
        with pytest.raises(ValueError, match="Cannot pass `adapter_names` to a HoRA model"):
            call(**inputs, adapter_names=["default", "other"])
    assert logits(model, inputs).shape[0] == 2  # without it, the forward runs as before


def test_torch_compile_of_the_merged_model():
    inputs = make_inputs("llama_gqa")
    model = hora_model("llama_gqa")
    expected = logits(model, inputs)
    merged = model.merge_and_unload()
    compiled = torch.compile(merged, backend="aot_eager", fullgraph=True)
    assert close(logits(compiled, inputs), expected, 1e-4)


def test_the_tuner_is_found_through_peft_and_other_wrappers():
    from hora.tuner.model import find_hora_tuner, hora_tuner

    model = hora_model("bert")
    tuner = model.base_model
    assert hora_tuner(model) is tuner and hora_tuner(tuner) is tuner
    assert find_hora_tuner(torch.nn.Sequential(model)) is tuner  # e.g. a DDP wrapper
    lora = peft.get_peft_model(make_model("bert"), peft.LoraConfig(target_modules=["query"]))
    assert find_hora_tuner(lora) is None
    with pytest.raises(TypeError, match="Expected a HoRA PeftModel"):
        hora_tuner(lora)


# nn.MultiheadAttention: torchvision's ViT and an OpenCLIP text tower (tests/mha_like.py; merge, export and the
# attention's own cases are in tests/tuner/test_mha.py)
MHA_KINDS = ["torchvision_vit", "openclip_text"]


def mha_model(kind: str, generator: str, init_weights: bool = False) -> peft.PeftModel:
    torch.manual_seed(0)
    config = HoraConfig(r=2, alpha=4, projections=list(PROJECTIONS), init_weights=init_weights, generator=generator)
    return peft.get_peft_model(mha_like.make(kind), config)


def mha_outputs(model: torch.nn.Module, kind: str) -> torch.Tensor:
    with torch.no_grad():
        return model(mha_like.inputs(kind))


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", MHA_KINDS)
def test_multihead_attention_checklist(kind, generator, tmp_path):
    base = mha_outputs(mha_like.make(kind), kind)
    assert torch.equal(mha_outputs(mha_model(kind, generator, init_weights=True), kind), base)
    model = mha_model(kind, generator)
    expected = mha_outputs(model, kind)
    assert not close(expected, base, 1e-3)
    assert all(".hora" in n or "hora_" in n for n, p in model.named_parameters() if p.requires_grad)
    model.save_pretrained(tmp_path)
    loaded = peft.PeftModel.from_pretrained(mha_like.make(kind), tmp_path)
    assert torch.equal(mha_outputs(loaded, kind), expected)
    assert not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(mha_outputs(model.unload(), kind), base)


# PEFT's inject_adapter_in_model: the layers and the banks (model.hora) without a PeftModel, loaded with
# set_peft_model_state_dict, give get_peft_model's outputs; the injected model's own state dict round-trips
def injected(model: torch.nn.Module, generator: str, kind: str) -> torch.nn.Module:
    config = HoraConfig(r=2, alpha=4, projections=list(PROJECTIONS), init_weights=False, generator=generator,
                        task_type=task_type(kind))
    return peft.inject_adapter_in_model(config, model)


def check_injected(reference: peft.PeftModel, model: torch.nn.Module, run) -> None:
    saved = {k: v for k, v in peft.get_peft_model_state_dict(reference).items() if "hora" in k}
    assert not isinstance(model, peft.PeftModel)
    result = peft.set_peft_model_state_dict(model, saved)
    assert not result.unexpected_keys and not [k for k in result.missing_keys if "hora" in k]
    assert torch.equal(run(model), run(reference))
    own = peft.get_peft_model_state_dict(model)  # keys without the PeftModel prefix
    assert any(k.startswith("hora.hora_bank.") for k in own)
    assert {f"base_model.model.{k}" for k in own} == saved.keys()
    assert all(torch.equal(v, saved[f"base_model.model.{k}"]) for k, v in own.items())


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_inject_adapter_in_model_equals_get_peft_model(kind, generator):
    inputs = make_inputs(kind)
    check_injected(hora_model(kind, generator=generator), injected(make_model(kind), generator, kind),
                   lambda model: logits(model, inputs))


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", MHA_KINDS)
def test_inject_adapter_in_model_on_multihead_attention(kind, generator):
    check_injected(mha_model(kind, generator), injected(mha_like.make(kind), generator, None),
                   lambda model: mha_outputs(model, kind))
