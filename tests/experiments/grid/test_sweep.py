"""A small comparison grid end to end: results table, resume, summary and plot."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from hora.experiments.errors import HoraError
from hora.experiments.grid import sweep
from hora.experiments.training.train import TrainConfig


def _base(tiny_bert, tiny_csv):
    return TrainConfig(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                       steps=2, batch_size=8, max_length=16, progress=False)


def test_compare_grid_with_lr_choice_and_resume(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "cmp"
    df = sweep.run_compare(_base(tiny_bert, tiny_csv), ["hora", "lora"], [0.5], [0, 1], out,
                           lrs=[1e-3, 1e-2], progress=False)
    assert len(df) == 2 * 1 * 2 * 2
    table = pd.read_csv(out / "results.csv")
    assert {"method", "fraction", "seed", "score", "val_score", "metric", "predicted_classes", "trainable_params",
            "train_seconds", "lr", "selected"} <= set(table.columns)
    assert set(table["metric"]) == {"accuracy"} and table["predicted_classes"].between(1, 2).all()
    assert not {"test_split", "test_sets"} & set(table.columns)  # settings, not scores of further test sets
    chosen = table[table["selected"]]
    assert len(chosen) == 4  # one lr per (method, fraction), all seeds
    for (_, _), g in table.groupby(["method", "fraction"]):
        best = g.groupby("lr")["val_score"].mean().idxmax()
        assert set(g[g["selected"]]["lr"]) == {best}
    assert "HoRA − LoRA" in (out / "summary.md").read_text()
    assert (out / "accuracy_vs_fraction.png").stat().st_size > 1000
    # resumable: a second call reuses every finished run
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}
    sweep.run_compare(_base(tiny_bert, tiny_csv), ["hora", "lora"], [0.5], [0, 1], out,
                      lrs=[1e-3, 1e-2], progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")} == mtimes


def test_compare_fails_fast_on_bad_grid(tiny_bert, tiny_csv, tmp_path):
    with pytest.raises(HoraError, match="leaves class"):
        sweep.run_compare(_base(tiny_bert, tiny_csv), ["lora"], [0.001], [0], tmp_path / "x", progress=False)
    with pytest.raises(HoraError, match="unknown method"):
        sweep.run_compare(_base(tiny_bert, tiny_csv), ["lora", "ia3x"], [1.0], [0], tmp_path / "x", progress=False)
    assert not (tmp_path / "x" / "runs").exists()


def test_parse_list():
    assert sweep.parse_list("0.05, 0.25,1", float, "fractions") == [0.05, 0.25, 1.0]
    with pytest.raises(HoraError, match="cannot read"):
        sweep.parse_list("a,b", int, "seeds")
    with pytest.raises(HoraError, match="twice"):
        sweep.parse_list("1,1", int, "seeds")


def test_tune_seeds_choose_the_lr_then_the_other_seeds_run_only_at_it(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "cmp"
    df = sweep.run_compare(_base(tiny_bert, tiny_csv), ["lora"], [0.5], [0, 1, 2], out,
                           lrs=[1e-3, 1e-2], tune_seeds=[0], progress=False)
    tuning = df[df["seed"] == 0]
    assert sorted(tuning["lr"]) == [1e-3, 1e-2]
    best = tuning.sort_values("lr").set_index("lr")["val_score"].idxmax()
    others = df[df["seed"] != 0]
    assert sorted(others["seed"]) == [1, 2] and set(others["lr"]) == {best}
    assert set(df[df["selected"]]["seed"]) == {0, 1, 2} and set(df[df["selected"]]["lr"]) == {best}
    with pytest.raises(HoraError, match="tune-seeds must be among"):
        sweep.run_compare(_base(tiny_bert, tiny_csv), ["lora"], [0.5], [0, 1], out, lrs=[1e-3, 1e-2],
                          tune_seeds=[5], progress=False)


def test_a_run_finished_in_another_folder_with_the_same_settings_is_copied_not_retrained(
        tiny_bert, tiny_csv, tmp_path, trained_configs):
    base = _base(tiny_bert, tiny_csv)
    first = sweep.run_compare(base, ["lora"], [0.5], [0], tmp_path / "a", progress=False)
    trained_configs.clear()
    copied = sweep.run_compare(base, ["lora"], [0.5], [0], tmp_path / "b", reuse_from=[tmp_path / "a"],
                               progress=False)
    assert trained_configs == []
    assert copied["score"].tolist() == first["score"].tolist()
    assert [p.name for p in (tmp_path / "b" / "runs").iterdir()] == ["lora_f0.5_lr0.001_s0"]
    # other settings (one more step) do not match: trained, not copied
    sweep.run_compare(dataclasses.replace(base, steps=3), ["lora"], [0.5], [0], tmp_path / "c",
                      reuse_from=[tmp_path / "a"], progress=False)
    assert [c.output for c in trained_configs] == [str(tmp_path / "c" / "runs" / "lora_f0.5_lr0.001_s0")]


def test_compare_scores_a_regression_by_its_metric_and_refuses_one_that_does_not_fit(tiny_bert, tmp_path):
    from conftest import write_pairs

    base = TrainConfig(model=str(tiny_bert), dataset=str(write_pairs(tmp_path / "sts", regression=True)),
                       text_columns="sentence1,sentence2", steps=1, progress=False, metric="matthews")
    with pytest.raises(HoraError, match="metric 'matthews' does not fit a regression task: use pearson or spearman"):
        sweep.run_compare(base, ["hora"], [1.0], [0], tmp_path / "cmp", progress=False)
    assert not (tmp_path / "cmp").exists()
    df = sweep.run_compare(dataclasses.replace(base, metric=None), ["hora", "lora"], [1.0], [0], tmp_path / "cmp",
                           progress=False)
    assert set(df["metric"]) == {"pearson"} and df["score"].between(-1, 1).all()
    assert df["predicted_classes"].isna().all()  # a regression predicts values, not classes
    assert "test Pearson correlation (mean ± sd)" in (tmp_path / "cmp" / "summary.md").read_text()
