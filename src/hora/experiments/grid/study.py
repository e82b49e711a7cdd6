"""The evidence study (issue 4) as one resumable command: four comparison grids, two presets.

Grids, each a :func:`hora.experiments.grid.sweep.run_compare` into ``OUTPUT/<grid>``:

    text       MiniLM-L6 on Rotten Tomatoes: HoRA, LoRA at equal rank, LoRA at HoRA's parameter count,
               DoRA, VeRA and the identity control (HoRA with head factor = seed, i.e. LoRA) over data
               fractions
    decoder    SmolLM2-135M (grouped-query attention) on the same task, fewer cells
    vision     the small ViT pre-trained here on Fashion-MNIST, adapted to MNIST-5k
    ablations  HoRA switches on the text task (scope module, joint free factor, width p = 32, tanh) beside
               HoRA and LoRA at fraction 0.05, and q,k,v,o instead of q,v (HoRA and LoRA); tuned like ``text``,
               so its HoRA and LoRA runs are ``text``'s runs at 0.05, copied rather than rerun

Fairness: every method gets the same learning-rate search, ``LR_FACTORS`` times its default lr (the
defaults differ by method family: VeRA trains only scaling vectors), tried on ``tune_seeds`` and chosen
on validation accuracy only; the remaining seeds run at the chosen lr. Same steps, batch, data order and
subsample per seed for every method.

The benchmark presets (``glue``, ``commonsense``, ``vtab1k``: :mod:`hora.experiments.grid.presets`) are one grid per
task with the benchmark's recipe, fraction 1, and absolute learning rates tried by every method; after the grids'
sections ``study.md`` has the benchmark's table (:mod:`hora.experiments.reports.benchmark_report`).

``quick`` checks the whole pipeline in about 10 minutes on 2 CPU cores (one seed, no lr search, 60-step
runs, evaluation on 256 random examples): its numbers are not evidence, and 60 steps barely leave the
loss plateau of the text task. ``full`` is the protocol of issue 4.
``OUTPUT/study.md`` collects every grid's summary and, where fraction 1 was run, the smallest fraction
at which each method's mean test score reaches LoRA's full-data mean.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from hora.experiments import paths
from hora.experiments.errors import HoraError, RunsFailed
from hora.experiments.grid import presets
from hora.experiments.grid.runs import Executor
from hora.experiments.grid.sweep import run_compare
from hora.experiments.methods import build
from hora.experiments.reports import benchmark_report, report
from hora.experiments.scoring import score_text
from hora.experiments.training.pretrain_vit import pretrain_vit
from hora.experiments.training.train_config import TrainConfig
from hora.io import atomic_write

LR_FACTORS = (1.0, 3.0, 10.0)
COMPARED = ("hora", "lora", "lora-matched", "dora", "vera", "hora-identity")
ABLATIONS = ("hora-module", "hora-joint", "hora-p32", "hora-tanh")


@dataclass(frozen=True)
class Grid:
    """One comparison: ``methods`` x ``fractions`` x ``seeds`` on a task, with TrainConfig ``settings``."""

    name: str
    title: str
    methods: tuple[str, ...]
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    settings: dict = field(default_factory=dict)
    lr_factors: tuple[float, ...] = LR_FACTORS
    tune_seeds: tuple[int, ...] | None = None
    lr_grid: tuple[float, ...] | None = None  # absolute lrs tried by every method, instead of the factors
    test_sets: tuple[str, ...] = ()  # the names of further test sets each run scores (settings' test_sets)
    save_adapters: bool = False  # save every run's adapter (a benchmark whose result files report its size)

    def lrs(self) -> dict[str, list[float]]:
        """Each method's lr grid: ``lr_grid``, else its default lr times each factor."""
        if self.lr_grid is not None:
            return {m: list(self.lr_grid) for m in self.methods}
        return {m: [build.default_lr(m) * f for f in self.lr_factors] for m in self.methods}


