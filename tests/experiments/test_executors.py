"""Executors: a grid on a local Ray instance (2 CPUs, one per module) gives the sequential path's results, its
tuning stage chooses as the sequential path does, a failed run does not stop the others, an interrupted grid
resumes, and a running cluster is joined by its address."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_rows

from hora.experiments import executors, sweep
from hora.experiments.datasource import DataSource, load_splits
from hora.experiments.errors import GridInterrupted, HoraError, RunsFailed
from hora.experiments.executors import ExecutionSettings, RayExecutor, SequentialExecutor
from hora.experiments.grid_progress import GridProgress
from hora.experiments.train_config import TrainConfig

GRID = dict(method_list=["hora", "lora"], fractions=[0.5], seeds=[0, 1], lrs=[1e-3, 1e-2], tune_seeds=[0])
TIMING = ["train_seconds", "run_dir"]  # the only columns that may differ between two executions of a grid


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance with 2 CPUs for the module (Ray takes seconds to start)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def base(tiny_bert, tmp_path_factory) -> TrainConfig:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    pd.DataFrame(make_rows()).to_csv(path, index=False)
    return TrainConfig(model=str(tiny_bert), data=str(path), text_columns="review", label_column="sentiment",
                       steps=2, batch_size=8, max_length=16, progress=False)


@pytest.fixture(scope="module")
def sequential(base, tmp_path_factory) -> pd.DataFrame:
    """The grid's results.csv from the sequential path, one torch thread per run."""
    out = tmp_path_factory.mktemp("sequential")
    sweep.run_compare(base, output=out, progress=False, executor=SequentialExecutor(cpus_per_run=1), **GRID)
    return pd.read_csv(out / "results.csv")


def _same_results(out: Path, reference: pd.DataFrame) -> None:
    got = pd.read_csv(out / "results.csv")
    # check_like: the diagnostic columns come in metrics.json's (sorted) order when the first row is a reused run
    pd.testing.assert_frame_equal(got.drop(columns=TIMING), reference.drop(columns=TIMING), check_like=True)


def test_a_grid_on_ray_gives_the_sequential_results_and_choices(ray_session, base, sequential, tmp_path):
    out = tmp_path / "ray"
    sweep.run_compare(base, output=out, progress=False, executor=RayExecutor(cpus_per_run=1), **GRID)
    _same_results(out, sequential)
    # the tuning stage: both lrs on seed 0; seed 1 only at the lr chosen on validation
    for _, cell in sequential.groupby("method"):
        assert sorted(cell[cell["seed"] == 0]["lr"]) == [1e-3, 1e-2]
        best = cell[cell["seed"] == 0].set_index("lr")["val_accuracy"].idxmax()
        assert list(cell[cell["seed"] == 1]["lr"]) == [best]
    threads = {json.loads(p.read_text())["torch_threads"] for p in out.glob("runs/*/metrics.json")}
    assert threads == {1}
    assert len(list((out / "logs").glob("*.log"))) == 6  # every run's output, in its own log


def test_a_failed_run_is_reported_with_its_log_and_the_others_go_on(ray_session, base, sequential, tmp_path):
    out = tmp_path / "ray"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "lora_f0.5_lr0.01_s0").write_text("not a run folder")  # this run cannot write its output
    with pytest.raises(RunsFailed) as failure:
        sweep.run_compare(base, output=out, progress=False, executor=RayExecutor(cpus_per_run=1), **GRID)
    log = out / "logs" / "lora_f0.5_lr0.01_s0.log"
    message = str(failure.value)
    assert f"lora_f0.5_lr0.01_s0 (HoraError: --output {out / 'runs' / 'lora_f0.5_lr0.01_s0'} is an existing file" \
        in message and f"log: {log}" in message
    assert "lora_f0.5_s1 (not run: a tuning run of lora at 0.5 failed)" in message
    assert "Traceback" in log.read_text() and "is an existing file" in log.read_text()
    results = pd.read_csv(out / "results.csv")
    hora = sequential[sequential["method"] == "hora"]
    pd.testing.assert_frame_equal(results[results["method"] == "hora"].drop(columns=TIMING).reset_index(drop=True),
                                  hora.drop(columns=TIMING).reset_index(drop=True))
    assert list(results[results["method"] == "lora"]["lr"]) == [1e-3]  # the other lora tuning run finished
    assert "**2 runs are missing**" in (out / "summary.md").read_text()


