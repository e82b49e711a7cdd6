"""A grid of training runs: methods x data fractions x seeds (x learning rates), then a report.

Every run uses the same fixed split (it depends on ``split_seed`` only), so all runs are scored on
the same test examples, and runs with the same seed see the same training subset at each fraction.
With several learning rates, ``tune_seeds`` may name the seeds that try them all; the other seeds then
run at each (method, fraction)'s lr chosen on validation only (see :func:`run_compare`).
Each run writes ``OUTPUT/runs/<method>_f<fraction>_lr<lr>_s<seed>/metrics.json``; a rerun of the same
command skips runs whose metrics.json exists with the same settings (resumable), and a run finished with
the same settings in another comparison's folder (``reuse_from``) is copied instead of rerun. ``OUTPUT/results.csv``
is rewritten after every run, then ``summary.md`` and ``accuracy_vs_fraction.png`` at the end.
The runs are executed by an executor (:mod:`hora.experiments.grid.executors`): one after another in this process,
or as Ray tasks; the protocol above is the same for both.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd

from hora.experiments import paths
from hora.experiments.console.grid_progress import GridProgress
from hora.experiments.data import datasource
from hora.experiments.data.tasks import Splits
from hora.experiments.errors import HoraError, RunsFailed
from hora.experiments.grid.executors import SequentialExecutor
from hora.experiments.grid.runs import Executor, RunResult, RunSpec
from hora.experiments.methods import build
from hora.experiments.models import catalogue
from hora.experiments.reports import report
from hora.experiments.training.train_config import PENDING, RECORDED, TrainConfig
from hora.io import atomic_dir, atomic_write

# results.csv's columns; score and val_score hold the run's metric (metrics.json's accuracy and val_accuracy)
RESULT_COLUMNS = ["method", "fraction", "seed", "lr", "score", "val_score", "metric", "predicted_classes",
                  "trainable_params", "train_seconds", "steps", "n_train"]


def parse_list(text: str, kind: type, name: str) -> list:
    """'a,b,c' -> [kind(a), kind(b), kind(c)] with a one-line error on bad items or duplicates."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise HoraError(f"--{name} is empty")
    try:
        values = [kind(t) for t in items]
    except ValueError:
        raise HoraError(f"--{name}: cannot read '{text}' as a comma-separated list of {kind.__name__}") from None
    if len(set(values)) != len(values):
        raise HoraError(f"--{name} lists a value twice: {text}")
    return values


def parse_grid(methods: str, fractions: str, seeds: str, lrs: str | None = None,
               tune_seeds: str | None = None) -> dict:
    """A comparison's grid from its comma lists, as :func:`run_compare`'s keyword arguments."""
    return {
        "method_list": parse_list(methods, str, "methods"),
        "fractions": parse_list(fractions, float, "fractions"),
        "seeds": parse_list(seeds, int, "seeds"),
        "lrs": parse_list(lrs, float, "lrs") if lrs else None,
        "tune_seeds": parse_list(tune_seeds, int, "tune-seeds") if tune_seeds else None,
    }


def _tuning_seeds(seeds: list[int], tune_seeds: list[int] | None, n_lrs: int) -> list[int]:
    """The seeds that run every learning rate: ``tune_seeds`` (a subset of ``seeds``), or all seeds."""
    if tune_seeds is None or n_lrs == 1:
        return list(seeds)
    outside = [s for s in tune_seeds if s not in seeds]
    if outside:
        raise HoraError(f"--tune-seeds must be among --seeds; not in --seeds: {', '.join(map(str, outside))}")
    return [s for s in seeds if s in tune_seeds]


def run_name(method: str, fraction: float, lr: float, seed: int) -> str:
    return f"{build.method_label(method)}_f{fraction:g}_lr{lr:g}_s{seed}"


def _finished(run_dir: Path, cfg: TrainConfig) -> dict | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return None
    if cfg.differences(metrics.get("config", {}), RECORDED) or metrics.get("lr") != cfg.resolved_lr():
        return None
    if PENDING in metrics:  # stopped after its save, before its optional steps (diagnostics): not finished
        return None
    return metrics


def _copy_finished(run_dir: Path, cfg: TrainConfig, folders: list[Path]) -> dict | None:
    """Copy a run finished with ``cfg``'s settings from ``folder/runs/<name>`` of the first folder that has
    one into ``run_dir`` (built aside and renamed into place, so a crash leaves no half-copied run); its metrics.

    None when ``run_dir`` already exists (a stale or unfinished run there is retrained, not replaced).
    """
    if run_dir.exists():
        return None
    for folder in folders:
        source = folder / "runs" / run_dir.name
        metrics = _finished(source, cfg)
        if metrics is not None:
            atomic_dir(run_dir, lambda tmp, source=source: shutil.copytree(source, tmp, dirs_exist_ok=True))
            return metrics
    return None


