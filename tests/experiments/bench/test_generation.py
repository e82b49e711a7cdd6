"""Generation counts through forward hooks on the banks: one generation per training forward, cached in
no-grad forwards, a number of products that does not grow with depth, and no hook left behind."""

from __future__ import annotations

import peft
import torch

from hora import HoraConfig
from hora.experiments.bench.generation import generation_counts
from hora.experiments.bench.variants import Settings, build_variant
from hora.experiments.bench.workloads import bert_workload
from hora.tuner.generator import FactorBank


def _count_products(model, batch, monkeypatch) -> int:
    """Python-level calls of torch.einsum/bmm/baddbmm/matmul in one training forward + backward."""
    calls = []
    for name in ("einsum", "bmm", "baddbmm", "matmul"):
        original = getattr(torch, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, name, counting)
    model.train()
    model(**batch)[0].float().pow(2).mean().backward()
    monkeypatch.undo()
    return len(calls)


def test_generator_products_do_not_grow_with_the_number_of_layers(monkeypatch):
    counts = {}
    for layers in (2, 6):
        workload = bert_workload(tiny=True, layers=layers)
        model = build_variant(workload, "hora", Settings(), torch.device("cpu"))
        batch = workload.inputs(torch.device("cpu"))
        counts[layers] = _count_products(model, batch, monkeypatch)
        dispatched = generation_counts(model, batch, workload.loss)  # aten-level, in the bank's generation
        counts[(layers, "aten")] = dispatched["generator_matmuls_per_step"]
        assert dispatched["adapted_layers"] == 3 * layers
        assert dispatched["generations_per_training_step"] == 1
    assert counts[2] == counts[6] == 2 * 3  # two products per projection (q, k, v), one generation per forward
    assert counts[(2, "aten")] == counts[(6, "aten")] == 2 * 3


def test_hora_factors_are_cached_in_no_grad_and_regenerated_after_an_update():
    torch.manual_seed(0)
    workload = bert_workload(tiny=True)
    model = peft.get_peft_model(workload.build(), HoraConfig(r=4, projections=["q", "v"], init_weights=False))
    batch = workload.inputs(torch.device("cpu"))
    before = generation_counts(model, batch, workload.loss)
    assert before["generations_in_eval_forwards"] == 1
    model.eval()
    with torch.no_grad():
        first = model(**batch)[0]
        bank = model.base_model.hora_bank["default"]
        bank.seeds["q"].add_(0.1)  # an in-place update bumps the version: the cache must be refreshed
        second = model(**batch)[0]
    assert not torch.allclose(first, second)


def test_counting_leaves_the_banks_unhooked_and_the_model_in_training_mode():
    workload = bert_workload(tiny=True)
    model = build_variant(workload, "hora", Settings(), torch.device("cpu"))
    generation_counts(model, workload.inputs(torch.device("cpu")), workload.loss)
    banks = [m for m in model.modules() if isinstance(m, FactorBank)]
    assert banks and all(not b._forward_pre_hooks and not b._forward_hooks for b in banks)
    assert all("generate" not in vars(b) for b in banks)  # no method of a live bank was replaced
    assert model.training
