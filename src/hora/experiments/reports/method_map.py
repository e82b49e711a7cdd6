"""The method map: every form of HoRA, and each LoRA-family baseline, against LoRA on every measured setting,
as one markdown table and one forest plot, made from the studies' results CSVs (``hora map``).

A manifest (JSON) names the rows and where each cell's runs are::

    {"forms": [{"method": "hora", "label": "default (residual)"}, ...],      # the rows, in this order
     "sources": [{"setting": "text",            # a column group (task and model)
                  "model": "MiniLM-L6",         # the parameter ratio is given per model
                  "files": ["study5_results.csv"],  # results CSVs, relative to the manifest, read together
                  "methods": ["hora", "hora-identity"],  # the forms this source measures
                  "fractions": [0.01, 0.02],    # optional: only these fractions
                  "study": "study 5",           # where docs/results.md records the protocol
                  "note": "..."}, ...]}         # optional: printed with the source under the table

Each source is read as ``hora report`` reads it (:func:`report.read_results`; each method's learning rate
chosen per fraction on mean validation score by :func:`report.select_lr`), and a cell is
:func:`report.paired_difference` of the form against ``lora`` at one fraction: the mean over the seeds run by
both of ``score_form - score_lora`` (in the unit of the source's metric, :mod:`hora.experiments.scoring.score_text`:
percentage points of a rate, correlation units of a correlation) with its two-sided 95 % Student-t interval;
a cell made only of runs that predicted one class on test is marked as saying nothing. A (form,
setting, fraction) measured by two sources is an error: each cell has one source of truth.

Per form the table also gives the trainable parameters relative to LoRA's (the mean ``trainable_params`` of
the form's selected runs over LoRA's, at the same fraction, per model: classification heads included, as
recorded) and the generator share (``diag_generator_share``, mean over the selected runs of a cell; the range
over cells; "–" where the form has no generator).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hora.experiments.errors import HoraError
from hora.experiments.reports import report
from hora.experiments.scoring import score_text
from hora.io import atomic_write, atomic_write_text

REFERENCE = "lora"
TABLE_NAME = "method_map.md"
FIGURE_NAME = "method_map.png"


@dataclass(frozen=True)
class Form:
    """One row: the ``--methods`` name in the results CSVs and the label shown."""

    method: str
    label: str


@dataclass(frozen=True)
class Source:
    """Runs of some forms and of LoRA on one setting, read together from ``files``."""

    setting: str
    model: str
    files: tuple[Path, ...]
    methods: tuple[str, ...]
    study: str
    fractions: tuple[float, ...] | None = None
    note: str = ""


@dataclass(frozen=True)
class Manifest:
    """The rows, the sources, and the folder the sources' file names are relative to."""

    forms: tuple[Form, ...]
    sources: tuple[Source, ...]
    root: Path


def _require(entry: dict, key: str, where: str):
    if key not in entry:
        raise HoraError(f"{where} lacks '{key}'; see hora.experiments.reports.method_map for the manifest's format")
    return entry[key]


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest (module docstring); file paths become relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise HoraError(f"manifest not found: {path}; give --manifest the JSON file that lists forms and sources")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HoraError(f"manifest {path} is not valid JSON: {exc}") from None
    forms = tuple(Form(_require(f, "method", f"form {i} of {path}"), _require(f, "label", f"form {i} of {path}"))
                  for i, f in enumerate(_require(data, "forms", str(path))))
    known = {f.method for f in forms}
    sources = []
    for i, s in enumerate(_require(data, "sources", str(path))):
        where = f"source {i} of {path}"
        methods = tuple(_require(s, "methods", where))
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise HoraError(f"{where} names method(s) {', '.join(unknown)} that no form lists; add a form for each")
        fractions = s.get("fractions")
        sources.append(Source(setting=_require(s, "setting", where), model=_require(s, "model", where),
                              files=tuple(path.parent / f for f in _require(s, "files", where)),
                              methods=methods, study=_require(s, "study", where),
                              fractions=tuple(float(x) for x in fractions) if fractions is not None else None,
                              note=s.get("note", "")))
    return Manifest(forms, tuple(sources), path.parent)


def _mean_of(runs: pd.DataFrame, column: str) -> float:
    return float(pd.to_numeric(runs[column], errors="coerce").mean()) if column in runs else float("nan")


