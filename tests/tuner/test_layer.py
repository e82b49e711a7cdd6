"""HoraLayer: merging dW into the base weight and back, safe merging, and the free factor's initial scale."""

from __future__ import annotations

import peft
import pytest
import torch

from hora import HoraLayer
from tiny_models import ARCHITECTURES, GENERATOR_FORMS, close, hora_model, logits, make_inputs, make_model


@pytest.mark.parametrize("generator", GENERATOR_FORMS)
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_merge_unmerge_and_merge_and_unload(kind, generator):
    inputs = make_inputs(kind)
    model = hora_model(kind, generator=generator)
    unmerged = logits(model, inputs)
    model.merge_adapter()
    assert close(logits(model, inputs), unmerged, 1e-4)
    model.merge_adapter()  # idempotent: merging again changes nothing
    assert close(logits(model, inputs), unmerged, 1e-4)
    model.unmerge_adapter()
    assert close(logits(model, inputs), unmerged, 1e-4)
    base = logits(make_model(kind), inputs)
    with model.disable_adapter():
        assert close(logits(model, inputs), base, 1e-4)
    merged = model.merge_and_unload()
    assert not any(isinstance(m, HoraLayer) for m in merged.modules())
    assert close(logits(merged, inputs), unmerged, 1e-4)


def test_unmerge_restores_base_weights():
    model = hora_model("llama_gqa")
    before = {k: v.clone() for k, v in model.state_dict().items() if "base_layer" in k}
    model.merge_adapter()
    model.unmerge_adapter()
    after = model.state_dict()
    assert all(torch.allclose(after[k], v, atol=1e-6) for k, v in before.items())


def test_safe_merge_refuses_nan():
    model = hora_model("bert")
    bank = model.base_model.hora_bank["default"]
    with torch.no_grad():
        bank.seeds["q"].fill_(float("nan"))
    before = {k: v.clone() for k, v in model.state_dict().items() if "base_layer" in k}
    with pytest.raises(ValueError, match="NaNs detected in the merged weights. The adapter default seems to be broken"):
        model.base_model.merge_adapter(safe_merge=True)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if ".query." in k)
    with torch.no_grad():  # inf in a free factor: the same error from merge_and_unload
        bank.seeds["q"].fill_(0.5)
        next(iter(model.base_model.model.bert.encoder.layer[0].attention.self.value.hora_A.values())).fill_(float("inf"))
    with pytest.raises(ValueError, match="NaNs detected in the merged weights. The adapter default seems to be broken"):
        model.merge_and_unload(safe_merge=True)


def test_free_factors_have_loras_scale_on_every_projection():
    """A (r x d_in) and o's mirrored B (d_out x r) are both U(+-1/sqrt(d)) over their long side, like LoRA's A,
    so o's update does not grow sqrt(d / r) times faster than LoRA's at the same learning rate."""
    model = hora_model("bert", r=2, init_weights=True)
    lora = peft.get_peft_model(make_model("bert"), peft.LoraConfig(
        r=2, target_modules=["query", "value", "attention.output.dense"], task_type="SEQ_CLS"))
    lora_bound = max(float(m.lora_A["default"].weight.detach().abs().max()) for m in lora.modules()
                     if isinstance(m, peft.tuners.lora.LoraLayer))
    checked = 0
    for layer in (m for m in model.modules() if isinstance(m, HoraLayer)):
        for factors, long_side in ((layer.hora_A, layer.in_features), (layer.hora_B, layer.out_features)):
            if "default" in factors:
                bound, largest = 1 / long_side ** 0.5, float(factors["default"].detach().abs().max())
                assert 0.5 * bound < largest <= bound
                checked += 1
    assert checked >= 8 and any("default" in m.hora_B for m in model.modules() if isinstance(m, HoraLayer))
    assert lora_bound <= 1 / 32 ** 0.5  # LoRA's A on these 32-wide modules: the same bound


def test_unmerge_without_merge_warns_and_changes_nothing():
    model = hora_model("gpt2_conv1d")
    layer = next(m for m in model.modules() if isinstance(m, HoraLayer))
    weight = layer.get_base_layer().weight.detach().clone()
    with pytest.warns(UserWarning, match="Already unmerged"):
        layer.unmerge()
    assert torch.equal(layer.get_base_layer().weight, weight)
    assert repr(layer).startswith("hora.HoraLayer(")


def test_a_further_adapter_with_other_heads_is_refused_and_one_with_the_same_heads_is_added():
    from dataclasses import replace

    from hora.tuner.heads import HeadLayoutError
    from hora.tuner.layer import layer_options

    model = hora_model("llama_gqa")
    layer = next(m for m in model.modules() if isinstance(m, HoraLayer))
    options = layer_options(model.peft_config["default"])
    other = replace(layer.layout, head_dim=layer.layout.head_dim // 2)
    with pytest.raises(HeadLayoutError, match="'attn.q' the layout .* all adapters must agree"):
        layer.add_adapter("second", other, "attn.q", options)
    assert "second" not in layer.hora_r  # nothing was added
    layer.add_adapter("second", layer.layout, "attn.q", options)
    assert "second" in layer.hora_r
