"""One run of a grid, wherever it runs: what to run (:class:`RunSpec`), how it ended (:class:`RunResult`), what
an executor does with a batch of them (:class:`Executor`), and the pieces every executor shares (torch threads, a
failure in one line, a failed run's log)."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hora.experiments.data.tasks import Splits
from hora.experiments.training.train_config import TrainConfig


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: its name, its config (``cfg.output`` is the run's folder) and, for a run executed
    outside this process, the file that receives its output."""

    name: str
    cfg: TrainConfig
    log: Path


@dataclass
class RunResult:
    """How a run ended: ``metrics`` (as :func:`~hora.experiments.training.train.train` returns them), or None and the
    ``error`` that stopped it; ``seconds`` of wall time; the HoraWarnings it raised, as (category, message)."""

    spec: RunSpec
    metrics: dict | None
    seconds: float
    error: str | None = None
    warnings: list[tuple[type[Warning], str]] = field(default_factory=list)


Started = Callable[[str], None]
Finished = Callable[[RunResult], None]


class Executor(Protocol):
    """Runs batches of runs; ``slots`` is how many run at once (for the ETA)."""

    slots: int

    def prepare(self, output: Path) -> None:
        """Be ready to run runs that write under ``output`` (checked writable by whatever runs them)."""

    def run(self, specs: list[RunSpec], splits: Splits, started: Started, finished: Finished) -> None:
        """Run every spec on ``splits`` (the data, read once); call ``started(name)`` as a run begins (where
        known) and ``finished`` as it ends, in the order they end."""


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside the block (unchanged when None)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def error_line(exc: BaseException) -> str:
    """A failed run's error in one line: its type and the first line of its message (the log has the rest)."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def failed_run(spec: RunSpec, exc: Exception, seconds: float) -> RunResult:
    """The RunResult of a run of this process that raised ``exc``, its traceback written to ``spec.log``."""
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    spec.log.write_text(f"hora: run {spec.name} failed\n" + "".join(traceback.format_exception(exc)),
                        encoding="utf-8")
    return RunResult(spec, None, seconds, error_line(exc))
