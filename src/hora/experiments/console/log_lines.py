"""Training progress as plain lines: one per logging interval, ``hora: step 30/300  loss 0.6512  lr 0.000933
(12 s, ETA 1 min 48 s)``. :class:`LogLines` prints them where output is not a terminal (a log file, CI,
``| tee``), in place of a tqdm bar whose ``\\r`` redraws would fill the file; :class:`BarWithLines` writes them
above the Trainer's bar on a terminal, in place of the raw log dicts."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from transformers import ProgressCallback, TrainerCallback

from hora.experiments.console.grid_progress import format_seconds


class StepTimer:
    """The text of a logged step: the ETA is the mean time per step taken since ``start`` (a resumed run's
    earlier steps aside) times the steps left."""

    def __init__(self):
        self.started, self.first_step = time.perf_counter(), 0

    def start(self, state) -> None:
        self.started, self.first_step = time.perf_counter(), state.global_step

    def line(self, state, logs: dict | None) -> str | None:
        """The line for ``logs`` of the main process's training steps; None for anything else (the end of
        training's summary, evaluation, another process)."""
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return None
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(state.global_step - self.first_step, 1) * max(state.max_steps - state.global_step, 0)
        line = f"hora: step {state.global_step}/{state.max_steps}  loss {float(logs['loss']):.4f}"
        if "learning_rate" in logs:
            line += f"  lr {float(logs['learning_rate']):.3g}"
        return f"{line}  ({format_seconds(elapsed)}, ETA {format_seconds(eta)})"


class LogLines(TrainerCallback):
    """One line per logging interval (``logging_steps``) on ``stream`` (default stderr), and nothing else."""

    def __init__(self, stream: TextIO | None = None):
        self.stream, self.timer = stream, StepTimer()

    def on_train_begin(self, args, state, control, **kwargs):
        self.timer.start(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        line = self.timer.line(state, logs)
        if line is not None:
            print(line, file=self.stream or sys.stderr, flush=True)


class BarWithLines(ProgressCallback):
    """transformers' progress bar (training and prediction), with the same lines as :class:`LogLines` written
    above it instead of the raw log dicts."""

    def __init__(self):
        super().__init__()
        self.timer = StepTimer()

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self.timer.start(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        line = self.timer.line(state, logs)
        if line is not None and self.training_bar is not None:
            self.training_bar.write(line)
