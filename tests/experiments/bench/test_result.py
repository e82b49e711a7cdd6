"""The run record's JSON shape and its table."""

from __future__ import annotations

from hora.experiments.bench.result import BenchResult, format_result


def test_format_result_lists_medians_and_ratios():
    result = BenchResult({"workload": "w", "description": "d", "device": "cpu", "dtype": "float32", "threads": 1},
                         ratios={"train_hora_over_peft_lora": 0.5},
                         train={"hora": {"median_s": 0.002, "n": 3}})
    table = format_result(result)
    assert "== w: d (cpu, float32, 1 threads)" in table
    assert "2.00 ms (median of 3)" in table and "train_hora_over_peft_lora" in table and "0.500" in table
    assert set(result.as_dict()) == {"meta", "ratios", "train", "eval", "memory", "generation", "compile"}
