"""Each benchmark preset end to end, offline: the preset's own settings (data layout, columns, splits, metric,
template, test sets) on tiny fixtures in the benchmark's real format (benchmark_fixtures), with tiny random
models resolved by Hub ID from an offline hub cache (conftest's ``hub_cache``), two methods, one seed, one lr
and 2 steps. The models are random, so the scores are not the point: the pipeline, the metric and the tables are.

On a GPU (issue 25 item 6) the same tests run there and print step times with ``--durations=0``.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from benchmark_fixtures import write_commonsense, write_glue, write_vtab

from hora.experiments.data import commonsense
from hora.experiments.grid import study

TINY = {"methods": ["hora", "lora"], "seeds": [0], "lrs": [1e-3]}


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    """Keep the datasets library's cache of the fixtures out of the user's ~/.cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


def _results(output, name: str) -> pd.DataFrame:
    return pd.read_csv(output / name / "results.csv")


def test_glue_preset_end_to_end(hub_cache, tmp_path):
    root = write_glue(tmp_path)
    out = study.run_study("glue", tmp_path / "glue-out", progress=False, root=str(root),
                          overrides={"model": "hora-test/tiny-bert", "steps": 2, "bf16": False}, protocol=TINY)
    for task, metric in (("sst2", "accuracy"), ("mrpc", "accuracy"), ("cola", "matthews"), ("qnli", "accuracy"),
                         ("rte", "accuracy"), ("stsb", "pearson")):
        df = _results(tmp_path / "glue-out", task)
        assert sorted(df["method"]) == ["hora", "lora"] and set(df["metric"]) == {metric}
        assert df["score"].between(-1, 1).all() and df["val_score"].notna().all()
        assert (df["n_train"] < 32).all()  # the validation split came out of train (GLUE's test is unlabelled)
    text = out.read_text()
    assert "| method | sst2 (accuracy %) | mrpc (accuracy %) | cola (Matthews correlation x 100) | qnli (accuracy %) " \
           "| rte (accuracy %) | stsb (Pearson correlation x 100) | average |" in text
    assert "test Matthews correlation (mean ± sd)" in (tmp_path / "glue-out" / "cola" / "summary.md").read_text()
    assert (tmp_path / "glue-out" / "stsb" / "accuracy_vs_fraction.png").is_file()
    metrics = _first_run_metrics(tmp_path / "glue-out" / "mrpc")
    assert metrics["n_test"] == 16 and metrics["config"]["text_columns"] == "sentence1,sentence2"


def _first_run_metrics(grid_folder) -> dict:
    import json

    run = sorted((grid_folder / "runs").iterdir())[0]
    return json.loads((run / "metrics.json").read_text())


def test_commonsense_preset_trains_once_and_scores_eight_test_sets(hub_cache, tmp_path):
    root = write_commonsense(tmp_path)
    out = study.run_study("commonsense", tmp_path / "cs-out", progress=False, root=str(root),
                          overrides={"model": "hora-test/tiny-llama", "steps": 2, "bf16": False}, protocol=TINY)
    df = _results(tmp_path / "cs-out", "commonsense_170k")
    assert len(df) == 2 and set(df["metric"]) == {"llm-adapters"}  # one fine-tuning per method, not eight
    scores = df[[f"test_{t}" for t in commonsense.TASKS]]
    assert scores.notna().all().all() and scores.apply(lambda c: c.between(0, 1)).all().all()
    for _, row in df.iterrows():  # no test split of commonsense_170k: the run's test score is the test sets' mean
        assert row["score"] == pytest.approx(scores.loc[row.name].mean())
    metrics = _first_run_metrics(tmp_path / "cs-out" / "commonsense_170k")
    assert metrics["n_test"] == 0 and metrics["n_val"] > 0 and metrics["max_new_tokens"] >= 1
    text = out.read_text()
    assert "| method | boolq (LLM-Adapters answer accuracy %) | piqa (LLM-Adapters answer accuracy %) |" in text
    for task in commonsense.TASKS:
        assert (tmp_path / "cs-out" / "commonsense_170k" / task / "summary.md").is_file()


def test_vtab1k_preset_on_two_tasks_in_noahs_layout(hub_cache, tmp_path):
    root = write_vtab(tmp_path, tasks=("cifar", "dtd"))
    out = study.run_study("vtab1k", tmp_path / "vtab-out", only=["cifar", "dtd"], progress=False, root=str(root),
                          overrides={"model": "hora-test/tiny-vit", "steps": 2, "bf16": False}, protocol=TINY)
    for task in ("cifar", "dtd"):
        df = _results(tmp_path / "vtab-out", task)
        assert set(df["metric"]) == {"accuracy"} and df["score"].between(0, 1).all()
        metrics = _first_run_metrics(tmp_path / "vtab-out" / task)
        assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (16, 8, 12)  # train800, val200, test
        assert metrics["kind"] == "image" and metrics["label_names"] == ["0", "1", "2"]
    text = out.read_text()
    assert "| cifar (accuracy %) | dtd (accuracy %) | natural mean | average |" in text
    hora = next(line for line in text.splitlines() if line.startswith("| hora |"))
    cells = [c.strip() for c in hora.strip("|").split("|")]
    assert not math.isnan(float(cells[-1]))  # the average of the natural group's mean
