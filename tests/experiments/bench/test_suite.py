"""The benchmark suites end to end on tiny models (not timing thresholds): JSON shape, finite ratios,
generation counts; the GPU entry point in its CPU smoke mode."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from hora.experiments.bench.suite import run_cpu_suite

ROOT = Path(__file__).resolve().parents[3]
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
        assert result["meta"]["dtype"] == "float32"  # the CPU default
        _check_ratios(result)
        assert result["generation"]["generations_per_training_step"] == 1
