"""Progress over a grid of runs (``hora compare`` / ``hora study``): one overall bar with an ETA on a
terminal, one line per finished run otherwise (a log file, CI, ``| tee``), nothing when switched off.

The ETA is the mean wall time of the runs trained so far times the runs left, divided by the number of runs
that train at once (``slots``: 1 in one process, more on Ray); runs resumed or copied from an earlier
comparison take no time and do not enter the mean. A run that failed (or was skipped) is counted as done,
with its reason.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from hora.experiments.scoring import score_text


def format_seconds(seconds: float) -> str:
    """'42 s', '7 min 05 s', '2 h 03 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class GridProgress:
    """Progress of ``total`` runs. Use as a context manager; call :meth:`start` before a run and
    :meth:`finish` after it (or give :meth:`finish` the run's own ``seconds``, e.g. measured by a Ray worker),
    :meth:`fail` for a run that failed or was skipped.

    ``mode``: "bar" (rich, for a terminal), "lines" (plain text), "off"; None picks "bar" when ``stream``
    is a terminal and "lines" otherwise.
    """

    def __init__(self, total: int, title: str = "compare", enabled: bool = True, mode: str | None = None,
                 stream: TextIO | None = None, slots: int = 1):
        self.total, self.title, self.done, self.slots = total, title, 0, max(1, slots)
        self.stream = stream or sys.stdout
        if not enabled:
            mode = "off"
        elif mode is None:
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode = mode
        self.trained_seconds: list[float] = []
        self._started: dict[str, float] = {}
        self._bar = None
        self._job = None

    # ---------------------------------------------------------------- timing
    def eta_seconds(self) -> float | None:
        """Seconds left, from the mean time of the runs trained so far; None before the first one."""
        if not self.trained_seconds:
            return None
        mean = sum(self.trained_seconds) / len(self.trained_seconds)
        return mean * (self.total - self.done) / self.slots

    def _eta_text(self) -> str:
        eta = self.eta_seconds()
        return "ETA --" if eta is None else f"ETA {format_seconds(eta)}"

    # ---------------------------------------------------------------- context
    def __enter__(self) -> GridProgress:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                                 console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
            self._job = self._bar.add_task(self.title, total=self.total, eta="ETA --")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    # ---------------------------------------------------------------- runs
    def start(self, name: str) -> None:
        """A run begins."""
        self._started[name] = time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._job, description=f"{self.title}: {name}")

    def finish(self, name: str, how: str, metrics: dict | None = None, seconds: float | None = None) -> None:
        """A run ended; ``how`` is "trained", "done before" (finished in OUTPUT by an earlier
        call) or "copied" (from another comparison); ``metrics`` its metrics.json (its scores are shown under
        their metric's name and unit, a run that predicted one class flagged); ``seconds`` (default: since
        :meth:`start`) its wall time."""
        began = self._started.pop(name, None)
        if seconds is None:
            seconds = time.perf_counter() - began
        if how == "trained":
            self.trained_seconds.append(seconds)
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._job, advance=1, eta=self._eta_text())
        elif self.mode == "lines":
            scores = ""
            if metrics and metrics.get("accuracy") is not None:
                metric = metrics.get("metric")
                scores = (f": {score_text.labelled(metrics['accuracy'], metric)}, "
                          f"{score_text.labelled(metrics.get('val_accuracy'), metric, 'val')}")
                if score_text.predicts_one_class(metrics.get("predicted_classes")):
                    scores += f" ({score_text.ONE_CLASS})"
            took = f", {format_seconds(seconds)}" if how == "trained" else ""
            print(f"[{self.done}/{self.total}] {name}{scores} ({how}{took}); {self._eta_text()}",
                  file=self.stream, flush=True)

    def fail(self, name: str, why: str) -> None:
        """A run failed or was not run; ``why`` says so (e.g. "failed: ValueError: ...; log: PATH")."""
        self._started.pop(name, None)
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._job, advance=1, eta=self._eta_text())
            self._bar.console.print(f"{name}: {why}")
        elif self.mode == "lines":
            print(f"[{self.done}/{self.total}] {name}: {why}; {self._eta_text()}", file=self.stream, flush=True)