def _presets() -> dict[str, list[Grid]]:
    fractions = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
    seeds = (0, 1, 2, 3, 4)
    text = dict(task="rotten_tomatoes", steps=150, batch_size=16)  # model None: the task's default, MiniLM-L6
    decoder = dict(task="rotten_tomatoes", model="smollm2", steps=150, batch_size=16, max_eval_samples=512)
    vision = dict(task="mnist", model="vit", steps=150, batch_size=32)
    quick_run = dict(steps=60, max_eval_samples=256)
    one = dict(seeds=(0,), lr_factors=(3.0,))
    return {
        "full": [
            Grid("text", "MiniLM-L6 on Rotten Tomatoes", COMPARED, fractions, seeds, text, tune_seeds=(0, 1)),
            Grid("decoder", "SmolLM2-135M (GQA) on Rotten Tomatoes", ("hora", "lora", "hora-identity"),
                 (0.05, 0.25), (0, 1, 2), decoder, tune_seeds=(0,)),
            Grid("vision", "ViT (pre-trained on Fashion-MNIST) on MNIST-5k", COMPARED, (0.02, 0.1, 0.5, 1.0),
                 seeds, vision, tune_seeds=(0,)),
            Grid("ablations", "HoRA ablations on MiniLM-L6 + Rotten Tomatoes", ("hora", *ABLATIONS, "lora"),
                 (0.05,), seeds, text, tune_seeds=(0, 1)),
            Grid("ablations-qkvo", "q,k,v,o adapted instead of q,v", ("hora", "lora"), (0.05,), seeds,
                 {**text, "targets": "q,k,v,o"}, tune_seeds=(0, 1)),
        ],
        "quick": [
            Grid("text", "MiniLM-L6 on Rotten Tomatoes", COMPARED, (0.05, 1.0), settings={**text, **quick_run},
                 **one),
            Grid("decoder", "SmolLM2-135M (GQA) on Rotten Tomatoes", ("hora", "lora"), (0.05,),
                 settings={**decoder, "steps": 10, "max_eval_samples": 128}, **one),
            Grid("vision", "ViT (pre-trained on Fashion-MNIST) on MNIST-5k", COMPARED, (0.1, 1.0),
                 settings={**vision, **quick_run}, **one),
            Grid("ablations", "HoRA ablations on MiniLM-L6 + Rotten Tomatoes", ABLATIONS + ("lora",), (0.05,),
                 settings={**text, **quick_run}, **one),
            Grid("ablations-qkvo", "q,k,v,o adapted instead of q,v", ("hora", "lora"), (0.05,),
                 settings={**text, **quick_run, "targets": "q,k,v,o"}, **one),
        ],
    }


PRESETS = _presets()
GRID_NAMES = tuple(g.name for g in PRESETS["full"])


def benchmark_grids(name: str, root: str | None = None, overrides: dict | None = None,
                    protocol: dict | None = None) -> list[Grid]:
    """One grid per task of the benchmark preset ``name`` (data root ``root``, TrainConfig ``overrides`` such
    as a smaller model or ``steps``, ``protocol``: other methods, seeds or lrs)."""
    b = presets.benchmark(name).with_protocol(**(protocol or {}))
    root = b.check_root(root)
    return [Grid(task.name, f"{b.title}: {task.name}", b.methods, (1.0,), b.seeds,
                 b.task_settings(task, root, overrides), tune_seeds=b.tune_seeds, lr_grid=b.lrs,
                 test_sets=b.test_sets, save_adapters=b.peft_results) for task in b.tasks]


def select_grids(preset: str, only: list[str] | None = None, root: str | None = None,
                 overrides: dict | None = None, protocol: dict | None = None) -> list[Grid]:
    """The grids of ``preset`` (quick | full, or a benchmark preset), optionally only those named in ``only``."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    protocol = {k: v for k, v in (protocol or {}).items() if v}
    if preset in presets.BENCHMARKS:
        grids = benchmark_grids(preset, root, overrides, protocol)
        for name in only or []:
            presets.benchmark(preset).task(name)  # a one-line error naming the tasks
        return [g for g in grids if not only or g.name in only]
    if root is not None or overrides or protocol:
        raise HoraError(f"--data-root, --model, --steps, --methods, --seeds and --lrs apply to the benchmark presets "
                        f"({', '.join(presets.BENCHMARKS)}), not to '{preset}'")
    if preset not in PRESETS:
        raise HoraError(f"unknown preset '{preset}': choose quick, full or one of {', '.join(presets.BENCHMARKS)}")
    unknown = [n for n in only or [] if n not in GRID_NAMES]
    if unknown:
        raise HoraError(f"unknown study grid(s) {', '.join(unknown)}: choose from {', '.join(GRID_NAMES)}")
    return [g for g in PRESETS[preset] if not only or g.name in only]


def reach_fraction(summary: pd.DataFrame, method: str, reference: str = "lora") -> float | None:
    """Smallest fraction at which ``method``'s mean test score >= ``reference``'s mean at fraction 1.

    None when fraction 1 of the reference was not run or the method never reaches it.
    """
    ref = summary[(summary["method"] == reference) & (summary["fraction"] == 1.0)]
    if ref.empty:
        return None
    target = float(ref["score_mean"].iloc[0])
    rows = summary[(summary["method"] == method) & (summary["score_mean"] >= target)]
    return float(rows["fraction"].min()) if not rows.empty else None


def _reach_lines(df: pd.DataFrame) -> list[str]:
    if df["fraction"].nunique() < 2:
        return []
    summ = report.summarize(df)
    ref = summ[(summ["method"] == "lora") & (summ["fraction"] == 1.0)]
    if ref.empty:
        return []
    metric = report.metric_name(df)
    lines = ["", f"Smallest fraction reaching LoRA's full-data mean test {score_text.name(metric)} "
                 f"({score_text.text(float(ref['score_mean'].iloc[0]), metric, 1)}):", ""]
    for method in sorted(summ["method"].unique()):
        f = reach_fraction(summ, method)
        lines.append(f"- {method}: " + (f"{f:g}" if f is not None else "not reached at any fraction run"))
    return lines


def _grid_section(grid: Grid, output: Path, df: pd.DataFrame) -> list[str]:
    """study.md's section of one grid: its summary.md (without its title) and its plot."""
    summary = (output / grid.name / "summary.md").read_text().split("\n", 2)[2]  # drop its title
    summary = summary.replace("\n## ", "\n### ")
    return [f"## {grid.title} (`{grid.name}/`)", "", summary.strip(), *_reach_lines(df),
            "", f"![{grid.name}]({grid.name}/accuracy_vs_fraction.png)", ""]


