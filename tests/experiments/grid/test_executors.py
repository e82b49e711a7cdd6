"""Executors: a grid on a Ray cluster of two nodes (1 CPU each, on this machine, one per module) gives the
sequential path's results with runs on both nodes, its tuning stage chooses as the sequential path does, a
failed run does not stop the others, an interrupted grid resumes, a running cluster is joined by its address
(and a dead address is a quick error), runs given GPUs get one each, and the Slurm script starts a cluster
over an allocation and runs the grid on it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import make_rows

from hora.experiments.console.grid_progress import GridProgress
from hora.experiments.data.datasource import load_splits
from hora.experiments.errors import GridInterrupted, HoraError, RunsFailed
from hora.experiments.grid import executors, ray_executor, runs, sweep
from hora.experiments.grid.executors import ExecutionSettings, SequentialExecutor
from hora.experiments.grid.ray_executor import RayExecutor, check_reachable
from hora.experiments.training.train_config import PENDING, TrainConfig

GRID = dict(method_list=["hora", "lora"], fractions=[0.5], seeds=[0, 1], lrs=[1e-3, 1e-2], tune_seeds=[0])
TIMING = ["train_seconds", "run_dir"]  # the only columns that may differ between two executions of a grid
STORE = 100 * 2**20  # object store bytes per Ray node
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of two nodes with 1 CPU each on this machine, this process its driver, for the module (Ray
    takes seconds to start)."""
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, include_dashboard=False,
                                                              object_store_memory=STORE))
    nodes.add_node(num_cpus=1, object_store_memory=STORE)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_nodes_of(out: Path) -> set[str]:
    """The Ray nodes the runs of the grid in ``out`` ran on, read from the first line of their logs."""
    return {re.search(r"\(Ray node (\w+)\)", log.read_text()).group(1) for log in out.glob("logs/*.log")}


def compare_command(base: TrainConfig, out: Path, *execution: str) -> list[str]:
    """``hora compare`` of the module's grid into ``out``, as a command line."""
    return ["hora", "compare", "--methods", "hora,lora", "--fractions", "0.5", "--seeds", "0,1", "--lrs", "1e-3,1e-2",
            "--tune-seeds", "0", "--model", base.model, "--data", base.data, "--text-column", "review",
            "--label-column", "sentiment", "--steps", "2", "--batch-size", "8", "--max-length", "16", "--output",
            str(out), "--no-progress", *execution]