def _row(metrics: dict, run_dir: Path) -> dict:
    key = {new: old for old, new in report.OLD_NAMES.items()}  # score <- metrics.json's accuracy
    row = {k: metrics.get(key.get(k, k)) for k in RESULT_COLUMNS}
    settings = {f.name for f in dataclasses.fields(TrainConfig)}  # test_split, test_sets: settings, not scores
    row.update({k: v for k, v in metrics.items() if k.startswith(("diag_", "test_")) and k not in settings})
    row["run_dir"] = str(run_dir)
    return row


@dataclasses.dataclass
class GridPlan:
    """Which runs a grid makes: each (method, fraction) runs every lr of its grid on the ``tuning`` seeds, then the
    ``final`` seeds at its chosen lr. A run's place in the grid, ``(fraction, method, stage, lr, seed)`` indices,
    orders the results whatever order the runs end in."""

    base: TrainConfig
    output: Path
    methods: list[str]
    fractions: list[float]
    lr_grids: dict[str, list[float]]
    tuning: list[int]
    final: list[int]
    save_adapters: bool

    @property
    def total(self) -> int:
        return len(self.fractions) * sum(len(self.lr_grids[m]) * len(self.tuning) + len(self.final)
                                         for m in self.methods)

    def cells(self) -> list[tuple[int, float, int, str]]:
        return [(fi, fraction, mi, method) for fi, fraction in enumerate(self.fractions)
                for mi, method in enumerate(self.methods)]

    def spec(self, method: str, fraction: float, lr: float, seed: int) -> RunSpec:
        name = run_name(method, fraction, lr, seed)
        run_dir = self.output / "runs" / name
        # overwrite: a run folder is reused only when finished with these settings; else retrained
        cfg = dataclasses.replace(self.base, method=method, fraction=fraction, lr=lr, seed=seed, output=str(run_dir),
                                  save=self.save_adapters, progress=False, overwrite=True)
        return RunSpec(name, cfg, self.output / "logs" / f"{name}.log")

    def tuning_batch(self) -> dict[tuple, RunSpec]:
        return {(fi, mi, 0, li, si): self.spec(method, fraction, lr, seed)
                for fi, fraction, mi, method in self.cells() for li, lr in enumerate(self.lr_grids[method])
                for si, seed in enumerate(self.tuning)}

    def final_batch(self, ledger: Ledger) -> dict[tuple, RunSpec]:
        """The final seeds of each (method, fraction) at the lr its tuning runs chose on validation; those of one
        whose tuning is incomplete are recorded as not run."""
        finals: dict[tuple, RunSpec] = {}
        for fi, fraction, mi, method in self.cells():
            tuned = [row for place, row in ledger.rows.items() if place[:3] == (fi, mi, 0)]
            if len(tuned) < len(self.lr_grids[method]) * len(self.tuning):  # a tuning run failed: no choice
                for seed in self.final:
                    why = f"a tuning run of {method} at {fraction:g} failed"
                    ledger.not_run(f"{method}_f{fraction:g}_s{seed}", why)
                continue
            chosen = report.best_lr(pd.DataFrame(tuned))
            finals.update({(fi, mi, 1, 0, si): self.spec(method, fraction, chosen, seed)
                           for si, seed in enumerate(self.final)})
        return finals


@dataclasses.dataclass
class Ledger:
    """The grid's finished runs (results.csv's rows, rewritten after each) and the runs that failed or were not
    run ("name (why; log: path)")."""

    output: Path
    bar: GridProgress
    rows: dict[tuple, dict] = dataclasses.field(default_factory=dict)
    failed: list[str] = dataclasses.field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([self.rows[k] for k in sorted(self.rows)])

    def record(self, place: tuple, spec: RunSpec, metrics: dict, how: str, seconds: float | None = None) -> None:
        self.rows[place] = _row(metrics, Path(spec.cfg.output))
        table = self.table()
        atomic_write(self.output / "results.csv", lambda tmp: table.to_csv(tmp, index=False))
        self.bar.finish(spec.name, how, metrics, seconds)

    def fail(self, result: RunResult) -> None:
        self.failed.append(f"{result.spec.name} ({result.error}; log: {result.spec.log})")
        self.bar.fail(result.spec.name, f"failed: {result.error}; log: {result.spec.log}")

    def not_run(self, name: str, why: str) -> None:
        self.failed.append(f"{name} (not run: {why})")
        self.bar.fail(name, f"not run: {why}")


def _run_batch(batch: dict[tuple, RunSpec], ledger: Ledger, executor: Executor, splits: Splits, resume: bool,
               reuse_folders: list[Path]) -> None:
    """Reuse what is finished (in the grid's folder, else in a ``reuse_from`` folder); the executor runs the rest."""
    todo: dict[str, tuple] = {}
    for place, one in batch.items():
        how = "done before"
        metrics = _finished(Path(one.cfg.output), one.cfg) if resume else None
        if metrics is None and resume:
            how, metrics = "copied", _copy_finished(Path(one.cfg.output), one.cfg, reuse_folders)
        if metrics is None:
            todo[one.name] = place
        else:
            ledger.bar.start(one.name)
            ledger.record(place, one, metrics, how)

    def finished(result: RunResult) -> None:
        if result.metrics is not None:
            ledger.record(todo[result.spec.name], result.spec, result.metrics, "trained", result.seconds)
        else:
            ledger.fail(result)

    executor.run([batch[p] for p in todo.values()], splits, ledger.bar.start, finished)


