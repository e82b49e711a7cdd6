"""Summary statistics, learning-rate choice on validation, paired HoRA − LoRA intervals, the plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hora.experiments.errors import HoraError
from hora.experiments.reports import report


@pytest.mark.parametrize("df,expected", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (29, 2.045)])
def test_t_quantile_matches_tables(df, expected):
    assert report.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)


def _table() -> pd.DataFrame:
    """Two methods x two fractions x three seeds x two lrs with known numbers.

    At lr 0.01 test accuracy is high but validation low: the choice must ignore test and pick lr 0.001.
    """
    rows = []
    hora = {0.1: [0.70, 0.72, 0.74], 1.0: [0.80, 0.83, 0.81]}
    lora = {0.1: [0.69, 0.70, 0.71], 1.0: [0.80, 0.82, 0.82]}
    for method, acc in (("hora", hora), ("lora", lora)):
        for fraction, values in acc.items():
            for seed, a in enumerate(values):
                rows.append(dict(method=method, fraction=fraction, seed=seed, lr=0.001, accuracy=a,
                                 val_accuracy=a + 0.01, trainable_params=100, train_seconds=1.0))
                rows.append(dict(method=method, fraction=fraction, seed=seed, lr=0.01, accuracy=0.99,
                                 val_accuracy=0.5, trainable_params=100, train_seconds=1.0))
    return pd.DataFrame(rows)


def test_lr_is_chosen_on_validation_only():
    df = report.select_lr(_table())
    assert set(df[df["selected"]]["lr"]) == {0.001}
    assert df["selected"].sum() == 12


def test_summary_mean_std_and_interval():
    summ = report.summarize(_table())
    row = summ[(summ["method"] == "hora") & (summ["fraction"] == 0.1)].iloc[0]
    values = np.array([0.70, 0.72, 0.74])
    assert row["n"] == 3
    assert row["score_mean"] == pytest.approx(values.mean())
    assert row["score_std"] == pytest.approx(values.std(ddof=1))
    half = 4.302653 * values.std(ddof=1) / math.sqrt(3)
    assert row["score_ci_low"] == pytest.approx(values.mean() - half, abs=1e-5)
    assert row["score_ci_high"] == pytest.approx(values.mean() + half, abs=1e-5)
    assert row["lr"] == 0.001


def test_paired_difference_pairs_by_seed():
    pdiff = report.paired_difference(_table(), "hora", "lora")
    r = pdiff[pdiff["fraction"] == 0.1].iloc[0]
    diffs = np.array([0.01, 0.02, 0.03])
    assert r["n_pairs"] == 3 and r["diff_mean"] == pytest.approx(diffs.mean())
    assert r["diff_std"] == pytest.approx(diffs.std(ddof=1))
    half = 4.302653 * diffs.std(ddof=1) / math.sqrt(3)
    assert r["ci_low"] == pytest.approx(diffs.mean() - half, abs=1e-5)
    assert r["ci_high"] == pytest.approx(diffs.mean() + half, abs=1e-5)
    r1 = pdiff[pdiff["fraction"] == 1.0].iloc[0]
    assert r1["diff_mean"] == pytest.approx(0.0, abs=1e-12)


def test_paired_difference_uses_only_common_seeds():
    df = _table()
    df = df[~((df["method"] == "lora") & (df["seed"] == 2))]
    pdiff = report.paired_difference(df)
    assert pdiff["n_pairs"].tolist() == [2, 2] and pdiff["seeds"].tolist() == ["0,1", "0,1"]


def test_single_seed_has_no_interval():
    mean, sd, lo, hi, n = report.mean_ci([0.5])
    assert (mean, n) == (0.5, 1) and math.isnan(sd) and math.isnan(lo) and math.isnan(hi)


def test_write_report_files(tmp_path):
    paths = report.write_report(_table(), tmp_path, context="synthetic")
    md = paths["summary"].read_text()
    assert "HoRA − LoRA, paired by seed" in md
    assert "| 0.1 | 3 | +2.00 |" in md
    assert "72.0 ± 2.0" in md  # hora at fraction 0.1
    assert "chosen per fraction on mean validation accuracy only" in md
    png = paths["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_summary_names_the_diagnostics_and_marks_those_a_method_lacks():
    table = _table()
    table["diag_stable_rank"] = 2.5
    table["diag_generator_share"] = np.where(table["method"] == "hora", 0.25, np.nan)  # LoRA has no generator
    text = report.summary_markdown(table)
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    assert header.endswith("| generator share | stable rank |") and "diag_" not in text and "_" not in header
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith(("| hora", "| lora"))}
    assert rows["| hora"].endswith("| 0.25 | 2.5 |") and rows["| lora"].endswith("| n/a | 2.5 |")
    assert "nan" not in text
    assert "stable rank: ||dW||_F^2 / ||dW||_2^2" in text and "generator share: the part of the head factor" in text


def test_bad_results_table():
    with pytest.raises(HoraError, match="lacks column"):
        report.select_lr(pd.DataFrame({"method": ["hora"]}))


def test_lr_choice_uses_only_the_seeds_every_lr_ran():
    # seed 0 tried both lrs (0.01 wins on validation); seeds 1-2 ran at 0.01 only and have poor validation,
    # which must not count against 0.01 (they never ran at 0.001)
    rows = [dict(method="lora", fraction=0.1, seed=0, lr=0.001, accuracy=0.7, val_accuracy=0.70),
            dict(method="lora", fraction=0.1, seed=0, lr=0.01, accuracy=0.7, val_accuracy=0.72),
            dict(method="lora", fraction=0.1, seed=1, lr=0.01, accuracy=0.6, val_accuracy=0.50),
            dict(method="lora", fraction=0.1, seed=2, lr=0.01, accuracy=0.6, val_accuracy=0.50)]
    df = report.select_lr(pd.DataFrame(rows))
    assert set(df[df["selected"]]["lr"]) == {0.01} and df["selected"].sum() == 3


def test_read_results_merges_tables_and_refuses_a_run_twice(tmp_path):
    table = report.select_lr(_table())
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    table[table["method"] == "hora"].to_csv(a, index=False)
    table[table["method"] == "lora"].to_csv(b, index=False)
    merged = report.read_results([a, b])
    assert len(merged) == len(table) and "selected" not in merged.columns
    with pytest.raises(HoraError, match="appears in more than one table"):
        report.read_results([a, a])
    with pytest.raises(HoraError, match="not found"):
        report.read_results([tmp_path / "missing.csv"])


def _axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    return fig, ax


def test_plot_one_seed_draws_no_bars_and_an_honest_axis():
    from matplotlib.container import ErrorbarContainer

    one_seed = pd.DataFrame({"method": ["hora", "lora"], "fraction": [1.0, 1.0], "seed": [0, 0], "lr": [1e-3] * 2,
                             "accuracy": [0.7415, 0.7360], "val_accuracy": [0.74, 0.73]})
    fig, ax = _axes()
    report.draw_accuracy_vs_fraction(one_seed, ax)
    low, high = ax.get_ylim()
    assert high - low >= 100 * report.MIN_Y_SPAN and low <= 73.6 and high >= 74.15
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    handles, _ = ax.get_legend_handles_labels()
    assert handles and not any(isinstance(h, ErrorbarContainer) for h in handles)  # no bar markers in the legend
    assert "one seed" in ax.get_title()


def test_plot_several_seeds_draws_the_95_percent_interval():
    from matplotlib.container import ErrorbarContainer

    table = _table()
    fig, ax = _axes()
    report.draw_accuracy_vs_fraction(table, ax)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2
    summ = report.summarize(table)
    expected = sorted(100 * (summ["score_ci_high"] - summ["score_ci_low"]))
    drawn = sorted(float(seg[1, 1] - seg[0, 1]) for c in bars for seg in c.lines[2][0].get_segments())
    assert np.allclose(drawn, expected)
    assert "95 %" in ax.get_ylabel()


@pytest.mark.parametrize("values", [[73.6, 74.15], [99.5, 99.9], [0.2, 0.4], [40.0, 90.0]])
def test_y_limits_hold_the_values_with_a_minimum_span(values):
    low, high = report.y_limits(values)
    assert low <= min(values) and high >= max(values) and high - low >= 100 * report.MIN_Y_SPAN
    assert 0 <= low and high <= 100


@pytest.mark.parametrize("values", [[-0.101, -0.086], [-0.95, -0.9], [0.95, 0.99], [-0.4, 0.3]])
def test_y_limits_of_a_correlation_hold_negative_values(values):
    low, high = report.y_limits(values, (-1.0, 1.0))
    assert low <= min(values) and high >= max(values) and high - low >= 2 * report.MIN_Y_SPAN
    assert -1 <= low and high <= 1


def _regression_grid() -> pd.DataFrame:
    """Two methods, two seeds, one fraction: negative Pearson correlations."""
    return pd.DataFrame({"method": ["hora", "hora", "lora", "lora"], "fraction": [1.0] * 4, "seed": [0, 1, 0, 1],
                         "lr": [1e-3] * 4, "score": [-0.086, -0.09, -0.101, -0.095],
                         "val_score": [-0.05, -0.06, -0.04, -0.03], "metric": ["pearson"] * 4})


def test_plot_of_a_regression_shows_negative_scores_and_names_the_metric():
    fig, ax = _axes()
    report.draw_accuracy_vs_fraction(_regression_grid(), ax)
    low, high = ax.get_ylim()
    assert low <= -0.101 and high >= -0.086 and high - low >= 0.2
    assert ax.get_ylabel().startswith("test Pearson correlation\nmean") and "(%)" not in ax.get_ylabel()
    assert "Pearson correlation" in ax.get_title() and "accuracy" not in ax.get_title().lower()


def test_summary_of_a_regression_names_the_metric_and_shows_correlations_as_they_are():
    md = report.summary_markdown(_regression_grid())
    assert "test Pearson correlation" in md and "accuracy" not in md.lower() and "(%)" not in md
    assert "| hora | 1 | 2 | -0.088 ± 0.003 |" in md  # the correlation itself, not x 100
    assert "in correlation units" in md and "| 1 | 2 | +0.0100 |" in md


def test_old_tables_with_accuracy_columns_read_as_score():
    old = _regression_grid().rename(columns={"score": "accuracy", "val_score": "val_accuracy"})
    assert report.summarize(old)["score_mean"].tolist() == report.summarize(_regression_grid())["score_mean"].tolist()


def _one_class_grid(lora_classes: int) -> pd.DataFrame:
    """Every hora run predicts one class; lora's runs predict ``lora_classes`` classes."""
    return pd.DataFrame({"method": ["hora", "hora", "lora", "lora"], "fraction": [0.5] * 4, "seed": [0, 1, 0, 1],
                         "lr": [1e-3] * 4, "score": [0.5469] * 4, "val_score": [0.5781] * 4,
                         "metric": ["accuracy"] * 4, "predicted_classes": [1, 1, lora_classes, lora_classes]})


