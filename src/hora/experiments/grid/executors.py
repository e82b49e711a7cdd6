"""Who runs a grid's training runs. The grid's protocol (:func:`hora.experiments.grid.sweep.run_compare`: which runs,
the tuning stage, the choice on validation, the reuse of finished runs) is the same whatever runs them; an
executor only runs one batch of :class:`~hora.experiments.grid.runs.RunSpec` and reports each run as it ends.

    SequentialExecutor  one run after another in this process, the data loaded once and shared (the default)
    RayExecutor         each run a Ray task (``--ray``, :mod:`hora.experiments.grid.ray_executor`): a local Ray
                        instance that uses every core and GPU, or a running cluster joined by ``--ray-address``.
                        Each task reserves ``--cpus-per-run`` CPUs (its torch threads) and ``--gpus-per-run``
                        GPUs (default: 1 where the cluster has GPUs, else 0), so Ray runs as many at once as fit;
                        a run given no GPU sees none. A run's output goes to its log, ``OUTPUT/logs/<run>.log``;
                        Ctrl-C kills the runs not finished.

On both, a run that fails is reported as failed with its traceback in ``OUTPUT/logs/<run>.log`` and the others
go on (the grid then ends with :class:`~hora.experiments.errors.RunsFailed` naming the failed runs); Ctrl-C
stops the grid.

Ray is an optional extra (``pip install 'hora[ray]'``), imported only when ``--ray`` is asked for.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hora.experiments.data.tasks import Splits
from hora.experiments.errors import HoraError, TrainingInterrupted, TruncationWarning
from hora.experiments.grid.ray_executor import RAY_EXTRA, RayExecutor
from hora.experiments.grid.runs import Finished, RunResult, RunSpec, Started, failed_run, torch_threads
from hora.experiments.training.train import train


@dataclass(frozen=True)
class ExecutionSettings:
    """How a grid's runs are executed (``hora compare`` / ``hora study`` options; not a run setting: the runs'
    results do not depend on it beyond the torch threads of ``cpus_per_run``)."""

    ray: bool = field(default=False, metadata={"help": "Run the grid's runs as Ray tasks, as many at once as the "
                                               "CPUs (or GPUs) allow; needs " + RAY_EXTRA + "."})
    ray_address: str | None = field(default=None, metadata={
        "help": "Address of a running Ray cluster to run on (e.g. 10.0.0.1:6379, or auto); implies --ray. "
                "Default: a local Ray instance using every core. --output must be on storage every node shares."})
    cpus_per_run: int | None = field(default=None, metadata={
        "help": "CPUs (= torch threads) per run. Default: torch's default without --ray, 1 with --ray."})
    gpus_per_run: float | None = field(default=None, metadata={
        "help": "GPUs per run with --ray (a fraction shares a GPU, e.g. 0.5; 0: train on CPUs, the runs see no "
                "GPU). Default: 1 where the Ray cluster has GPUs, else 0."})

    def __post_init__(self) -> None:
        if self.cpus_per_run is not None and self.cpus_per_run < 1:
            raise HoraError(f"--cpus-per-run must be at least 1, got {self.cpus_per_run}")
        if self.gpus_per_run is not None:
            if self.gpus_per_run < 0:
                raise HoraError(f"--gpus-per-run must be at least 0, got {self.gpus_per_run:g}")
            if not self.uses_ray:
                raise HoraError("--gpus-per-run needs --ray (without it, runs use the device transformers picks)")

    @property
    def uses_ray(self) -> bool:
        return self.ray or self.ray_address is not None


class SequentialExecutor:
    """One run after another in this process. A run that fails is reported with its traceback in its log and
    the next one starts; Ctrl-C (:class:`TrainingInterrupted`) stops the grid."""

    slots = 1

    def __init__(self, cpus_per_run: int | None = None):
        self.cpus_per_run = cpus_per_run
        self._warned_for: Splits | None = None  # the splits whose truncation warning was shown

    def prepare(self, output: Path) -> None:
        """Nothing to do: this process checked ``output`` already."""

    def run(self, specs: list[RunSpec], splits: Splits, started: Started, finished: Finished) -> None:
        for spec in specs:
            started(spec.name)
            t0 = time.perf_counter()
            with warnings.catch_warnings(), torch_threads(self.cpus_per_run):
                if splits is self._warned_for:  # the same data: its truncation warning was shown by the first run
                    warnings.simplefilter("ignore", TruncationWarning)
                try:
                    result = RunResult(spec, train(spec.cfg, splits=splits), time.perf_counter() - t0)
                except TrainingInterrupted:
                    raise
                except Exception as exc:  # reported with its log; the grid's other runs go on
                    result = failed_run(spec, exc, time.perf_counter() - t0)
            self._warned_for = splits
            finished(result)


@contextlib.contextmanager
def open_executor(settings: ExecutionSettings) -> Iterator[SequentialExecutor | RayExecutor]:
    """The executor ``settings`` ask for, released (Ray shut down if it was started here) on exit."""
    if not settings.uses_ray:
        yield SequentialExecutor(settings.cpus_per_run)
        return
    with RayExecutor(settings.ray_address, settings.cpus_per_run, settings.gpus_per_run) as executor:
        yield executor
