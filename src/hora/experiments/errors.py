"""The error class of the experiment harness and CLI.

Anything a user can get wrong (an unknown method, a bad fraction, a missing asset or data file)
raises :class:`HoraError` with a one-line message; ``hora`` prints that line and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HoraError(Exception):
    """A user-facing error: the message is one line that says what to do."""


class AssetMissingError(HoraError):
    """An offline asset (model weights or data) is not installed; the message names the install command."""


class HoraWarning(UserWarning):
    """Something the user should know that does not stop the run (``hora`` prints it as one line)."""


class TruncationWarning(HoraWarning):
    """Texts were cut to ``--max-length`` tokens (a grid of runs shows it once, not once per run)."""


class TrainingInterrupted(Exception):
    """Training was stopped by Ctrl-C (KeyboardInterrupt) at ``step``; ``checkpoint`` is the newest saved
    checkpoint (None when none was saved), ``save_every`` the checkpoint interval (None: saving was off)."""

    def __init__(self, step: int, checkpoint, save_every: int | None, output):
        super().__init__(f"training interrupted at step {step}")
        self.step, self.checkpoint, self.save_every, self.output = step, checkpoint, save_every, output


class GridInterrupted(Exception):
    """A grid run on Ray was stopped by Ctrl-C: its ``cancelled`` unfinished runs were cancelled; the finished
    runs are kept, so the same command resumes the grid."""

    def __init__(self, cancelled: int):
        super().__init__(f"grid interrupted; {cancelled} unfinished runs cancelled")
        self.cancelled = cancelled


class RunsFailed(HoraError):
    """Some runs of a grid failed (each with its log) and the others finished; the report holds the others.
    ``failed``: one "name (error; log: path)" per run that failed or was not run; ``results``: the grid's
    results table of the runs that finished (None when none did)."""

    def __init__(self, message: str, failed: list[str] | None = None, results=None):
        super().__init__(message)
        self.failed, self.results = list(failed or []), results


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """"did you mean 'hora'? " for the (at most two) choices closest to a misspelt ``name`` (difflib's
    ``get_close_matches``, similarity ratio >= 0.6), else ""."""
    close = difflib.get_close_matches(name, list(choices), n=2)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
