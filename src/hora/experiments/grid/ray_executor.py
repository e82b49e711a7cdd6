"""``--ray``: each run of a grid a Ray task, on a local Ray instance that uses every core and GPU or on a running
cluster joined by ``--ray-address`` (docs/operations.md, "Grids on Ray"). A task reserves ``--cpus-per-run`` CPUs
(its torch threads) and ``--gpus-per-run`` GPUs; its output goes to ``OUTPUT/logs/<run>.log``; Ctrl-C kills the
runs not finished. Ray is an optional extra (``pip install 'hora[ray]'``), imported only when ``--ray`` is asked
for."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hora.experiments.data.tasks import Splits
from hora.experiments.errors import GridInterrupted, HoraError, HoraWarning, TruncationWarning
from hora.experiments.grid.runs import Finished, RunResult, RunSpec, Started, error_line, torch_threads
from hora.experiments.training.train import train

RAY_EXTRA = "pip install 'hora[ray]'"
AUTH_HINT = ("; if the cluster uses Ray's token authentication, set RAY_AUTH_MODE=token and give this command the "
             "cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token): docs/operations.md, 'On a cluster'")


def run_logged(spec: RunSpec, splits: Splits, threads: int, gpus: float = 0.0) -> RunResult:
    """One run inside a Ray task: ``threads`` torch threads, its prints, warnings and (on failure) the
    traceback written to ``spec.log``, which opens with where it runs (host, Ray node, GPUs Ray gave it).
    A run given GPUs (``gpus`` > 0) that torch cannot see fails instead of training on the CPU. Never
    raises: a failure is a RunResult with its error."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    raised: list[tuple[type[Warning], str]] = []
    with open(spec.log, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log), warnings.catch_warnings():

        def show(message, category, filename, lineno, file=None, line=None):
            log.write(warnings.formatwarning(message, category, filename, lineno, line))
            if issubclass(category, HoraWarning):
                raised.append((category, str(message)))

        warnings.simplefilter("default")
        warnings.showwarning = show
        print(f"hora: run {spec.name} on {task_placement()}, {threads} torch threads", flush=True)
        try:
            if gpus:
                require_visible_gpus(gpus)
            with torch_threads(threads):
                metrics = train(spec.cfg, splits=splits)
        except Exception as exc:  # reported to the driver with this log; the grid's other runs go on
            traceback.print_exc(file=log)
            return RunResult(spec, None, time.perf_counter() - t0, error_line(exc), raised)
    return RunResult(spec, metrics, time.perf_counter() - t0, None, raised)


def task_placement() -> str:
    """Where this Ray task runs: ``host (Ray node <id>)``, and the GPUs Ray gave it, if any."""
    import ray

    where = f"{socket.gethostname()} (Ray node {ray.get_runtime_context().get_node_id()[:12]})"
    gpu_ids = ray.get_gpu_ids()
    return f"{where}, GPU {','.join(map(str, gpu_ids))}" if gpu_ids else f"{where}, no GPU"