def test_summary_flags_runs_that_predict_one_class_and_a_difference_made_only_of_them():
    md = report.summary_markdown(_one_class_grid(1))
    assert "**4 of 4 reported runs predict one class on test: the comparison says nothing about them**" in md
    assert "hora at fraction 0.5, seed 0" in md and "(2 of 2 predict one class)" in md
    assert "| 0.5 | 2 | +0.00 (every run in it predicts one class: the comparison says nothing) |" in md
    md = report.summary_markdown(_one_class_grid(2))  # LoRA's runs tell the classes apart: the difference counts
    assert "**2 of 4 reported runs" in md and "| 0.5 | 2 | +0.00 |" in md
    assert "predict one class" not in report.summary_markdown(_one_class_grid(2).drop(columns="predicted_classes"))


def test_plot_circles_points_whose_runs_all_predict_one_class_and_sets_methods_apart():
    fig, ax = _axes()
    report.draw_accuracy_vs_fraction(_one_class_grid(1), ax)
    assert "predicts one class" in ax.get_title()
    assert "all runs predict one class" in ax.get_legend_handles_labels()[1]
    xs = {round(float(line.get_xdata()[0]), 4) for line in ax.get_lines() if len(line.get_xdata())}
    assert len(xs) == 2  # the two methods' equal points are drawn side by side, not on top of each other