def source_cells(source: Source) -> pd.DataFrame:
    """One row per (form, fraction) of ``source``: the paired difference to LoRA (in the unit of the source's
    metric, 95 % interval), the number of pairs, whether its runs all predicted one class, the parameter ratio to
    LoRA and the mean generator share of the selected runs."""
    df = report.select_lr(report.read_results(list(source.files)))
    metric = report.metric_name(df)
    factor = score_text.scale(metric)
    if source.fractions is not None:
        df = df[df["fraction"].round(6).isin([round(f, 6) for f in source.fractions])]
    selected = df[df["selected"].astype(bool)]
    rows = []
    for method in source.methods:
        runs = selected[selected["method"] == method]
        if runs.empty:
            raise HoraError(f"{', '.join(map(str, source.files))} hold no run of '{method}'"
                            f"{' at the fractions listed' if source.fractions else ''}; fix the manifest's source")
        pairs = report.paired_difference(df, method, REFERENCE)
        for fraction, runs_at in runs.groupby("fraction", sort=True):
            pair = pairs[np.isclose(pairs["fraction"], fraction)]
            if pair.empty:
                raise HoraError(f"'{method}' at fraction {fraction:g} in {', '.join(map(str, source.files))} has no "
                                f"'{REFERENCE}' run of the same seed to pair with")
            lora_at = selected[(selected["method"] == REFERENCE) & np.isclose(selected["fraction"], fraction)]
            p = pair.iloc[0]
            rows.append({"method": method, "setting": source.setting, "model": source.model, "study": source.study,
                         "fraction": float(fraction), "n_pairs": int(p["n_pairs"]),
                         "metric": metric, "one_class": bool(p["one_class"]), "diff": factor * p["diff_mean"],
                         "low": factor * p["ci_low"], "high": factor * p["ci_high"],
                         "params_ratio": _mean_of(runs_at, "trainable_params") / _mean_of(lora_at, "trainable_params"),
                         "generator_share": _mean_of(runs_at, "diag_generator_share")})
    return pd.DataFrame(rows)


def map_cells(manifest: Manifest) -> pd.DataFrame:
    """Every source's cells, in the manifest's form order, then setting order, then fraction."""
    cells = pd.concat([source_cells(s) for s in manifest.sources], ignore_index=True)
    twice = cells[cells.duplicated(["method", "setting", "fraction"], keep=False)]
    if len(twice):
        r = twice.iloc[0]
        raise HoraError(f"'{r['method']}' on {r['setting']} at fraction {r['fraction']:g} comes from more than one "
                        "source; list it under one source only")
    form_order = {f.method: i for i, f in enumerate(manifest.forms)}
    setting_order = {s: i for i, s in enumerate(dict.fromkeys(s.setting for s in manifest.sources))}
    cells["_form"] = cells["method"].map(form_order)
    cells["_setting"] = cells["setting"].map(setting_order)
    return cells.sort_values(["_form", "_setting", "fraction"]).drop(columns=["_form", "_setting"]).reset_index(
        drop=True)


def column_name(setting: str, fraction: float) -> str:
    """``text 2 %``: a setting and a fraction of its training split."""
    return f"{setting} {100 * fraction:g} %"


def format_interval(diff: float, low: float, high: float, n_pairs: int) -> str:
    """``-0.05 [-0.72, +0.61] (10)``, bold when the interval excludes 0; no interval with one pair."""
    if n_pairs < 2 or math.isnan(low):
        return f"{diff:+.2f} (1 pair)"
    text = f"{diff:+.2f} [{low:+.2f}, {high:+.2f}] ({n_pairs})"
    return f"**{text}**" if low > 0 or high < 0 else text


def _significant(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}"


def format_share(shares: pd.Series) -> str:
    """The generator share over a form's cells: one value, or ``min–max``; "–" when none is recorded."""
    shares = shares.dropna()
    if shares.empty:
        return "–"
    low, high = _significant(shares.min()), _significant(shares.max())
    return low if low == high else f"{low}–{high}"


def format_params(cells: pd.DataFrame) -> str:
    """Trainable parameters over LoRA's, one value when every model agrees to 2 decimals, else per model."""
    per_model = cells.groupby("model", sort=False)["params_ratio"].mean().dropna()
    values = [f"{v:.2f}" for v in per_model]
    if len(set(values)) <= 1:
        return values[0] if values else "–"
    return " · ".join(f"{v} {m}" for m, v in zip(per_model.index, values, strict=True))


