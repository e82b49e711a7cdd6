"""Summaries of a comparison: mean ± std per method and fraction, paired differences, a plot.

Input is the table of runs (``results.csv``): one row per run with at least
``method, fraction, seed, lr, accuracy, val_accuracy``. When several learning rates were run, each
method's learning rate is chosen per fraction on mean validation accuracy over seeds (never on test
accuracy); the summary reports test accuracy at that choice.

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
from hora.io import atomic_write, atomic_write_text

REQUIRED = ("method", "fraction", "seed", "lr", "accuracy", "val_accuracy")


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

    The best lr maximises mean ``val_accuracy`` over the seeds run at every lr of that (method,
    fraction) (the tuning seeds: with ``--tune-seeds`` the other seeds exist at the chosen lr only);
    ties go to the smaller lr. Test accuracy plays no part.
    """
    df = check_results(df).copy()
    df["selected"] = False
    for (_, _), group in df.groupby(["method", "fraction"], sort=False):
        df.loc[group.index[group["lr"] == best_lr(group)], "selected"] = True
    return df


def best_lr(group: pd.DataFrame) -> float:
    """The lr with the highest mean validation accuracy over the seeds common to all lrs of ``group``."""
    seeds_per_lr = group.groupby("lr")["seed"].apply(set)
    common = set.intersection(*seeds_per_lr)
    tuning = group[group["seed"].isin(common)] if common else group
    return float(tuning.groupby("lr")["val_accuracy"].mean().sort_index().idxmax())


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, fraction), over the selected runs: test accuracy mean/sd/CI, validation mean, lr, params."""
    if "selected" not in df.columns:
        df = select_lr(df)
    sel = df[df["selected"].astype(bool)]
    rows = []
    for (method, fraction), g in sel.groupby(["method", "fraction"], sort=True):
        mean, sd, lo, hi, n = mean_ci(g["accuracy"])
        row = {"method": method, "fraction": fraction, "n": n, "accuracy_mean": mean, "accuracy_std": sd,
               "accuracy_ci_low": lo, "accuracy_ci_high": hi, "val_accuracy_mean": float(g["val_accuracy"].mean()),
               "lr": float(g["lr"].iloc[0])}
        for col in ("trainable_params", "train_seconds"):
            if col in g:
                row[col] = float(g[col].mean())
        for col in sorted(c for c in g.columns if c.startswith("diag_")):
            row[col] = float(pd.to_numeric(g[col], errors="coerce").mean())
        rows.append(row)
    return pd.DataFrame(rows)


def paired_difference(df: pd.DataFrame, a: str = "hora", b: str = "lora", level: float = 0.95) -> pd.DataFrame:
    """Per fraction: mean of (accuracy_a − accuracy_b) over seeds run by both, with a t-interval."""
    if "selected" not in df.columns:
        df = select_lr(df)
    sel = df[df["selected"].astype(bool)]
    left = sel[sel["method"] == a][["fraction", "seed", "accuracy"]]
    right = sel[sel["method"] == b][["fraction", "seed", "accuracy"]]
    pairs = left.merge(right, on=["fraction", "seed"], suffixes=("_a", "_b"))
    rows = []
    for fraction, g in pairs.groupby("fraction", sort=True):
        diff = g["accuracy_a"] - g["accuracy_b"]
        mean, sd, lo, hi, n = mean_ci(diff, level)
        rows.append({"fraction": fraction, "n_pairs": n, "diff_mean": mean, "diff_std": sd,
                     "ci_low": lo, "ci_high": hi, "seeds": ",".join(str(s) for s in sorted(g["seed"]))})
    return pd.DataFrame(rows, columns=["fraction", "n_pairs", "diff_mean", "diff_std", "ci_low", "ci_high", "seeds"])


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


def _pct(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def metric_name(df: pd.DataFrame) -> str:
    """The metric the runs' ``accuracy`` / ``val_accuracy`` columns hold (their ``metric`` column, from
    ``--metric``): accuracy unless the runs name another."""
    names = sorted({str(m) for m in df["metric"].dropna()}) if "metric" in df.columns else []
    if len(names) > 1:
        raise HoraError(f"the runs were scored by different metrics ({', '.join(names)}): summarise them apart")
    return names[0] if names else "accuracy"


def summary_markdown(df: pd.DataFrame, title: str = "HoRA comparison", context: str = "") -> str:
    df = select_lr(df) if "selected" not in df.columns else df
    metric = metric_name(df)
    summ = summarize(df)
    lines = [f"# {title}", ""]
    if context:
        lines += [context, ""]
    lrs = sorted(df["lr"].unique())
    lines += [
        f"{len(df)} runs; methods {', '.join(sorted(df['method'].unique()))}; "
        f"fractions {', '.join(f'{f:g}' for f in sorted(df['fraction'].unique()))}; "
        f"seeds {', '.join(str(s) for s in sorted(df['seed'].unique()))}; "
        f"learning rates {', '.join(f'{x:g}' for x in lrs)}.",
        ("Accuracy is test accuracy in percent" if metric == "accuracy" else
         f"The score is the test {metric} x 100 (the runs' metric; the columns keep the name accuracy)")
        + " (mean ± sample sd over seeds, 95 % t-interval of the mean).",
    ]
    if len(lrs) > 1:
        lines.append(f"Each method's learning rate is chosen per fraction on mean validation {metric} only; "
                     f"test {metric} is reported at that choice.")
    lines.append("")
    diag_cols = [c for c in summ.columns if c.startswith("diag_")]
    short = "acc" if metric == "accuracy" else metric
    header = ["method", "fraction", "n", f"test {short} (mean ± sd)", "95% CI", f"val {short}", "lr",
              "trainable params", "train s"] + [diagnostic_label(c) for c in diag_cols]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in summ.sort_values(["fraction", "method"]).iterrows():
        cells = [str(r["method"]), f"{r['fraction']:g}", str(int(r["n"])),
                 f"{_pct(r['accuracy_mean'])} ± {_pct(r['accuracy_std'])}",
                 f"[{_pct(r['accuracy_ci_low'])}, {_pct(r['accuracy_ci_high'])}]",
                 _pct(r["val_accuracy_mean"]), f"{r['lr']:g}",
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
    """Markdown lines of the paired difference a − b per fraction."""
    pdiff = paired_difference(df, a, b)
    names = {"hora": "HoRA", "lora": "LoRA"}
    lines = ["", f"## {names.get(a, a)} − {names.get(b, b)}, paired by seed", "",
             f"Difference of test {metric} in percentage points{'' if metric == 'accuracy' else ' (x 100)'}; "
             f"positive favours {names.get(a, a)}. "
             "An interval that contains 0 means no detectable difference at these seeds.", "",
             "| fraction | pairs | mean diff | sd | 95% t-interval |", "|---|---|---|---|---|"]
    for _, r in pdiff.iterrows():
        lines.append(f"| {r['fraction']:g} | {int(r['n_pairs'])} | {100 * r['diff_mean']:+.2f} | "
                     f"{_pct(r['diff_std'], 2)} | [{_pct(r['ci_low'], 2)}, {_pct(r['ci_high'], 2)}] |")
    if len(pdiff) == 0:
        lines.append("| (no seed was run by both methods at the same fraction) | | | | |")
    return lines


# the y-axis spans at least this many percentage points, so seed noise is not blown up into a result
MIN_Y_SPAN = 10.0


def y_limits(values: list[float], min_span: float = MIN_Y_SPAN) -> tuple[float, float]:
    """Y-axis limits (percent) that hold every value with a margin and span at least ``min_span`` points,
    kept inside [0, 100] where the data allow."""
    lo, hi = min(values), max(values)
    pad = max(0.08 * (hi - lo), 0.5)
    lo, hi = lo - pad, hi + pad
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    if hi > 100:
        lo, hi = lo - (hi - 100), 100.0
    if lo < 0:
        lo, hi = 0.0, max(hi - lo, hi)
    return lo, hi


def draw_accuracy_vs_fraction(df: pd.DataFrame, ax, title: str = "Test accuracy vs data fraction") -> None:
    """Draw mean test accuracy per method against the data fraction on ``ax``.

    With several seeds each point carries its 95 % t-interval of the mean (the interval of summary.md);
    a method with one seed per point is drawn without bars (and without bar markers in the legend).
    The y-axis spans at least :data:`MIN_Y_SPAN` points.
    """
    summ = summarize(df)
    values: list[float] = []
    with_bars = False
    for method, g in summ.groupby("method", sort=True):
        g = g.sort_values("fraction")
        x, mean = g["fraction"].to_numpy(), 100 * g["accuracy_mean"].to_numpy()
        values += list(mean)
        has_ci = g["accuracy_ci_low"].notna().to_numpy()
        if has_ci.any():
            low = np.where(has_ci, 100 * g["accuracy_ci_low"].to_numpy(), mean)
            high = np.where(has_ci, 100 * g["accuracy_ci_high"].to_numpy(), mean)
            values += list(low[has_ci]) + list(high[has_ci])
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, label=method)
            with_bars = True
        else:
            ax.plot(x, mean, marker="o", label=method)
    fracs = sorted(summ["fraction"].unique())
    if len(fracs) > 1 and fracs[-1] / fracs[0] >= 10:
        ax.set_xscale("log")
    ax.set_xticks(fracs)
    ax.set_xticklabels([f"{f:g}" for f in fracs])
    ax.set_xlabel("fraction of the training split")
    seeds = int(summ["n"].max()) if len(summ) else 0
    ax.set_ylabel(f"test {metric_name(df)} (%), mean over seeds" + (", 95 % interval" if with_bars else ""))
    if values:
        ax.set_ylim(*y_limits(values))
    if seeds < 2:
        ax.set_title(f"{title}\none seed per point: no interval, differences may be noise", fontsize=10)
    else:
        ax.set_title(f"{title}\nup to {seeds} seeds per point; bars: 95 % t-interval of the mean", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()


def plot_accuracy_vs_fraction(df: pd.DataFrame, path: str | Path,
                              title: str = "Test accuracy vs data fraction") -> Path:
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
