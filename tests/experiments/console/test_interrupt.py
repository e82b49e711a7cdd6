"""What ``hora train`` prints when stopped with Ctrl-C (hora.experiments.console.interrupt), on the real parsed
command line of ``hora train``. The end-to-end Ctrl-C run is in tests/cli/test_commands.py."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from hora.cli import app
from hora.experiments.console.interrupt import given_options, interrupted_message, resume_command
from hora.experiments.errors import TrainingInterrupted


def _train_context(*args: str):
    """The click context of ``hora train ARGS``, as the command sees it."""
    return typer.main.get_command(app).commands["train"].make_context("train", list(args))


def test_given_options_are_the_ones_typed_less_overwrite_and_resume():
    ctx = _train_context("--steps", "4", "--output", "/tmp/my runs/r", "--no-progress", "--save-every", "2",
                         "--overwrite")
    given = given_options(ctx)
    assert given == ["--steps", "4", "--output", "/tmp/my runs/r", "--no-progress", "--save-every", "2"]
    assert given_options(_train_context()) == []  # every option at its default
    # a flag typed as its default is still the user's: it is repeated
    assert given_options(_train_context("--progress", "--resume")) == ["--progress"]


def test_resume_command_is_one_shell_line_that_parses_back():
    ctx = _train_context("--lr", "0.01", "--output", "/tmp/my runs/r", "--save-every", "2", "--resume")
    command = resume_command(ctx)
    assert command == "hora train --lr 0.01 --output '/tmp/my runs/r' --save-every 2 --resume"
    assert shlex.split(command) == ["hora", "train", *given_options(ctx), "--resume"]


def test_interrupted_message_says_what_was_saved():
    ctx = _train_context("--steps", "10", "--save-every", "2", "--output", "run")
    saved = interrupted_message(TrainingInterrupted(5, Path("run/checkpoints/checkpoint-4"), 2, Path("run")), ctx)
    lines = saved.splitlines()
    assert lines[0] == ("hora: interrupted at step 5; saved: checkpoint run/checkpoints/checkpoint-4 "
                        "(no final adapter or metrics.json yet)")
    assert lines[1:] == ["resume with:", "  " + resume_command(ctx)]

    early = interrupted_message(TrainingInterrupted(1, None, 2, Path("run")), ctx)
    assert early == ("hora: interrupted at step 1, before the first checkpoint (every 2 steps): nothing was saved; "
                     "rerun the same command to start again")
    unsaved = interrupted_message(TrainingInterrupted(3, None, None, Path("run")), _train_context("--steps", "10"))
    assert "nothing was saved (--save-every was off" in unsaved and "rerun with --save-every N" in unsaved
    assert "--resume" not in early + unsaved
