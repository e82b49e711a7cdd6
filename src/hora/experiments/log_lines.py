"""Training progress as plain lines, for output that is not a terminal (a log file, CI, ``| tee``), where a
tqdm bar's ``\\r`` redraws would fill the file: :class:`LogLines`, one line per logging interval."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from transformers import TrainerCallback

from hora.experiments.grid_progress import format_seconds


class LogLines(TrainerCallback):
    """One line per logging interval (``logging_steps``) on ``stream`` (default stderr), from the main process:
    ``hora: step 30/300  loss 0.6512  lr 0.000933  (12 s, ETA 1 min 48 s)``; the ETA is the mean time per step
    taken in this process (a resumed run's earlier steps aside) times the steps left."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.started, self.first_step = time.perf_counter(), 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.first_step = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(state.global_step - self.first_step, 1) * max(state.max_steps - state.global_step, 0)
        line = f"hora: step {state.global_step}/{state.max_steps}  loss {float(logs['loss']):.4f}"
        if "learning_rate" in logs:
            line += f"  lr {float(logs['learning_rate']):.3g}"
        print(f"{line}  ({format_seconds(elapsed)}, ETA {format_seconds(eta)})", file=self.stream or sys.stderr,
              flush=True)