def _check_before_work(base: TrainConfig, methods: list[str], fractions: list[float], seeds: list[int],
                       lr_grids: dict[str, list[float]], output: str | Path) -> tuple[Path, Splits]:
    """Every setting of every run and the output folder checked, and the data read once, before any work: the
    checked output folder and the splits."""
    for method in methods:
        if not lr_grids[method]:
            raise HoraError(f"no learning rate given for {method}")
        for fraction in fractions:
            for lr in lr_grids[method]:
                dataclasses.replace(base, method=method, fraction=fraction, lr=lr)  # the config checks itself
    output = paths.check_output_dir(output)
    source = base.data_source()
    catalogue.resolve_model(base.model, source.kind, base.revision)  # a model that does not fit the task
    splits = datasource.load_splits(source)  # read once, shared by every run
    base.resolved_metric(splits.data.regression)  # a metric that does not fit the task (a regression's: pearson)
    for f in fractions:  # every fraction must leave every class some training examples
        for s in seeds:
            datasource.run_indices(splits, f, s)
    return output, splits


def _report(plan: GridPlan, ledger: Ledger, kind: str) -> pd.DataFrame:
    """results.csv at the chosen lrs, and summary.md with the plot; RunsFailed when some runs did not finish."""
    base, output, failed = plan.base, plan.output, ledger.failed
    if not ledger.rows:
        raise RunsFailed(f"every run of {output} failed: " + "; ".join(failed), failed)
    df = report.select_lr(ledger.table())
    atomic_write(output / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
    context = (f"Task: {base.dataset or base.data or base.task}; "
               f"model: {base.model or catalogue.DEFAULT_MODEL[kind]}; "
               f"rank {base.r}, alpha {base.alpha:g}; "
               + (f"{base.epochs:g} epochs" if base.epochs is not None else f"{base.steps} steps")
               + f" at batch {base.batch_size}; targets {base.targets}; split seed {base.split_seed}.")
    if failed:
        context += (f"\n\n**{len(failed)} runs are missing** (failed, or not run because their tuning failed); "
                    "rerun the same command to retry them: " + "; ".join(failed))
    report.write_report(df, output, context=context)
    if failed:
        raise RunsFailed(f"{len(failed)} of {plan.total} runs did not finish: "
                         + "; ".join(failed) + f". The others are in {output / 'results.csv'} and summary.md; "
                         "fix the cause and rerun the same command (finished runs are reused)", failed, df)
    return df


def run_compare(base: TrainConfig, method_list: list[str], fractions: list[float], seeds: list[int],
                output: str | Path, lrs: list[float] | dict[str, list[float]] | None = None,
                save_adapters: bool = False, progress: bool = True, resume: bool = True,
                tune_seeds: list[int] | None = None, reuse_from: list[Path] | None = None,
                executor: Executor | None = None) -> pd.DataFrame:
    """Run the grid and write results.csv, summary.md and accuracy_vs_fraction.png into ``output``.

    ``lrs`` is one lr grid for all methods, or a grid per method (a dict), or None (each method's default).
    With several lrs, each (method, fraction) first runs every lr on ``tune_seeds`` (default: all
    ``seeds``), picks the lr with the best mean validation accuracy, then runs the remaining seeds at
    that lr only. Test accuracy never enters the choice. With ``resume``, a run not finished in ``output``
    but finished with the same settings in one of the ``reuse_from`` comparison folders is copied from there.

    The protocol is two batches whatever runs them (``executor``: :class:`SequentialExecutor` by default,
    or Ray): every tuning run of every (method, fraction), then the other seeds at each one's chosen lr.
    Rows are kept in the grid's order (fraction, method, lr, seed), whatever order the runs end in. A run
    that fails is left out and the others go on (on every executor); no final seed of a (method, fraction)
    whose tuning is incomplete is run; the report is written from the runs that finished, then
    :class:`RunsFailed` names the failed runs and their logs (a rerun retries only those).
    """
    lr_grids = {m: [build.default_lr(m)] if lrs is None else list(lrs[m] if isinstance(lrs, dict) else lrs)
                for m in method_list}
    output, splits = _check_before_work(base, method_list, fractions, seeds, lr_grids, output)
    tuning = _tuning_seeds(seeds, tune_seeds, max(len(g) for g in lr_grids.values()))
    plan = GridPlan(base, output, method_list, fractions, lr_grids, tuning, [s for s in seeds if s not in tuning],
                    save_adapters)
    executor = executor or SequentialExecutor()
    output.mkdir(parents=True, exist_ok=True)
    executor.prepare(output)
    reuse_folders = [Path(f) for f in reuse_from or []]
    with GridProgress(plan.total, title=output.name or "compare", enabled=progress, slots=executor.slots) as bar:
        ledger = Ledger(output, bar)
        _run_batch(plan.tuning_batch(), ledger, executor, splits, resume, reuse_folders)
        _run_batch(plan.final_batch(ledger), ledger, executor, splits, resume, reuse_folders)
    return _report(plan, ledger, splits.data.kind)