def run_hora(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``cmd`` in a child process whose ``hora`` is this interpreter's ``python -m hora``, with this process's
    environment but RAY_ADDRESS, updated by ``env``."""
    if cmd[0] == "hora":
        cmd = [sys.executable, "-m", "hora", *cmd[1:]]
    inherited = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env = {**inherited, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


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


def test_a_grid_on_ray_gives_the_sequential_results_and_choices(cluster, base, sequential, tmp_path):
    out = tmp_path / "ray"
    sweep.run_compare(base, output=out, progress=False, executor=RayExecutor(cpus_per_run=1), **GRID)
    _same_results(out, sequential)
    # the tuning stage: both lrs on seed 0; seed 1 only at the lr chosen on validation
    for _, cell in sequential.groupby("method"):
        assert sorted(cell[cell["seed"] == 0]["lr"]) == [1e-3, 1e-2]
        best = cell[cell["seed"] == 0].set_index("lr")["val_score"].idxmax()
        assert list(cell[cell["seed"] == 1]["lr"]) == [best]
    threads = {json.loads(p.read_text())["torch_threads"] for p in out.glob("runs/*/metrics.json")}
    assert threads == {1}
    assert len(list((out / "logs").glob("*.log"))) == 6  # every run's output, in its own log
    assert len(ray_nodes_of(out)) == 2  # the runs spread over both nodes


@pytest.fixture(params=["sequential", "ray"])
def any_executor(request):
    """Each executor in turn (Ray on the module's cluster), one torch thread per run."""
    if request.param == "ray":
        request.getfixturevalue("cluster")
        return RayExecutor(cpus_per_run=1)
    return SequentialExecutor(cpus_per_run=1)


def test_a_failed_run_is_reported_with_its_log_the_others_go_on_and_a_rerun_retries_it(base, sequential, tmp_path,
                                                                                        any_executor):
    out = tmp_path / "grid"
    (out / "runs").mkdir(parents=True)
    blocker = out / "runs" / "lora_f0.5_lr0.01_s0"
    blocker.write_text("not a run folder")  # this run cannot write its output
    with pytest.raises(RunsFailed) as failure:
        sweep.run_compare(base, output=out, progress=False, executor=any_executor, **GRID)
    log = out / "logs" / "lora_f0.5_lr0.01_s0.log"
    message = str(failure.value)
    assert f"lora_f0.5_lr0.01_s0 (HoraError: --output {blocker} is an existing file" in message
    assert f"log: {log}" in message
    assert "lora_f0.5_s1 (not run: a tuning run of lora at 0.5 failed)" in message
    assert "Traceback" in log.read_text() and "is an existing file" in log.read_text()
    results = pd.read_csv(out / "results.csv")
    hora = sequential[sequential["method"] == "hora"]
    pd.testing.assert_frame_equal(results[results["method"] == "hora"].drop(columns=TIMING).reset_index(drop=True),
                                  hora.drop(columns=TIMING).reset_index(drop=True))
    assert list(results[results["method"] == "lora"]["lr"]) == [1e-3]  # the other lora tuning run finished
    assert "**2 runs are missing**" in (out / "summary.md").read_text()
    assert [run.split()[0] for run in failure.value.failed] == ["lora_f0.5_lr0.01_s0", "lora_f0.5_s1"]

    blocker.unlink()  # the cause fixed: the same grid again trains only the runs that did not finish
    kept = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}
    assert len(kept) == 4
    sweep.run_compare(base, output=out, progress=False, executor=any_executor, **GRID)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    _same_results(out, sequential)


def test_an_interrupted_grid_keeps_its_finished_runs_and_resumes(cluster, base, sequential, tmp_path,
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
    # finished runs: a run killed between its first save and its optional steps lists them as pending, and is
    # retrained
    kept = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")
            if PENDING not in json.loads(p.read_text())}
    assert 1 <= len(kept) < 6
    sweep.run_compare(base, output=out, progress=False, executor=RayExecutor(cpus_per_run=1), **GRID)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished runs were reused, not retrained
    _same_results(out, sequential)


def test_an_output_a_worker_cannot_write_is_a_clear_error(cluster, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(HoraError, match=r"cannot be written from Ray node .*shared storage"):
        RayExecutor().prepare(tmp_path / "file" / "out")
    # 2 CPUs in the cluster, but a run needs its CPUs on one node
    with pytest.raises(HoraError, match=r"--cpus-per-run 2: no Ray node has that many CPUs \(largest: 1\)"):
        RayExecutor(cpus_per_run=2).prepare(tmp_path)
    with pytest.raises(HoraError, match=r"--gpus-per-run 1: no Ray node has that many GPUs \(largest: 0\)"):
        RayExecutor(gpus_per_run=1).prepare(tmp_path)


def test_the_cli_joins_a_running_cluster_by_its_address(cluster, base, sequential, tmp_path):
    """A second driver runs the grid on the cluster this module started: ``hora compare --ray`` with the address
    in RAY_ADDRESS, as ``ray job submit`` gives it (``--ray-address`` on the command line: the Slurm test)."""
    out = tmp_path / "cluster"
    done = run_hora(compare_command(base, out, "--ray", "--cpus-per-run", "1"), env={"RAY_ADDRESS": cluster.address})
    assert done.returncode == 0, done.stderr[-3000:]
    _same_results(out, sequential)
    assert len(ray_nodes_of(out)) == 2


def test_an_address_where_no_cluster_runs_is_a_quick_clear_error(cluster, base, tmp_path):
    port = free_port()
    check_reachable(cluster.address)  # a running cluster passes
    with pytest.raises(HoraError, match=rf"^--ray-address 127.0.0.1:{port}: no Ray cluster answers there .*"
                                        rf"`ray start --head --port {port}` on 127.0.0.1"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(HoraError, match="expected HOST:PORT"):
        check_reachable("head-node")
    t0 = time.perf_counter()
    done = run_hora(compare_command(base, tmp_path / "out", "--ray-address", f"127.0.0.1:{port}"), timeout=120)
    assert done.returncode == 2 and time.perf_counter() - t0 < 60  # Ray alone retries for minutes
    assert f"hora: error: --ray-address 127.0.0.1:{port}: no Ray cluster answers there" in done.stderr


def test_a_refused_connection_names_token_authentication(monkeypatch):
    """Ray reports a head that refuses this command's token (or its lack of one) as a failed connection after
    about 20 s; the error says what to set (seen with Ray 2.60: a head that finds ~/.ray/auth_token turns
    authentication on, its clients stay off unless RAY_AUTH_MODE=token)."""
    executor = RayExecutor(address="127.0.0.1:6379")

    def refused(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6379")

    monkeypatch.setattr(ray_executor, "check_reachable", lambda *args: None)
    monkeypatch.setattr(executor.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(executor.ray, "init", refused)
    with pytest.raises(HoraError, match=r"^--ray-address 127.0.0.1:6379: Failed to connect .*; if the cluster uses "
                                        r"Ray's token authentication, set RAY_AUTH_MODE=token"):
        executor._connect()


def test_ray_alone_starts_its_own_instance_where_a_stopped_cluster_left_its_address(tmp_path):
    """``ray start`` writes its address to TMPDIR/ray/ray_current_cluster and a killed cluster leaves it there;
    ``--ray`` (no address) starts a local instance instead of retrying that dead address for minutes."""
    tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # a short path: Ray's sockets live under it
    (tmp / "ray").mkdir()
    (tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
    log = tmp_path / "ray.log"
    code = ("from pathlib import Path\nfrom hora.experiments.grid.ray_executor import RayExecutor\n"
            f"with RayExecutor() as e:\n    e._connect(Path({str(log)!r}))\nprint(e.slots)")
    try:
        done = run_hora([sys.executable, "-c", code], env={"TMPDIR": str(tmp)}, timeout=120)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) >= 1
    assert "WARNING" not in done.stderr, done.stderr  # Ray's start-up notices went to the log file
    assert log.is_file()


def test_rays_log_records_go_to_the_file_while_it_starts_and_its_handlers_come_back(tmp_path, capsys):
    import logging

    logger = logging.getLogger("ray")
    before = logger.handlers[:], logger.propagate
    with ray_executor.ray_log_into(tmp_path / "ray.log"):
        logging.getLogger("ray._private.authentication").warning("Token authentication is enabled")
    assert (logger.handlers, logger.propagate) == before
    assert "Token authentication is enabled" in (tmp_path / "ray.log").read_text()
    assert "Token authentication" not in capsys.readouterr().err


def visible_gpus_of(executor: RayExecutor, node_id: str) -> str | None:
    """CUDA_VISIBLE_DEVICES in a task started with ``executor``'s options for a run, on Ray node ``node_id``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
    on_node = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return ray.get(task.options(**executor.task_options("probe"), scheduling_strategy=on_node).remote())


@pytest.mark.skipif(torch.cuda.is_available(), reason="the runs would train on the real GPUs")
def test_runs_given_gpus_get_one_each_and_fail_clearly_where_torch_sees_none(cluster, base, tmp_path):
    """A node that declares 2 GPUs (as a GPU node does; this torch sees none): the default of ``--gpus-per-run`` is
    then 1, which fits 2 runs at once, Ray gives each its own GPU, and a run that torch cannot put on its GPU fails
    instead of training on the CPU; with ``--gpus-per-run 0`` a run sees no GPU."""
    node = cluster.add_node(num_cpus=4, num_gpus=2, object_store_memory=STORE)
    cluster.wait_for_nodes()
    try:
        shared = RayExecutor(cpus_per_run=1, gpus_per_run=0.5)
        shared.prepare(tmp_path)
        assert shared.slots == 4  # 2 GPUs / 0.5 (6 CPUs would fit 6)
        executor = RayExecutor(cpus_per_run=1)  # a cluster with GPUs: one per run by default
        executor.prepare(tmp_path)
        assert executor.gpus_per_run == 1 and executor.slots == 2
        cpus_only = RayExecutor(cpus_per_run=1, gpus_per_run=0)
        cpus_only.prepare(tmp_path)
        assert visible_gpus_of(cpus_only, node.node_id) == ""  # on the GPU node, a run given no GPU sees none
        with pytest.raises(RunsFailed, match=r"Ray gave this run a GPU .* sees no CUDA device"):
            sweep.run_compare(base, output=tmp_path / "gpu", progress=False, executor=executor, **GRID)
    finally:
        cluster.remove_node(node)
    first_lines = [log.read_text().splitlines()[0] for log in (tmp_path / "gpu" / "logs").glob("*.log")]
    assert len(first_lines) == 4  # the tuning runs; no final seed is run after a failed tuning stage
    assert {re.search(r"GPU (\d)", line).group(1) for line in first_lines} <= {"0", "1"}
    assert all(f"Ray node {node.node_id[:12]}" in line for line in first_lines)  # only that node has GPUs


def test_the_slurm_script_starts_a_cluster_over_the_allocation_and_runs_the_grid(base, sequential, tmp_path):
    """deploy/slurm-ray.sbatch on a two-node allocation, with stand-ins for Slurm's srun (run the step here),
    scontrol (the allocation's two host names) and hostname (the head's address, 127.0.0.1): a Ray head and a
    second node start (with the job's own authentication token, whether or not ~/.ray/auth_token exists), the
    grid runs on both and gives the sequential results, and the Ray nodes stop when the job's command ends."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/bash\n[[ "$1 $2 $3" == "show hostnames node[1-2]" ]] && '
                                      'printf "node1\\nnode2\\n"\n')
    (bin_dir / "srun").write_text('#!/bin/bash\nwhile [[ $1 == -* ]]; do [[ $1 == -w ]] && shift; shift; done\n'
                                  'exec "$@"\n')
    (bin_dir / "hostname").write_text('#!/bin/bash\necho 127.0.0.1\n')  # the head node's address
    for shim in bin_dir.iterdir():
        shim.chmod(0o755)
    out = tmp_path / "slurm"
    env = {"PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_CPUS_PER_TASK": "1", "RAY_PORT": str(free_port())}
    cmd = [sys.executable, "-m", "hora", *compare_command(base, out, "--cpus-per-run", "1")[1:]]
    done = run_hora(["bash", str(REPO / "deploy" / "slurm-ray.sbatch"), *cmd], env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "hora: starting Ray on 2 nodes (node1 node2)" in done.stdout
    _same_results(out, sequential)
    assert len(ray_nodes_of(out)) == 2
    with pytest.raises(HoraError, match="no Ray cluster answers there"):  # the script's Ray head is gone
        check_reachable(f"127.0.0.1:{env['RAY_PORT']}")


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
    spec = runs.RunSpec("one", dataclasses.replace(base, output=str(tmp_path / "one")), tmp_path / "one.log")
    SequentialExecutor(cpus_per_run=1).run([spec], load_splits(base.data_source()), lambda name: None, seen.append)
    assert seen[0].metrics["torch_threads"] == 1 and torch.get_num_threads() == before