def test_an_interrupted_grid_keeps_its_finished_runs_and_resumes(ray_session, base, sequential, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "ray"
    real_finish = GridProgress.finish

    def finish_then_ctrl_c(self, *args, **kwargs):
        real_finish(self, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C as the first run ends

    monkeypatch.setattr(GridProgress, "finish", finish_then_ctrl_c)
    with pytest.raises(GridInterrupted) as interrupted:
        sweep.run_compare(base, output=out, progress=False, executor=RayExecutor(cpus_per_run=1), **GRID)
    assert interrupted.value.cancelled >= 1
    monkeypatch.setattr(GridProgress, "finish", real_finish)
    kept = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}
    assert 1 <= len(kept) < 6
    sweep.run_compare(base, output=out, progress=False, executor=RayExecutor(cpus_per_run=1), **GRID)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished runs were reused, not retrained
    _same_results(out, sequential)


def test_an_output_a_worker_cannot_write_is_a_clear_error(ray_session, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(HoraError, match=r"cannot be written from Ray node .*shared storage"):
        RayExecutor().prepare(tmp_path / "file" / "out")
    with pytest.raises(HoraError, match="--cpus-per-run 3: no Ray node has that many CPUs"):
        RayExecutor(cpus_per_run=3).prepare(tmp_path)


def test_the_cli_joins_a_running_cluster_by_its_address(ray_session, base, sequential, tmp_path):
    """A second driver (``hora compare --ray-address``) runs the grid on the cluster this module started."""
    address = ray_session.get_runtime_context().gcs_address
    out = tmp_path / "cluster"
    cmd = [sys.executable, "-m", "hora", "compare", "--methods", "hora,lora", "--fractions", "0.5", "--seeds", "0,1",
           "--lrs", "1e-3,1e-2", "--tune-seeds", "0", "--model", base.model, "--data", base.data, "--text-column",
           "review", "--label-column", "sentiment", "--steps", "2", "--batch-size", "8", "--max-length", "16",
           "--output", str(out), "--no-progress", "--ray-address", address, "--cpus-per-run", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _same_results(out, sequential)


def test_a_missing_ray_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(HoraError, match=r"^--ray needs Ray, an optional extra: pip install 'hora\[ray\]'$"):
        RayExecutor()
    from typer.testing import CliRunner

    from hora.cli import app

    result = CliRunner().invoke(app, ["compare", "--ray", "--output", "unused"])
    assert result.exit_code == 2
    assert result.output.strip() == "hora: error: --ray needs Ray, an optional extra: pip install 'hora[ray]'"


def test_execution_settings_are_checked():
    with pytest.raises(HoraError, match="--gpus-per-run needs --ray"):
        ExecutionSettings(gpus_per_run=1)
    with pytest.raises(HoraError, match="--cpus-per-run must be at least 1"):
        ExecutionSettings(cpus_per_run=0)
    assert ExecutionSettings(ray_address="auto").uses_ray and not ExecutionSettings().uses_ray
    with executors.open_executor(ExecutionSettings(cpus_per_run=2)) as executor:
        assert isinstance(executor, SequentialExecutor) and executor.cpus_per_run == 2


def test_the_sequential_executor_sets_the_threads_of_each_run_and_restores_them(base, tmp_path):
    import torch

    before = torch.get_num_threads()
    seen = []
    spec = executors.RunSpec("one", dataclasses.replace(base, output=str(tmp_path / "one")), tmp_path / "one.log")
    SequentialExecutor(cpus_per_run=1).run([spec], load_splits(DataSource.of(base)), lambda name: None, seen.append)
    assert seen[0].metrics["torch_threads"] == 1 and torch.get_num_threads() == before