def table_markdown(manifest: Manifest, cells: pd.DataFrame) -> str:
    """The map as a markdown table: one row per form; params / LoRA, generator share, then one column per
    (setting, fraction) holding form − LoRA in points with its 95 % interval and the number of pairs."""
    setting_order = list(dict.fromkeys(s.setting for s in manifest.sources))
    keys = sorted({(r.setting, r.fraction) for r in cells.itertuples()},
                  key=lambda k: (setting_order.index(k[0]), k[1]))
    columns = [column_name(s, f) for s, f in keys]
    header = ["form", "params / LoRA", "generator share", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for form in manifest.forms:
        mine = cells[cells["method"] == form.method]
        if mine.empty:
            continue
        by_column = {column_name(r.setting, r.fraction): format_interval(r.diff, r.low, r.high, r.n_pairs)
                     + (" (one class predicted: says nothing)" if r.one_class else "") for r in mine.itertuples()}
        row = [f"{form.label} (`{form.method}`)", format_params(mine), format_share(mine["generator_share"]),
               *(by_column.get(c, "") for c in columns)]
        lines.append("| " + " | ".join(row) + " |")
    studies = []
    metrics = list(dict.fromkeys(cells["metric"]))
    for source in manifest.sources:
        files = ", ".join(f.relative_to(manifest.root).as_posix() for f in source.files)
        metric = cells[cells["setting"] == source.setting]["metric"].iloc[0] if len(metrics) > 1 else None
        studies.append(f"- {source.setting} ({source.model}), {source.study}: {', '.join(source.methods)} from {files}"
                       + (f"; metric: {score_text.name(metric)}" if metric else "")
                       + (f"; {source.note}" if source.note else ""))
    return "\n".join([
        f"{difference_words(metrics)}, paired by seed (same data subset, order and head "
        "initialisation), with the 95 % Student-t interval of the mean difference and the number of pairs; bold: "
        "the interval excludes 0. Every method's learning rate was chosen on the validation score only. "
        "params / LoRA: trainable parameters (adapter and any classification head) over LoRA's at equal rank. "
        f"{report.diagnostic_label('generator_share')}: {report.DIAGNOSTICS['generator_share'][1]}.", "",
        *lines, "", "Sources (one per cell; files relative to the manifest's folder):", "", *studies, ""])


def difference_words(metrics: list[str]) -> str:
    """What a cell holds: "Test accuracy of each form minus LoRA's, in percentage points" for one metric; with
    several, each source's metric named in the sources list."""
    if len(metrics) == 1:
        return (f"Test {score_text.name(metrics[0])} of each form minus LoRA's, in "
                f"{score_text.difference_unit(metrics[0])}")
    return ("Test score of each form minus LoRA's, by each source's metric (named with the source below; rates in "
            "percentage points, correlations in correlation units)")


def plot_forest(manifest: Manifest, cells: pd.DataFrame, path: str | Path) -> Path:
    """A forest plot of the cells: one row per (form, setting, fraction), the mean difference to LoRA with
    its 95 % interval, a line at 0; rows grouped under a bold heading per form, coloured by form. Written
    atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {f.method: f.label for f in manifest.forms}
    groups = list(cells.groupby("method", sort=False))
    n_rows = len(cells) + len(groups)
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.22 * n_rows), dpi=120)
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        ticks, tick_labels, headings = [], [], []
        y = n_rows - 1
        for i, (method, group) in enumerate(groups):
            ticks.append(y)
            tick_labels.append(labels[method])
            headings.append(len(ticks) - 1)
            rows = y - 1 - np.arange(len(group))
            y -= len(group) + 1
            has_ci = group["low"].notna().to_numpy()
            diff = group["diff"].to_numpy()
            low = np.where(has_ci, group["low"].to_numpy(), diff)
            high = np.where(has_ci, group["high"].to_numpy(), diff)
            ax.errorbar(diff, rows, xerr=[diff - low, high - diff], fmt="o", capsize=2, markersize=4,
                        color=colors[i % len(colors)])
            ticks += list(rows)
            tick_labels += [f"{column_name(r.setting, r.fraction)} ({r.n_pairs})" for r in group.itertuples()]
        ax.axvline(0, color="black", linewidth=1)
        ax.set_yticks(ticks)
        ax.set_yticklabels(tick_labels, fontsize=8)
        for index in headings:
            label = ax.get_yticklabels()[index]
            label.set_fontweight("bold")
            label.set_color(colors[headings.index(index) % len(colors)])
        ax.set_ylim(-0.8, n_rows - 0.2)
        metrics = list(dict.fromkeys(cells["metric"]))
        what = (f"test {score_text.name(metrics[0])} − LoRA's ({score_text.difference_unit(metrics[0])})"
                if len(metrics) == 1 else "test score − LoRA's (each source's metric and unit)")
        ax.set_xlabel(f"{what}, paired by seed; bars: 95 % t-interval")
        ax.set_title("Each form against LoRA (rows: setting, data fraction, pairs of seeds)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)


def write_map(manifest_path: str | Path, output: str | Path) -> dict[str, Path]:
    """Write OUTPUT/method_map.md (the table) and OUTPUT/method_map.png (the forest plot) from a manifest."""
    from hora.experiments import paths

    output = paths.check_output_dir(output)
    manifest = load_manifest(manifest_path)
    cells = map_cells(manifest)
    output.mkdir(parents=True, exist_ok=True)
    table = atomic_write_text(output / TABLE_NAME, table_markdown(manifest, cells))
    figure = plot_forest(manifest, cells, output / FIGURE_NAME)
    return {"table": table, "figure": figure}