def _peft_results(df: pd.DataFrame, folder: Path) -> list[str]:
    """Each selected run (the lr chosen on validation, every seed) as PEFT's result JSON in ``folder``; the line of
    study.md that says where."""
    from hora.experiments.data.metamathqa import RunRecord, write_results

    runs = [Path(d) for d in df.loc[df["selected"], "run_dir"]]
    records = [RunRecord(json.loads((d / "metrics.json").read_text()), d) for d in runs]
    written = write_results(records, folder)
    return [f"{len(written)} runs written as PEFT's method-comparison result files into "
            f"`{folder.parent.name}/{folder.name}/` "
            f"(`hora report --peft-results DIR` sets them beside PEFT's published ones).", ""]


def _task_tables(grid: Grid, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The results of each task a grid scores: its own test split, or (with further test sets, e.g. the
    commonsense preset's eight) one table per test set, its score as the ``score`` column."""
    if not grid.test_sets:
        return {grid.name: df}
    return {name: df.assign(score=df[f"test_{name}"]) for name in grid.test_sets}


def run_study(preset: str, output: str | Path, only: list[str] | None = None, progress: bool = True,
              root: str | None = None, overrides: dict | None = None, protocol: dict | None = None,
              executor: Executor | None = None) -> Path:
    """Run (or resume) the preset's grids into ``output``; write ``output/study.md``; return its path.
    ``executor`` runs every grid's runs (default: one after another in this process). A run that fails does
    not stop the study: every grid is run, study.md is written from the runs that finished, then
    :class:`RunsFailed` names every failed run (the same command retries only those).

    A run that another grid of the preset already finished with the same settings (e.g. ``ablations``'
    HoRA and LoRA at 0.05, which are ``text``'s) is copied from that grid's folder, not trained again.
    For a benchmark preset, ``root`` replaces its data root, ``overrides`` its TrainConfig settings and
    ``protocol`` its methods, seeds or learning rates.
    """
    grids = select_grids(preset, only, root, overrides, protocol)
    every = [g.name for g in select_grids(preset, None, root, overrides, protocol)]  # runs may be copied from
    output = paths.check_output_dir(output)
    if any(g.settings.get("model") == "vit" for g in grids):
        pretrain_vit(progress=progress)  # cached after the first time
    title = presets.BENCHMARKS[preset].title if preset in presets.BENCHMARKS else "HoRA evidence study"
    sections = [f"# {title} ({preset} preset)", ""]
    if preset == "quick":
        sections += ["Quick preset: one seed, no learning-rate search, 60-step runs, 256 evaluation examples. "
                     "It checks the pipeline; its numbers are not evidence.", ""]
    tables: dict[str, pd.DataFrame] = {}
    metrics: dict[str, str] = {}
    failed: list[str] = []  # "name (error; log: path)" of every run of every grid that did not finish
    for grid in grids:
        base = dataclasses.replace(TrainConfig(), **grid.settings)
        try:
            df = run_compare(base, list(grid.methods), list(grid.fractions), list(grid.seeds), output / grid.name,
                             lrs=grid.lrs(), progress=progress, executor=executor,
                             save_adapters=grid.save_adapters,
                             tune_seeds=list(grid.tune_seeds) if grid.tune_seeds else None,
                             reuse_from=[output / name for name in every if name != grid.name])
        except RunsFailed as exc:  # the other grids go on
            failed += exc.failed
            if exc.results is None:
                sections += [f"## {grid.title} (`{grid.name}/`)", "", f"Every run failed: see `{grid.name}/logs/`.",
                             ""]
                continue
            df = exc.results
        sections += _grid_section(grid, output, df)
        if preset in presets.BENCHMARKS and presets.BENCHMARKS[preset].peft_results:
            sections += _peft_results(df, output / grid.name / "peft_results")
        for name, table in _task_tables(grid, df).items():
            if name != grid.name:  # a further test set: its own summary and plot, in the compare format
                report.write_report(table, output / grid.name / name, title=f"{grid.title}: {name}")
                sections += _grid_section(replace(grid, name=f"{grid.name}/{name}", title=name), output, table)
            tables[name], metrics[name] = table, report.metric_name(table)
    if preset in presets.BENCHMARKS:
        b = presets.BENCHMARKS[preset]
        groups = {g: tuple(t.name for t in b.tasks if t.group == g) for g in b.groups}
        sections.insert(2, benchmark_report.benchmark_markdown(b.title, tables, metrics, groups))
    path = output / "study.md"
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(sections)))
    if failed:
        raise RunsFailed(f"{len(failed)} runs of the study did not finish: " + "; ".join(failed)
                         + f". The others are in {path}; fix the cause and rerun the same command (finished runs "
                         "are reused)", failed)
    return path

