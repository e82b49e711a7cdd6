"""A benchmark's table, as the PEFT papers print it: one row per method, one column per task (its metric, mean ±
sample sd over seeds at the learning rate chosen on validation, x 100: rates in percent, correlations x 100 as GLUE
reports them, each column naming its metric) and the average.

Each task's scores come from its comparison's results table through :func:`hora.experiments.reports.report.summarize`
(so the learning rate is chosen exactly as in that task's summary.md). The average is the mean of the method's
task means; with groups (VTAB-1k: natural, specialized, structured) each group's mean is shown and the average
is the mean of the group means, as VTAB-1k is reported. A method missing a task gets "n/a" there and no average.
"""

from __future__ import annotations

import math

import pandas as pd

from hora.experiments.reports import report
from hora.experiments.scoring import score_text


def task_means(results: pd.DataFrame) -> dict[str, tuple[float, float, int]]:
    """Method -> (mean, sample sd, seeds) of the test score at the chosen lr (the largest fraction run)."""
    summary = report.summarize(results)
    summary = summary[summary["fraction"] == summary["fraction"].max()]
    return {r["method"]: (float(r["score_mean"]), float(r["score_std"]), int(r["n"]))
            for _, r in summary.iterrows()}


def _cell(value: tuple[float, float, int] | float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, tuple):
        mean, sd, _ = value
        return f"{100 * mean:.1f}" + ("" if math.isnan(sd) else f" ± {100 * sd:.1f}")
    return f"{100 * value:.1f}"


def _mean(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def benchmark_markdown(title: str, results: dict[str, pd.DataFrame], metrics: dict[str, str],
                       groups: dict[str, tuple[str, ...]] | None = None) -> str:
    """The table of a benchmark whose task ``t`` has the results table ``results[t]`` scored by ``metrics[t]``."""
    means = {task: task_means(df) for task, df in results.items()}
    methods = sorted({m for per_task in means.values() for m in per_task}, key=lambda m: (m != "hora", m))
    tasks = list(results)
    groups = {g: tuple(t for t in names if t in results) for g, names in (groups or {}).items()}
    groups = {g: names for g, names in groups.items() if names}
    header = (["method"] + [f"{t} ({score_text.name(metrics[t])}{' %' if score_text.is_rate(metrics[t]) else ' x 100'})"
                            for t in tasks] + [f"{g} mean" for g in groups] + ["average"])
    lines = [f"## {title}", "",
             "Test score by each task's metric (rates in percent, correlations x 100), mean ± sample sd over seeds at "
             "the learning rate chosen on validation "
             "(each task's summary.md gives the intervals and the paired differences); "
             + ("average: mean of the group means." if groups else "average: mean over the tasks."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        per_task = {t: means[t].get(method) for t in tasks}
        task_mean = {t: v[0] if v is not None else None for t, v in per_task.items()}
        group_means = {g: _mean([task_mean[t] for t in names]) for g, names in groups.items()}
        average = _mean(list(group_means.values())) if groups else _mean(list(task_mean.values()))
        cells = [method] + [_cell(per_task[t]) for t in tasks] + [_cell(v) for v in group_means.values()]
        lines.append("| " + " | ".join(cells + [_cell(average)]) + " |")
    lines.append("")
    return "\n".join(lines)
