"""The benchmark table: per-task means at the lr chosen on validation, group means and the average."""

from __future__ import annotations

import pandas as pd
import pytest

from hora.experiments.reports import benchmark_report


def _results(scores: dict[str, list[float]], bad_lr_score: float = 0.0) -> pd.DataFrame:
    """Two lrs per method: lr 1 has the better validation score and the test ``scores`` over seeds."""
    rows = []
    for method, values in scores.items():
        for seed, value in enumerate(values):
            rows.append(dict(method=method, fraction=1.0, seed=seed, lr=1.0, accuracy=value, val_accuracy=0.9))
            rows.append(dict(method=method, fraction=1.0, seed=seed, lr=2.0, accuracy=bad_lr_score,
                             val_accuracy=0.1))
    return pd.DataFrame(rows)


def test_task_means_use_the_lr_chosen_on_validation():
    means = benchmark_report.task_means(_results({"hora": [0.5, 0.7], "lora": [0.6, 0.6]}, bad_lr_score=1.0))
    assert means["hora"][0] == pytest.approx(0.6) and means["hora"][2] == 2
    assert means["lora"][:2] == (pytest.approx(0.6), pytest.approx(0.0))


def test_table_with_groups_averages_the_group_means():
    results = {"a": _results({"hora": [0.9], "lora": [0.8]}), "b": _results({"hora": [0.5], "lora": [0.6]}),
               "c": _results({"hora": [0.3], "lora": [0.4]})}
    text = benchmark_report.benchmark_markdown("VTAB", results, dict.fromkeys(results, "accuracy"),
                                               groups={"natural": ("a", "b"), "structured": ("c", "z")})
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    header = "a (accuracy %) | b (accuracy %) | c (accuracy %) | natural mean | structured mean | average"
    assert header in rows["method"]
    # hora: natural (90 + 50) / 2 = 70, structured 30, average (70 + 30) / 2 = 50 (not the task mean 56.7)
    assert rows["hora"].endswith("| 70.0 | 30.0 | 50.0 |")
    assert rows["lora"].endswith("| 70.0 | 40.0 | 55.0 |")
    assert text.index("| hora") < text.index("| lora")


def test_a_method_missing_a_task_has_no_average():
    results = {"sst2": _results({"hora": [0.9, 0.92], "lora": [0.91, 0.93]}), "cola": _results({"lora": [0.6, 0.62]})}
    text = benchmark_report.benchmark_markdown("GLUE", results, {"sst2": "accuracy", "cola": "matthews"})
    assert "| sst2 (accuracy %) | cola (Matthews correlation x 100) | average |" in text
    assert "| hora | 91.0 ± 1.4 | n/a | n/a |" in text
    assert "| lora | 92.0 ± 1.4 | 61.0 ± 1.4 | 76.5 |" in text
