"""HoRA on bitsandbytes-quantized bases (QLoRA), beside PEFT's LoRA on the same base; refusal of other back-ends.

A tiny random Llama (hidden 64: bitsandbytes' CPU 4-bit kernel needs in_features >= its block size 64) is
quantized by transformers' BitsAndBytesConfig on CPU. The merge check compares HoRA's merge error with that of
PEFT's LoRA merging the *same* update (HoRA's adapter exported to LoRA), so both requantise the same W + dW.
"""

from __future__ import annotations

import warnings

import peft
import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

from hora import HoraConfig, HoraLayer, UnsupportedQuantizationError, export_lora
from hora.tuner.quantized import _restore_standard_4bit_layout
from tiny_models import GENERATOR_FORMS, make_inputs, make_model, train_steps

bnb = pytest.importorskip("bitsandbytes")

QUANTIZATIONS = {
    "nf4-double-fp32": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                            bnb_4bit_compute_dtype=torch.float32),
    "fp4-bf16": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.bfloat16),
    "int8": dict(load_in_8bit=True),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bitsandbytes/PEFT warn on every 8-bit matmul and every merge
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=64, pad_token_id=0, bos_token_id=1,
                                 eos_token_id=2)).save_pretrained(path)
    return path


def quantized(folder, quantization: str) -> nn.Module:
    config = BitsAndBytesConfig(**QUANTIZATIONS[quantization])
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, dtype=torch.float32).eval()


def trained_hora(folder, quantization: str, generator: str, steps: int = 2) -> peft.PeftModel:
    """HoRA (random init, so that dW != 0) on a quantized base prepared as QLoRA does, after a few AdamW steps."""
    base = peft.prepare_model_for_kbit_training(quantized(folder, quantization))
    torch.manual_seed(0)
    model = peft.get_peft_model(base, HoraConfig(r=2, alpha=4, projections=["q", "k", "v", "o"],
                                                 init_weights=False, generator=generator))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    train_steps(model, inputs_for(model), optimizer, steps)
    return model


