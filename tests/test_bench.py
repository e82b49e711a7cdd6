"""The benchmark machinery (not timing thresholds): JSON shape, finite ratios, generation counts."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import peft
import torch

from hora import HoraConfig
from hora.bench import (
    MinimalLoRA,
    PeakMemory,
    Settings,
    bert_workload,
    build_variant,
    compile_report,
    generation_counts,
    run_cpu_suite,
)

ROOT = Path(__file__).resolve().parents[1]
RATIOS = ("train_hora_over_peft_lora", "train_hora_over_minimal_lora", "peak_memory_hora_over_peft_lora",
          "train_hora_joint_over_peft_lora", "peak_memory_hora_joint_over_peft_lora",
          "merged_hora_over_base", "eval_unmerged_hora_over_peft_lora")


def _check_ratios(result: dict) -> None:
    for key in RATIOS:
        value = result["ratios"][key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)


def test_cpu_suite_writes_json_with_positive_finite_ratios(tmp_path):
    out = tmp_path / "bench.json"
    run_cpu_suite(output=out, threads=1, tiny=True, repeats=1, steps=1, warmup=1, eval_steps=1,
                  compile_check=False, log=lambda _: None)
    (result,) = json.loads(out.read_text())["results"]
    assert set(result) >= {"meta", "ratios", "train", "eval", "memory", "generation"}
    assert set(result["train"]) == {"peft_lora", "minimal_lora", "hora", "hora_joint"}
    _check_ratios(result)
    gen = result["generation"]
    assert gen["generations_per_training_step"] == 1
    assert gen["generations_in_eval_forwards"] == 1  # cached across no-grad forwards
    assert gen["generator_matmuls_per_step"] == gen["deeper_model"]["generator_matmuls_per_step"]


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


def test_minimal_lora_and_peak_memory_tracker():
    base = torch.nn.Linear(8, 6)
    layer = MinimalLoRA(base, r=2, alpha=4.0)
    x = torch.randn(3, 8)
    assert torch.allclose(layer(x), base(x))  # B = 0 at init
    with PeakMemory() as tracker:
        a = torch.empty(1000)  # 4000 bytes
        b = torch.empty(500)
        del a
        c = torch.empty(10)
        del b, c
    assert tracker.peak >= 6000 and tracker.current == 0


def test_gpu_script_runs_on_cpu_in_tiny_mode(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "gpu.json"
    data = module.main(["--device", "cpu", "--tiny", "--repeats", "1", "--steps", "1", "--eval-steps", "1",
                        "--warmup", "1", "--output", str(out)])
    results = json.loads(out.read_text())["results"]
    assert [r["meta"]["workload"] for r in results] == ["tiny_llama", "tiny_vit"] == [
        r["meta"]["workload"] for r in data["results"]]
    for result in results:
        _check_ratios(result)
        assert result["generation"]["generations_per_training_step"] == 1


def test_compile_has_no_graph_breaks_in_training_or_unmerged_eval():
    report = compile_report(bert_workload(tiny=True), Settings())
    for mode in ("train", "eval"):
        assert report[mode]["graph_breaks_in_hora_code"] == 0, report[mode]["break_reasons"]
        assert report[mode]["graph_break_count"] == 0, report[mode]["break_reasons"]
