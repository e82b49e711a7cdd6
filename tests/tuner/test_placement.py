"""Adapter device and dtype follow PEFT's rules for LoRA: low_cpu_mem_usage (meta, then assign-loading) and
autocast_adapter_dtype (float32 adapters by default, the base dtype when it is False)."""

from __future__ import annotations

import peft
import pytest
import torch

from hora import HoraConfig
from tiny_models import logits, make_inputs, make_model


def hora_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if "hora_" in n}


@pytest.mark.parametrize("overrides", [{}, {"scope": "module", "joint_free_factor": True}, {"generator": "identity"},
                                       {"generator": "joint"}])
def test_low_cpu_mem_usage_loads_identical_outputs(tmp_path, overrides):
    kind = "llama_gqa"
    config = HoraConfig(r=2, projections=["q", "k", "v", "o"], init_weights=False, **overrides)
    torch.manual_seed(0)
    trained = peft.get_peft_model(make_model(kind), config)
    inputs = make_inputs(kind)
    expected = logits(trained, inputs)
    trained.save_pretrained(tmp_path)

    empty = peft.get_peft_model(make_model(kind), config, low_cpu_mem_usage=True)
    assert {p.device.type for p in hora_params(empty).values()} == {"meta"}  # bank included

    loaded = peft.PeftModel.from_pretrained(make_model(kind), tmp_path, low_cpu_mem_usage=True)
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    assert {b.device.type for b in loaded.buffers()} == {"cpu"}
    assert torch.equal(logits(loaded, inputs), expected)

    loaded.load_adapter(tmp_path, adapter_name="other", low_cpu_mem_usage=True)
    loaded.set_adapter("other")
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    assert torch.equal(logits(loaded, inputs), expected)


@pytest.mark.parametrize("generator", ["mlp", "joint"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("autocast", [True, False])
@pytest.mark.parametrize("low_cpu_mem_usage", [True, False])
def test_adapter_dtype_follows_autocast_adapter_dtype(tmp_path, dtype, autocast, low_cpu_mem_usage, generator):
    kind = "gpt2_conv1d"
    expected = torch.float32 if autocast else dtype
    config = HoraConfig(r=2, projections=["q", "v", "o"], generator=generator,
                        joint_free_factor=generator == "mlp")
    model = peft.get_peft_model(make_model(kind).to(dtype), config, autocast_adapter_dtype=autocast)
    model.add_adapter("other", config, autocast_adapter_dtype=autocast)
    assert {p.dtype for p in hora_params(model).values()} == {expected}
    assert any(".hora_bank." in name for name in hora_params(model))
    model.save_pretrained(tmp_path)

    loaded = peft.PeftModel.from_pretrained(make_model(kind).to(dtype), tmp_path, autocast_adapter_dtype=autocast,
                                            low_cpu_mem_usage=low_cpu_mem_usage)
    loaded.load_adapter(tmp_path / "other", adapter_name="other", autocast_adapter_dtype=autocast,
                        low_cpu_mem_usage=low_cpu_mem_usage)
    assert {p.dtype for p in hora_params(loaded).values()} == {expected}


def test_bf16_adapters_without_autocast_train():
    kind = "llama_gqa"
    model = peft.get_peft_model(make_model(kind).to(torch.bfloat16), HoraConfig(r=2, init_weights=False),
                                autocast_adapter_dtype=False)
    model.train()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and {p.dtype for p in trainable.values()} == {torch.bfloat16}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    optimizer = torch.optim.SGD(trainable.values(), lr=0.1)
    inputs = make_inputs(kind)
    loss = model(**inputs, labels=inputs["input_ids"]).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert {p.grad.dtype for p in trainable.values()} == {torch.bfloat16}
    assert all(not torch.equal(before[n], p) for n, p in trainable.items())
