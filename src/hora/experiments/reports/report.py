"""Summaries of a comparison: mean ± std per method and fraction, paired differences, a plot.

Input is the table of runs (``results.csv``): one row per run with at least
``method, fraction, seed, lr, score, val_score`` (the test and validation score by the runs' ``metric``;
tables written before the score columns had their metric-neutral names call them ``accuracy`` and
``val_accuracy``, and read the same). When several learning rates were run, each method's learning rate is
chosen per fraction on mean validation score over seeds (never on the test score); the summary reports the
test score at that choice. Every score is shown with its metric's name and unit
(:mod:`hora.experiments.scoring.score_text`), and runs that predicted one class on test (``predicted_classes`` = 1)
are flagged: a mean or a paired difference made only of them says nothing.

The paired difference HoRA − LoRA pairs runs by seed at each fraction (same seed: same data subset,
same split, same head initialisation), and gives a two-sided 95 % Student-t interval of the mean
difference, ``mean ± t_{0.975, n-1} * sd / sqrt(n)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from hora.experiments.errors import HoraError
from hora.experiments.scoring import score_text
from hora.io import atomic_write, atomic_write_text

REQUIRED = ("method", "fraction", "seed", "lr", "score", "val_score")
OLD_NAMES = {"accuracy": "score", "val_accuracy": "val_score"}  # the score columns' names in older tables


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution (scipy.stats.t.ppf)."""
    return float(stats.t.ppf(p, df))


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float, float, int]:
    """(mean, sample sd, ci_low, ci_high, n) with a Student-t interval; nan where n < 2."""
    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return (float("nan"),) * 4 + (0,)
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan"), n
    sd = float(x.std(ddof=1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half, n


def check_results(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its score columns under their names (:data:`OLD_NAMES` renamed), or a one-line error naming
    a missing column or an empty table."""
    df = df.rename(columns={old: new for old, new in OLD_NAMES.items() if old in df.columns and new not in df})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise HoraError(f"results table lacks column(s): {', '.join(missing)}")
    if len(df) == 0:
        raise HoraError("results table is empty")
    return df


def read_results(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate results.csv tables (e.g. of comparisons run in parallel); a run present twice is an error."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise HoraError(f"results table not found: {path}")
        frames.append(check_results(pd.read_csv(path)).drop(columns=["selected"], errors="ignore"))
    df = pd.concat(frames, ignore_index=True)
    twice = df[df.duplicated(["method", "fraction", "lr", "seed"], keep=False)]
    if len(twice):
        r = twice.iloc[0]
        raise HoraError(f"run {r['method']} fraction {r['fraction']:g} lr {r['lr']:g} seed {r['seed']} appears in "
                        "more than one table; give each run once")
    return df


def select_lr(df: pd.DataFrame) -> pd.DataFrame:
    """Mark with ``selected`` the runs at each (method, fraction)'s best learning rate on validation.

    The best lr maximises mean ``val_score`` over the seeds run at every lr of that (method,
    fraction) (the tuning seeds: with ``--tune-seeds`` the other seeds exist at the chosen lr only);
    ties go to the smaller lr. The test score plays no part.
    """
    df = check_results(df).copy()
    df["selected"] = False
    for (_, _), group in df.groupby(["method", "fraction"], sort=False):
        df.loc[group.index[group["lr"] == best_lr(group)], "selected"] = True
    return df


def best_lr(group: pd.DataFrame) -> float:
    """The lr with the highest mean validation score over the seeds common to all lrs of ``group``."""
    seeds_per_lr = group.groupby("lr")["seed"].apply(set)
    common = set.intersection(*seeds_per_lr)
    tuning = group[group["seed"].isin(common)] if common else group
    return float(tuning.groupby("lr")["val_score"].mean().sort_index().idxmax())


def selected_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs at each (method, fraction)'s chosen lr: those marked ``selected``, else chosen by :func:`select_lr`."""
    df = check_results(df) if "selected" in df.columns else select_lr(df)
    return df[df["selected"].astype(bool)]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, fraction), over the selected runs: test score mean/sd/CI, validation mean, lr, params, and
    ``one_class``: how many of the runs predicted one class on test."""
    sel = selected_runs(df)
    rows = []
    for (method, fraction), g in sel.groupby(["method", "fraction"], sort=True):
        mean, sd, lo, hi, n = mean_ci(g["score"])
        row = {"method": method, "fraction": fraction, "n": n, "score_mean": mean, "score_std": sd,
               "score_ci_low": lo, "score_ci_high": hi, "val_score_mean": float(g["val_score"].mean()),
               "lr": float(g["lr"].iloc[0]), "one_class": int(one_class_runs(g).sum())}
        for col in ("trainable_params", "train_seconds"):
            if col in g:
                row[col] = float(g[col].mean())
        for col in sorted(c for c in g.columns if c.startswith("diag_")):
            row[col] = float(pd.to_numeric(g[col], errors="coerce").mean())
        rows.append(row)
    return pd.DataFrame(rows)


def one_class_runs(df: pd.DataFrame) -> pd.Series:
    """Per run (row) of ``df``: whether it predicted one class on test (False where not recorded)."""
    if "predicted_classes" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["predicted_classes"].map(score_text.predicts_one_class).astype(bool)


def paired_difference(df: pd.DataFrame, a: str = "hora", b: str = "lora", level: float = 0.95) -> pd.DataFrame:
    """Per fraction: mean of (score_a − score_b) over seeds run by both, with a t-interval; ``one_class``: every
    run of both methods in the pairs predicted one class on test (the difference then says nothing)."""
    sel = selected_runs(df)
    sel = sel.assign(one_class=one_class_runs(sel))
    left = sel[sel["method"] == a][["fraction", "seed", "score", "one_class"]]
    right = sel[sel["method"] == b][["fraction", "seed", "score", "one_class"]]
    pairs = left.merge(right, on=["fraction", "seed"], suffixes=("_a", "_b"))
    rows = []
    for fraction, g in pairs.groupby("fraction", sort=True):
        diff = g["score_a"] - g["score_b"]
        mean, sd, lo, hi, n = mean_ci(diff, level)
        rows.append({"fraction": fraction, "n_pairs": n, "diff_mean": mean, "diff_std": sd,
                     "ci_low": lo, "ci_high": hi, "seeds": ",".join(str(s) for s in sorted(g["seed"])),
                     "one_class": bool((g["one_class_a"] & g["one_class_b"]).all())})
    return pd.DataFrame(rows, columns=["fraction", "n_pairs", "diff_mean", "diff_std", "ci_low", "ci_high", "seeds",
                                       "one_class"])


# the runs' diagnostic columns (``diag_<key>``, from hora.diagnostics): the label a report gives each, and what it is
DIAGNOSTICS = {
    "stable_rank": ("stable rank", "||dW||_F^2 / ||dW||_2^2 of each adapted module's update, from 1 (rank one) to r"),
    "head_shared_energy": ("head-shared energy", "1 when every head's factor is the same, about 1/H when the "
                           "heads' factors are unrelated"),
    "generator_share": ("generator share", "the part of the head factor the generator makes (1: all of it; "
                        "0: none)"),
    "cross_head_influence": ("cross-head influence", "how far a step for one head moves the other heads' factors "
                             "(0: independent heads, 1: as far as its own)"),
}


def diagnostic_label(column: str) -> str:
    """A report's name for the diagnostic column ``diag_<key>``."""
    key = column.removeprefix("diag_")
    return DIAGNOSTICS[key][0] if key in DIAGNOSTICS else key.replace("_", " ")


def metric_name(df: pd.DataFrame) -> str:
    """The metric the runs' ``score`` / ``val_score`` columns hold (their ``metric`` column, from
    ``--metric``): accuracy unless the runs name another."""
    names = sorted({str(m) for m in df["metric"].dropna()}) if "metric" in df.columns else []
    if len(names) > 1:
        raise HoraError(f"the runs were scored by different metrics ({', '.join(names)}): summarise them apart")
    return names[0] if names else "accuracy"


def summary_markdown(df: pd.DataFrame, title: str = "HoRA comparison", context: str = "") -> str:
    df = check_results(df) if "selected" in df.columns else select_lr(df)
    metric = metric_name(df)
    summ = summarize(df)
    lines = [f"# {title}", ""]
    if context:
        lines += [context, ""]
    lrs = sorted(df["lr"].unique())
    name = score_text.name(metric)
    lines += [
        f"{len(df)} runs; methods {', '.join(sorted(df['method'].unique()))}; "
        f"fractions {', '.join(f'{f:g}' for f in sorted(df['fraction'].unique()))}; "
        f"seeds {', '.join(str(s) for s in sorted(df['seed'].unique()))}; "
        f"learning rates {', '.join(f'{x:g}' for x in lrs)}.",
        (f"The score is the test {name} in percent" if score_text.is_rate(metric) else
         f"The score is the test {name}, a number in [-1, 1] (0: no better than chance)")
        + " (mean ± sample sd over seeds, 95 % t-interval of the mean).",
    ]
    if len(lrs) > 1:
        lines.append(f"Each method's learning rate is chosen per fraction on mean validation {name} only; "
                     f"test {name} is reported at that choice.")
    reported = selected_runs(df)
    one_class = reported[one_class_runs(reported)]
    if len(one_class):
        lines.append(f"**{len(one_class)} of {len(reported)} reported runs predict one "
                     "class on test: the comparison says nothing about them** (the same class for every test "
                     "example; marked below; train longer, with more data or another lr): "
                     + ", ".join(f"{r.method} at fraction {r.fraction:g}, seed {r.seed}"
                                 for r in one_class.itertuples()) + ".")
    lines.append("")
    diag_cols = [c for c in summ.columns if c.startswith("diag_")]
    unit = f" in {score_text.unit(metric)}" if score_text.is_rate(metric) else ""
    header = ["method", "fraction", "n", f"test {name} (mean ± sd{unit})", "95% CI", f"val {name}{unit}", "lr",
              "trainable params", "train s"] + [diagnostic_label(c) for c in diag_cols]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def shown(x: float, digits: int = 1) -> str:
        return score_text.number(x, metric, digits)

    for _, r in summ.sort_values(["fraction", "method"]).iterrows():
        flag = f" ({r['one_class']} of {int(r['n'])} predict one class)" if r["one_class"] else ""
        cells = [str(r["method"]), f"{r['fraction']:g}", str(int(r["n"])),
                 f"{shown(r['score_mean'])} ± {shown(r['score_std'])}{flag}",
                 f"[{shown(r['score_ci_low'])}, {shown(r['score_ci_high'])}]",
                 shown(r["val_score_mean"]), f"{r['lr']:g}",
                 f"{int(r['trainable_params']):,}" if "trainable_params" in r and not math.isnan(r["trainable_params"])
                 else "n/a",
                 f"{r['train_seconds']:.1f}" if "train_seconds" in r else "n/a"]
        cells += ["n/a" if math.isnan(r[c]) else f"{r[c]:.3g}" for c in diag_cols]
        lines.append("| " + " | ".join(cells) + " |")
    if diag_cols:
        lines += ["", "Diagnostics of the trained update (n/a: not defined for that method): " + "; ".join(
            f"{diagnostic_label(c)}: {DIAGNOSTICS[c.removeprefix('diag_')][1]}" for c in diag_cols
            if c.removeprefix("diag_") in DIAGNOSTICS) + "."]
    methods = set(df["method"])
    if "lora" in methods:
        for method in sorted(methods - {"lora"}, key=lambda m: (m != "hora", m)):
            lines += _paired_section(df, method, "lora", metric)
    lines.append("")
    return "\n".join(lines)


def _paired_section(df: pd.DataFrame, a: str, b: str, metric: str = "accuracy") -> list[str]:
    """Markdown lines of the paired difference a − b per fraction; a difference made only of runs that predicted
    one class is marked as saying nothing."""
    pdiff = paired_difference(df, a, b)
    names = {"hora": "HoRA", "lora": "LoRA"}
    lines = ["", f"## {names.get(a, a)} − {names.get(b, b)}, paired by seed", "",
             f"Difference of test {score_text.name(metric)} in {score_text.difference_unit(metric)}; "
             f"positive favours {names.get(a, a)}. "
             "An interval that contains 0 means no detectable difference at these seeds.", "",
             "| fraction | pairs | mean diff | sd | 95% t-interval |", "|---|---|---|---|---|"]

    def shown(x: float) -> str:
        return score_text.number(x, metric, 2)

    for _, r in pdiff.iterrows():
        mean = shown(r["diff_mean"])
        mean = mean if mean.startswith("-") or mean == "n/a" else f"+{mean}"
        flag = " (every run in it predicts one class: the comparison says nothing)" if r["one_class"] else ""
        lines.append(f"| {r['fraction']:g} | {int(r['n_pairs'])} | {mean}{flag} | "
                     f"{shown(r['diff_std'])} | [{shown(r['ci_low'])}, {shown(r['ci_high'])}] |")
    if len(pdiff) == 0:
        lines.append("| (no seed was run by both methods at the same fraction) | | | | |")
    return lines


# the y-axis spans at least this share of the metric's range (10 points of a rate, 0.2 of a correlation), so seed
# noise is not blown up into a result
MIN_Y_SPAN = 0.1


def y_limits(values: list[float], bounds: tuple[float, float] = (0.0, 100.0),
             min_span: float = MIN_Y_SPAN) -> tuple[float, float]:
    """Y-axis limits that hold every value with a margin and span at least ``min_span`` of ``bounds`` (the shown
    metric's range, :func:`score_text.bounds`), moved inside ``bounds`` where the data allow. A value outside
    ``bounds`` is never cut off: negative correlations show."""
    bottom, top = bounds
    lo, hi = min(values), max(values)
    pad = max(0.08 * (hi - lo), 0.005 * (top - bottom))
    lo, hi = lo - pad, hi + pad
    span = min_span * (top - bottom)
    if hi - lo < span:
        mid = (lo + hi) / 2
        lo, hi = mid - span / 2, mid + span / 2
    if hi > top:
        lo, hi = lo - (hi - max(top, max(values))), max(top, max(values))
    if lo < bottom:
        lo, hi = min(bottom, min(values)), hi + (min(bottom, min(values)) - lo)
    return lo, hi


def draw_accuracy_vs_fraction(df: pd.DataFrame, ax, title: str | None = None) -> None:
    """Draw the mean test score per method against the data fraction on ``ax``, in the metric's unit, with the
    metric in the axis label and the title (default "Test <metric> vs data fraction").

    With several seeds each point carries its 95 % t-interval of the mean (the interval of summary.md);
    a method with one seed per point is drawn without bars (and without bar markers in the legend). The methods'
    points are set slightly apart along x, so equal scores do not hide one another; a point whose runs all
    predicted one class on test is circled in red. The y-axis spans at least :data:`MIN_Y_SPAN` of the metric's
    range and holds every value, negative ones included.
    """
    metric = metric_name(df)
    factor = score_text.scale(metric)
    summ = summarize(df)
    values: list[float] = []
    with_bars = one_class = False
    methods = sorted(summ["method"].unique())
    fracs = sorted(summ["fraction"].unique())
    log_x = len(fracs) > 1 and fracs[-1] / fracs[0] >= 10
    for i, (method, g) in enumerate(summ.groupby("method", sort=True)):
        g = g.sort_values("fraction")
        offset = 0.025 * (i - (len(methods) - 1) / 2)  # a share of the axis: a factor on a log axis
        x = g["fraction"].to_numpy() * (10 ** offset if log_x else 1) + (0 if log_x else offset * max(fracs))
        mean = factor * g["score_mean"].to_numpy()
        values += list(mean)
        has_ci = g["score_ci_low"].notna().to_numpy()
        if has_ci.any():
            low = np.where(has_ci, factor * g["score_ci_low"].to_numpy(), mean)
            high = np.where(has_ci, factor * g["score_ci_high"].to_numpy(), mean)
            values += list(low[has_ci]) + list(high[has_ci])
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, label=method)
            with_bars = True
        else:
            ax.plot(x, mean, marker="o", label=method)
        flat = (g["one_class"] == g["n"]).to_numpy()
        if flat.any():
            ax.scatter(x[flat], mean[flat], s=160, facecolors="none", edgecolors="red", zorder=3,
                       label=None if one_class else "all runs predict one class")
            one_class = True
    if log_x:
        ax.set_xscale("log")
    if len(fracs) == 1:  # one fraction: the points set apart stay near its tick, not at the frame's edges
        ax.set_xlim(0.9 * fracs[0], 1.1 * fracs[0])
    ax.set_xticks(fracs)
    ax.set_xticklabels([f"{f:g}" for f in fracs])
    ax.set_xlabel("fraction of the training split")
    seeds = int(summ["n"].max()) if len(summ) else 0
    ax.set_ylabel(f"{score_text.column(metric)}\nmean over seeds" + (", 95 % interval" if with_bars else ""))
    if values:
        ax.set_ylim(*y_limits(values, score_text.bounds(metric)))
    title = title or f"Test {score_text.name(metric)} vs data fraction"
    if seeds < 2:
        note = "one seed per point: no interval, differences may be noise"
    else:
        note = f"up to {seeds} seeds per point; bars: 95 % t-interval of the mean"
    if one_class:
        note += "\nred circle: every run predicts one class, the comparison says nothing"
    ax.set_title(f"{title}\n{note}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()


def plot_accuracy_vs_fraction(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Write the accuracy-vs-fraction plot (see :func:`draw_accuracy_vs_fraction`) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    try:
        draw_accuracy_vs_fraction(df, ax, title=title)
        fig.tight_layout()
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def write_report(df: pd.DataFrame, output: str | Path, context: str = "",
                 title: str = "HoRA comparison") -> dict[str, Path]:
    """Write summary.md and accuracy_vs_fraction.png into ``output``; returns their paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    df = select_lr(df)
    md = atomic_write_text(output / "summary.md", summary_markdown(df, title=title, context=context))
    png = plot_accuracy_vs_fraction(df, output / "accuracy_vs_fraction.png")
    return {"summary": md, "plot": png}


def report_runs(results: list[str | Path], output: str | Path, title: str = "HoRA comparison") -> Path:
    """Summarise several comparisons' results.csv files together: the merged rows (lr chosen on validation)
    into ``output``/results.csv, then summary.md and the plot. Returns the summary's path."""
    from hora.experiments import paths

    output = paths.check_output_dir(output)
    df = select_lr(read_results(list(results)))
    output.mkdir(parents=True, exist_ok=True)
    atomic_write(output / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
    return write_report(df, output, title=title)["summary"]