def inputs_for(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tiny Llama's inputs on ``model``'s device (transformers loads a quantized model onto the GPU when
    there is one)."""
    device = next(model.parameters()).device
    return {key: value.to(device) for key, value in make_inputs("llama_gqa").items()}


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs_for(model)).logits.float().cpu()


def loss(model: nn.Module) -> torch.Tensor:
    inputs = inputs_for(model)
    return model(**inputs, labels=inputs["input_ids"]).loss


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def merge_errors(model: peft.PeftModel, restore_layout: bool = False) -> tuple[torch.Tensor, float, float]:
    """(unmerged logits, max |merged - unmerged|, max |unmerged again - unmerged|)."""
    def restore() -> None:  # PEFT's LoRA reads the CPU-repacked 4-bit layout as if standard; undo it for LoRA
        for module in model.modules():
            if restore_layout and isinstance(module, bnb.nn.Linear4bit):
                _restore_standard_4bit_layout(module)

    before = logits(model)
    restore()
    model.merge_adapter()
    merged = logits(model)
    restore()
    model.unmerge_adapter()
    return before, max_diff(merged, before), max_diff(logits(model), before)


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_hora_wraps_quantized_layers_with_float32_adapters(folder, quantization):
    model = peft.get_peft_model(quantized(folder, quantization), HoraConfig(r=2, projections=["q", "k", "v", "o"]))
    layers = [m for m in model.modules() if isinstance(m, HoraLayer)]
    assert len(layers) == 8
    base_type = bnb.nn.Linear8bitLt if quantization == "int8" else bnb.nn.Linear4bit
    for layer in layers:
        assert isinstance(layer.get_base_layer(), base_type) and layer.quantization_backend is not None
        # the packed 4-bit weight is (d_in * d_out / 2, 1): dimensions come from the module
        assert (layer.in_features, layer.out_features) == (layer.get_base_layer().in_features,
                                                           layer.get_base_layer().out_features)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("quantization", ["nf4-double-fp32", "int8"])
def test_step0_loss_equals_loras_and_qlora_training_lowers_it(folder, quantization, generator):
    """dW = 0 at step 0 (default init), so HoRA's loss is LoRA's; then AdamW with prepare_model_for_kbit_training's
    gradient checkpointing lowers it."""
    lora = peft.get_peft_model(peft.prepare_model_for_kbit_training(quantized(folder, quantization)),
                               peft.LoraConfig(r=2, target_modules=TARGETS))
    base = peft.prepare_model_for_kbit_training(quantized(folder, quantization))
    assert base.is_gradient_checkpointing
    model = peft.get_peft_model(base, HoraConfig(r=2, projections=["q", "k", "v", "o"], generator=generator))
    model.train(), lora.train()
    start = loss(model)
    assert torch.allclose(start, loss(lora), atol=1e-6)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(4):
        loss(model).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert float(loss(model)) < float(start) - 1e-3


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_merge_error_is_loras_on_the_same_update(folder, tmp_path, quantization, generator):
    """Merging dequantises, adds dW in float32 and requantises: HoRA's merged model differs from its unmerged one
    by what PEFT's LoRA gets merging the same dW (the requantisation), and unmerge restores as LoRA's does.
    (Before hora.tuner.quantized, 8-bit merging added dW to the int8 codes: 0.95 off; 4-bit merging crashed.)"""
    model = trained_hora(folder, quantization, generator)
    with pytest.warns(UserWarning, match="requantises W"):  # said once, as LoRA's "rounding errors" warning
        model.merge_adapter()
    model.unmerge_adapter()
    model = trained_hora(folder, quantization, generator)
    export_lora(model, tmp_path)
    lora = peft.PeftModel.from_pretrained(quantized(folder, quantization), tmp_path)
    before, merge_error, unmerge_error = merge_errors(model)
    lora_before, lora_merge_error, lora_unmerge_error = merge_errors(lora, restore_layout=True)
    assert max_diff(lora_before, before) < 1e-5
    assert merge_error <= 1.5 * lora_merge_error + 1e-4
    assert unmerge_error <= 1.5 * lora_unmerge_error + 1e-4
    # merged outputs are nearer the adapted than the base model's: dW was merged, not lost in the rounding
    assert merge_error < 0.5 * max_diff(before, logits(quantized(folder, quantization)))


@pytest.mark.parametrize("quantization", ["nf4-double-fp32", "int8"])
def test_merge_and_unload_keeps_quantized_layers(folder, quantization):
    """merge_and_unload gives the model merge_adapter gives (two identical runs: unmerging a quantized weight is
    itself lossy), with the bitsandbytes layers in place."""
    model = trained_hora(folder, quantization, "mlp", steps=1)
    model.merge_adapter()
    merged = logits(model)
    plain = trained_hora(folder, quantization, "mlp", steps=1).merge_and_unload()
    assert not any(isinstance(m, HoraLayer) for m in plain.modules())
    base_type = bnb.nn.Linear8bitLt if quantization == "int8" else bnb.nn.Linear4bit
    assert isinstance(plain.model.layers[0].self_attn.q_proj, base_type)
    assert torch.equal(logits(plain), merged)


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("quantization", ["fp4-bf16", "int8"])
def test_save_load_export_and_disable_on_a_quantized_base(folder, tmp_path, quantization, generator):
    model = trained_hora(folder, quantization, generator, steps=1)
    expected = logits(model)
    model.save_pretrained(tmp_path / "hora")
    loaded = peft.PeftModel.from_pretrained(quantized(folder, quantization), tmp_path / "hora")
    assert torch.equal(logits(loaded), expected)
    export_lora(model, tmp_path / "lora")
    lora = peft.PeftModel.from_pretrained(quantized(folder, quantization), tmp_path / "lora")
    # the same dW; with bfloat16 compute a float32 rounding difference upstream can flip one bfloat16 rounding of a
    # quantized layer's input (relative 4e-3 of one entry), so the tolerance there is bfloat16's
    tolerance = 1e-3 if QUANTIZATIONS[quantization].get("bnb_4bit_compute_dtype") == torch.bfloat16 else 1e-5
    assert max_diff(logits(lora), expected) < tolerance
    with loaded.disable_adapter():
        assert torch.equal(logits(loaded), logits(quantized(folder, quantization)))


def test_a_qlora_trained_adapter_loads_and_merges_into_the_unquantized_base(folder, tmp_path):
    """The deployment path docs/operations.md advises: the adapter trained on the 4-bit base, merged into the dense
    base, gives the dense model with the adapter unmerged (a dense merge: float32 rounding only)."""
    trained_hora(folder, "nf4-double-fp32", "mlp", steps=1).save_pretrained(tmp_path)
    dense = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder).eval(), tmp_path)
    expected = logits(dense)
    assert max_diff(logits(dense.merge_and_unload()), expected) < 1e-5


def test_several_adapters_on_a_quantized_base(folder):
    """A second adapter on the same 4-bit layers: each one, active alone, gives its own outputs, and merging the
    first gives exactly the model that merging it without the second gives."""
    model = trained_hora(folder, "nf4-double-fp32", "mlp", steps=1)
    first = logits(model)
    torch.manual_seed(1)
    model.add_adapter("other", HoraConfig(r=2, projections=["q", "k", "v", "o"], init_weights=False))
    model.set_adapter("other")
    assert max_diff(logits(model), first) > 1e-3
    model.set_adapter("default")
    assert torch.equal(logits(model), first)
    model.merge_adapter(["default"])
    alone = trained_hora(folder, "nf4-double-fp32", "mlp", steps=1)
    assert torch.equal(logits(alone), first)  # the same run (and, on CPU, the same repacking of the 4-bit weights)
    alone.merge_adapter()
    assert torch.equal(logits(model), logits(alone))


@pytest.mark.parametrize("quantization", ["nf4-double-fp32", "int8"])
def test_safe_merge_refuses_a_broken_adapter_and_leaves_the_quantized_weight_alone(folder, quantization):
    model = trained_hora(folder, quantization, "mlp", steps=1)
    layer = next(m for m in model.modules() if isinstance(m, HoraLayer))
    weight = layer.get_base_layer().weight
    stored = weight.data.clone()
    with torch.no_grad():
        next(iter(layer.hora_A.values())).fill_(float("nan"))
    with pytest.raises(ValueError, match="NaNs detected in the merged weights"):
        layer.merge(safe_merge=True)
    assert layer.get_base_layer().weight is weight and torch.equal(weight.data, stored) and not layer.merged


class _Packed(torch.Tensor):
    """A tensor subclass standing for a weight a quantization library wraps (as torchao does)."""


def _llama_with(weight: nn.Parameter) -> nn.Module:
    """The tiny Llama of tests/tiny_models.py with ``weight`` as its first q_proj's weight."""
    model = make_model("llama_gqa")
    model.model.layers[0].self_attn.q_proj.weight = weight
    return model


@pytest.mark.parametrize("make_weight", [
    lambda w: nn.Parameter(w.to(torch.float8_e4m3fn), requires_grad=False),
    lambda w: nn.Parameter(torch.Tensor._make_subclass(_Packed, w), requires_grad=False),
    lambda w: nn.Parameter(w.to(torch.int8), requires_grad=False),
], ids=["float8", "tensor-subclass", "int8"])
def test_a_linear_with_a_quantized_weight_hora_does_not_know_is_refused(make_weight):
    model = _llama_with(make_weight(torch.zeros(32, 32)))
    with pytest.raises(UnsupportedQuantizationError, match=r"q_proj.*not a plain floating tensor.*bitsandbytes"):
        peft.get_peft_model(model, HoraConfig(r=2))
    assert not any(isinstance(m, HoraLayer) for m in model.modules())


def test_a_quantized_layer_peft_knows_but_hora_does_not_support_is_refused(monkeypatch):
    """PEFT's resolver names the back-end (GPTQ, AWQ, HQQ, ... when their packages are installed); HoRA refuses
    it by name instead of treating the layer as dense."""
    from peft.utils.quantization_utils import ForwardOnlyQuantizationBackend

    import hora.tuner.quantized

    model = _llama_with(nn.Parameter(torch.zeros(32, 32)))
    target = model.model.layers[0].self_attn.q_proj
    real = hora.tuner.quantized.resolve_quantization_backend
    monkeypatch.setattr(hora.tuner.quantized, "resolve_quantization_backend",
                        lambda layer: ForwardOnlyQuantizationBackend("gptq") if layer is target else real(layer))
    with pytest.raises(UnsupportedQuantizationError, match="quantized with gptq, which HoRA does not support"):
        peft.get_peft_model(model, HoraConfig(r=2))