def require_visible_gpus(gpus: float) -> None:
    """A HoraError when this task was given GPUs but torch sees none (a CPU build of torch on this node, or
    a node whose driver is missing): the run would train on the CPU, far slower than asked."""
    import torch

    if torch.cuda.is_available():
        return
    raise HoraError(f"--gpus-per-run {gpus:g}: Ray gave this run a GPU on {socket.gethostname()}, but torch there "
                    f"sees no CUDA device (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                    "install a CUDA build of torch on every GPU node, or pass --gpus-per-run 0 to train on CPUs")


def import_ray() -> Any:
    """The ``ray`` module, or a HoraError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise HoraError(f"--ray needs Ray, an optional extra: {RAY_EXTRA}") from None
    return ray


RAY_LOG = "ray.log"  # in OUTPUT: what Ray's loggers say while it starts


@contextlib.contextmanager
def ray_log_into(path: Path | None) -> Iterator[None]:
    """Inside: the records of Ray's Python loggers (the ``ray`` logger and its children) are appended to ``path``
    instead of shown; nothing changes when ``path`` is None. Ray's handlers are restored on exit."""
    import logging

    if path is None:
        yield
        return
    logger = logging.getLogger("ray")
    saved = logger.handlers[:], logger.propagate
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.handlers, logger.propagate = [handler], False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved
        handler.close()


def check_reachable(address: str, option: str = "--ray-address", timeout: float = 5.0) -> None:
    """A HoraError, within ``timeout`` seconds, when nothing listens at ``address`` (``HOST:PORT`` or
    ``ray://HOST:PORT``, given by ``option``): Ray itself would retry for minutes before failing. ``auto`` and
    ``local`` are Ray's to resolve."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # an IPv6 address, [::1]:6379
    if not host or not port.isdigit():
        raise HoraError(f"{option} {address}: expected HOST:PORT (e.g. 10.0.0.1:6379), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HoraError(f"{option} {address}: no Ray cluster answers there ({reason}); start one first "
                        f"(`ray start --head --port {port}` on {host}) or check the address (`ray status` on the "
                        "head node prints it)") from None


def probe_output(folder: str, token: str) -> str:
    """On a Ray node: write ``folder/.hora-probe-<token>``; the node's host name. A plain write, deleted by the
    caller, and no mkdir: a node that does not mount the shared ``folder`` fails here instead of making a
    local folder of that name."""
    (Path(folder) / f".hora-probe-{token}").write_text(token, encoding="utf-8")
    return socket.gethostname()


class RayExecutor:
    """Each run a Ray task with ``cpus_per_run`` CPUs (its torch threads) and ``gpus_per_run`` GPUs (None: 1 where
    the cluster has GPUs, else 0; resolved when Ray is joined).

    Uses the Ray instance this process already started, else starts one when first needed (local, every core;
    or joins ``address``) and shuts it down on exit. The data goes to Ray's object store once per batch.
    """

    def __init__(self, address: str | None = None, cpus_per_run: int | None = None,
                 gpus_per_run: float | None = None):
        self.ray = import_ray()
        self.address = address
        self.cpus_per_run = cpus_per_run or 1
        self.gpus_per_run = gpus_per_run
        self.slots = 1
        self._owned = False
        self._warned_for: Splits | None = None  # the splits whose truncation warning was shown

    # ------------------------------------------------------------ life cycle
    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            self.ray.shutdown()
            self._owned = False

    def _connect(self, log: Path | None = None) -> None:
        """Start or join Ray (once); what Ray's loggers say while it starts (e.g. its token-authentication
        notice) goes into ``log`` when given, not into the grid's output."""
        import logging

        if not self.ray.is_initialized():
            option, address = "--ray-address", self.address
            if not address:  # --ray alone: RAY_ADDRESS where set (as `ray job submit` sets it for its command),
                # else a new local instance ("local"), never a cluster that a `ray start` left on this machine
                option, address = "RAY_ADDRESS", os.environ.get("RAY_ADDRESS")
            if address:
                check_reachable(address, option)
            try:
                with ray_log_into(log):
                    self.ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                                  logging_level=logging.WARNING)
            except ConnectionError as exc:  # auto where no cluster runs, or a refused token
                hint = AUTH_HINT if "Failed to connect" in str(exc) else ""
                raise HoraError(f"{option} {address}: {exc}{hint}") from None
            self._owned = True
        total = self.ray.cluster_resources()
        if self.gpus_per_run is None:  # a GPU cluster: one GPU per run
            self.gpus_per_run = 1.0 if total.get("GPU", 0) >= 1 else 0.0
        self._check_fits([n for n in self.ray.nodes() if n.get("Alive")])
        slots = int(total.get("CPU", 0) // self.cpus_per_run)
        if self.gpus_per_run:
            slots = min(slots, int(total.get("GPU", 0) // self.gpus_per_run))
        self.slots = max(1, slots)

    def _check_fits(self, nodes: list[dict]) -> None:
        """Every run must fit on one node, or Ray would wait for it forever."""
        for name, option, need in (("CPU", "--cpus-per-run", self.cpus_per_run),
                                   ("GPU", "--gpus-per-run", self.gpus_per_run)):
            largest = max((n["Resources"].get(name, 0) for n in nodes), default=0)
            if need and need > largest:
                raise HoraError(f"{option} {need:g}: no Ray node has that many {name}s (largest: {largest:g}); "
                                f"lower {option}")

    # ------------------------------------------------------------ runs
    def prepare(self, output: Path) -> None:
        """Start or join Ray, then check that a task on every node can write into ``output`` and that this
        process sees what it wrote (on a cluster: shared storage). Ray's start-up messages go to
        ``output``/ray.log (where ``output`` is a folder already; else the probe says what is wrong with it)."""
        self._connect(output / RAY_LOG if output.is_dir() else None)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = uuid.uuid4().hex
        probe = self.ray.remote(probe_output)
        for node in (n for n in self.ray.nodes() if n.get("Alive")):
            where = node.get("NodeManagerAddress", node["NodeID"])
            task = probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], False))
            try:
                host = self.ray.get(task.remote(str(output), f"{token}-{node['NodeID'][:12]}"))
            except self.ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                raise HoraError(f"--output {output} cannot be written from Ray node {where} "
                                f"({type(cause).__name__}: {cause}); every node must reach --output on shared "
                                "storage (docs/operations.md, 'Grids on Ray')") from None
            written = output / f".hora-probe-{token}-{node['NodeID'][:12]}"
            if not written.is_file():
                raise HoraError(f"--output {output}: a file written there by Ray node {where} ({host}) is not seen "
                                "here: --output must be on storage shared by every node (docs/operations.md, "
                                "'Grids on Ray')")
            written.unlink()

    def run(self, specs: list[RunSpec], splits: Splits, started: Started, finished: Finished) -> None:
        if not specs:
            return
        self._connect()
        ray = self.ray
        task = ray.remote(run_logged)
        data_ref = ray.put(splits)
        by_ref = {task.options(**self.task_options(spec.name)).remote(spec, data_ref, self.cpus_per_run,
                                                                       self.gpus_per_run): spec for spec in specs}
        pending = list(by_ref)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    result = self._result(ref, by_ref[ref])
                    self._show_warnings(result, splits)
                    finished(result)
        except KeyboardInterrupt:
            # queued runs are dropped, running ones killed with their worker process; finished ones are kept.
            # Not force=False: its KeyboardInterrupt can land inside an import (e.g. torch's), and Ray then reuses
            # that worker with half-imported modules ("partially initialized module 'torch' has no attribute
            # 'fx'", seen in CI on the resumed grid)
            for ref in pending:
                ray.cancel(ref, force=True)
            raise GridInterrupted(len(pending)) from None

    def task_options(self, name: str) -> dict:
        """The Ray options of the task of run ``name``: its CPUs and GPUs. A run given no GPU sees none
        (``CUDA_VISIBLE_DEVICES`` empty), or it would train on GPU 0 beside every other such run: Ray no longer
        empties the variable for a task with ``num_gpus=0`` (ray-project/ray#54928; off by default since #62492,
        so in Ray 2.60: ``RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO`` in ``ray/_private/accelerators/accelerator.py``)."""
        options: dict = dict(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, name=name)
        if not self.gpus_per_run:
            options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
        return options

    def _result(self, ref: Any, spec: RunSpec) -> RunResult:
        """The task's RunResult; a worker that died (killed, out of memory) is a failed run."""
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            return RunResult(spec, None, 0.0, error_line(exc))
        return result

    def _show_warnings(self, result: RunResult, splits: Splits) -> None:
        """A run's HoraWarnings, raised again here, as the sequential path shows them: a truncation warning
        once per data."""
        for category, message in result.warnings:
            if issubclass(category, TruncationWarning):
                if splits is self._warned_for:
                    continue
                self._warned_for = splits
            warnings.warn(message, category, stacklevel=2)
