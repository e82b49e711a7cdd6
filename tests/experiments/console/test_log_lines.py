"""Training progress as plain lines (hora.experiments.console.log_lines): one per logging interval, main process."""

from __future__ import annotations

import io

from transformers import TrainerControl, TrainerState, TrainingArguments

from hora.experiments.console.log_lines import BarWithLines, LogLines


def test_one_line_per_log_with_step_loss_lr_and_eta(tmp_path):
    stream = io.StringIO()
    lines, args, control = LogLines(stream), TrainingArguments(output_dir=str(tmp_path)), TrainerControl()
    state = TrainerState(max_steps=300, global_step=0)
    lines.on_train_begin(args, state, control)
    state.global_step = 30
    lines.on_log(args, state, control, logs={"loss": 0.65123, "learning_rate": 0.00093, "grad_norm": 0.2})
    lines.on_log(args, state, control, logs={"train_runtime": 12.0})  # the end-of-training summary: no line
    state.is_world_process_zero = False
    lines.on_log(args, state, control, logs={"loss": 0.5})  # another process of a DDP run: no line
    out = stream.getvalue()
    assert out.count("\n") == 1 and "\r" not in out
    assert out.startswith("hora: step 30/300  loss 0.6512  lr 0.00093  (") and ", ETA " in out


def test_on_a_terminal_the_lines_are_written_above_the_bar_instead_of_the_log_dicts(tmp_path):
    args, control = TrainingArguments(output_dir=str(tmp_path)), TrainerControl()
    state = TrainerState(max_steps=10, global_step=0)
    bar = BarWithLines()
    bar.on_train_begin(args, state, control)
    written = []
    bar.training_bar.write = written.append
    state.global_step = 5
    bar.on_step_end(args, state, control)
    bar.on_log(args, state, control, logs={"loss": 0.5, "learning_rate": 1e-3, "grad_norm": 0.1})
    bar.on_log(args, state, control, logs={"train_runtime": 1.0, "train_loss": 0.5})
    bar.on_train_end(args, state, control)
    assert len(written) == 1 and written[0].startswith("hora: step 5/10  loss 0.5000  lr 0.001  (")
