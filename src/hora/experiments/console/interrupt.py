"""What ``hora`` prints when a command is stopped with Ctrl-C: what was saved and how to continue.

``hora train`` stopped mid-training names its newest checkpoint and the exact command that resumes it
(the options the user gave, plus ``--resume``), or says that nothing was saved because ``--save-every``
was off. The command is rebuilt from the options the command line parser (typer's click) parsed, so it
holds what the user typed. The context is read by duck typing: typer may ship its own copy of click.
"""

from __future__ import annotations

import shlex
from typing import Any

from hora.experiments.errors import TrainingInterrupted

# options that must not be repeated in the resume command (they would replace or conflict with the run)
_DROPPED = {"overwrite", "resume"}


def given_options(ctx: Any) -> list[str]:
    """The options of the running command that the user gave (not left at their default), as argv."""
    argv: list[str] = []
    for param in ctx.command.params:
        if getattr(param, "param_type_name", None) != "option" or param.name in _DROPPED \
                or param.name not in ctx.params:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            names = param.opts if value or not param.secondary_opts else param.secondary_opts
            argv.append(names[0])
        elif value is not None:
            argv += [param.opts[0], str(value)]
    return argv


def resume_command(ctx: Any, program: str = "hora train") -> str:
    """The shell command that resumes the interrupted ``hora train`` run."""
    return shlex.join([*shlex.split(program), *given_options(ctx), "--resume"])


def interrupted_message(exc: TrainingInterrupted, ctx: Any) -> str:
    """The lines printed when ``hora train`` was stopped with Ctrl-C."""
    if exc.checkpoint is not None:
        return (f"hora: interrupted at step {exc.step}; saved: checkpoint {exc.checkpoint} (no final adapter or "
                f"metrics.json yet)\nresume with:\n  {resume_command(ctx)}")
    if exc.save_every:
        return (f"hora: interrupted at step {exc.step}, before the first checkpoint (every {exc.save_every} steps): "
                "nothing was saved; rerun the same command to start again")
    return (f"hora: interrupted at step {exc.step}; nothing was saved (--save-every was off, so the run cannot be "
            "resumed); rerun with --save-every N to make a run resumable")
