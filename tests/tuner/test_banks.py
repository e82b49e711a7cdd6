"""The banks on the model (hora.tuner.banks): an injected model trains them, saved keys, old adapters, unload.
(inject_adapter_in_model against get_peft_model on every layout: tests/tuner/test_model.py.)"""

from __future__ import annotations

from pathlib import Path

import peft
import pytest
import torch
from safetensors.torch import load_file

from hora import HoraConfig
from hora.tuner.banks import ATTRIBUTE, HoraBanks, legacy_key
from tiny_models import hora_model, logits, make_inputs, make_model, task_type

LEGACY = Path(__file__).parents[1] / "data" / "hora_adapter_before_issue27"


def injected(kind: str, **overrides) -> torch.nn.Module:
    """``kind`` adapted by inject_adapter_in_model with the config of tiny_models.hora_model, no PeftModel."""
    settings = dict(r=2, alpha=4, projections=["q", "k", "v", "o"], init_weights=False, task_type=task_type(kind))
    settings.update(overrides)
    return peft.inject_adapter_in_model(HoraConfig(**settings), make_model(kind))


def test_an_injected_model_trains_its_bank():
    model = injected("llama_gqa", init_weights=True)
    bank = getattr(model, ATTRIBUTE).hora_bank["default"]
    assert all(p.requires_grad for p in bank.parameters())
    model.train()
    model(**make_inputs("llama_gqa")).logits.pow(2).mean().backward()
    assert all(p.grad is not None for p in bank.parameters())


def test_adapter_saved_before_the_banks_moved_still_loads():
    """Saved by main at 98b9413 (tests/data/hora_adapter_before_issue27: tiny_models.hora_model("bert")), when the
    banks lived on the tuner and were saved as base_model.hora_bank.*; its logits were saved beside it."""
    keys = load_file(LEGACY / "adapter_model.safetensors")
    assert any(k.startswith("base_model.hora_bank.") for k in keys)
    loaded = peft.PeftModel.from_pretrained(make_model("bert"), LEGACY)
    expected = load_file(LEGACY / "expected_logits.safetensors")["logits"]
    # computed on another machine: its CPU's kernels may round the last bits otherwise; a wrongly loaded
    # weight moves the logits by orders of magnitude more
    torch.testing.assert_close(logits(loaded, make_inputs("bert")), expected, rtol=1e-5, atol=1e-6)


def test_saved_keys_and_the_legacy_mapping(tmp_path):
    model = hora_model("llama_gqa")
    model.save_pretrained(tmp_path)
    keys = load_file(tmp_path / "adapter_model.safetensors")
    assert "base_model.model.hora.hora_bank.seeds.q" in keys
    assert legacy_key("base_model.hora_bank.seeds.q") == "base_model.model.hora.hora_bank.seeds.q"
    assert legacy_key("base_model.model.x.hora_A") == "base_model.model.x.hora_A"


def test_disabling_keeps_the_active_bank_trainable_after():
    model = hora_model("llama_gqa", init_weights=True)
    bank = model.base_model.hora_bank["default"]
    with model.disable_adapter():
        assert not any(p.requires_grad for p in bank.parameters())
    assert all(p.requires_grad for p in bank.parameters())


def test_unload_removes_the_banks_and_their_hooks():
    model = hora_model("llama_gqa")
    base = model.unload()
    assert not hasattr(base, ATTRIBUTE)
    assert not base._forward_pre_hooks and not base._forward_hooks and not base._load_state_dict_pre_hooks


def test_a_sequential_root_keeps_its_output():
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    layout = {"0": {"sections": [["q", 2]], "head_dim": 4}}
    x = torch.randn(3, 8)
    expected = base(x)
    model = peft.get_peft_model(base, HoraConfig(r=2, target_modules=["0"], head_layout=layout))  # dW = 0
    assert isinstance(model.base_model.model[-1], HoraBanks) and torch.equal(model(x), expected)


def test_a_model_attribute_named_like_the_banks_is_refused():
    model = make_model("llama_gqa")
    model.hora = 1
    with pytest.raises(AttributeError, match="already has an attribute 'hora'"):
        peft.get_peft_model(model, HoraConfig(r=2))


def cpu_replicas(model: torch.nn.Module, copies: int, monkeypatch) -> list[torch.nn.Module]:
    """``torch.nn.parallel.replicate``, nn.DataParallel's copier, run on the CPU: its broadcast (CUDA only) is
    replaced by clones that keep the autograd link to the original parameters, as the broadcast does."""
    import importlib

    module = importlib.import_module("torch.nn.parallel.replicate")  # the module (the package exports the function)

    def broadcast(tensors, devices, detach=False):
        return [[t.detach().clone() if detach else t.clone() for t in tensors] for _ in devices]

    monkeypatch.setattr(module, "_broadcast_coalesced_reshape", broadcast)
    return module.replicate(model, list(range(copies)))


@pytest.mark.parametrize("generator", ["mlp", "joint"])
def test_a_data_parallel_replica_runs_its_own_banks_and_sends_gradients_home(generator, monkeypatch):
    """A replica's layers read the replica's banks (its device's copy), not the original's, and the gradients of
    all replicas reach the original bank, as for any other parameter under nn.DataParallel."""
    inputs = make_inputs("llama_gqa")
    model = hora_model("llama_gqa", generator=generator).base_model.model
    original_bank = HoraBanks.of(model).hora_bank["default"]
    model.train()
    model(**inputs).logits.pow(2).mean().backward()
    expected = {name: 2 * p.grad for name, p in original_bank.named_parameters()}
    model.zero_grad()

    replicas = cpu_replicas(model, 2, monkeypatch)
    outputs = [replica(**inputs).logits for replica in replicas]
    for replica in replicas:
        replica_bank = HoraBanks.of(replica).hora_bank["default"]
        layers = [m for m in replica.modules() if hasattr(m, "hora_plans")]
        assert layers and all(layer.hora_banks["default"] is replica_bank for layer in layers)
    originals = [m for m in model.modules() if hasattr(m, "hora_plans")]
    assert all(layer.hora_banks["default"] is original_bank for layer in originals)
    sum(out.pow(2).mean() for out in outputs).backward()
    for name, p in original_bank.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-6), name


def test_a_replica_in_evaluation_does_not_serve_the_original_cache(monkeypatch):
    inputs = make_inputs("bert")
    model = hora_model("bert").base_model.model
    logits(model, inputs)  # fills the original bank's cache
    (replica,) = cpu_replicas(model, 1, monkeypatch)
    with torch.no_grad():
        next(iter(HoraBanks.of(replica).hora_bank["default"].seeds.values())).mul_(0)  # only the replica's copy
    assert not torch.allclose(logits(replica, inputs), logits(model, inputs))
