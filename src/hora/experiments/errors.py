"""The error class of the experiment harness and CLI.

Anything a user can get wrong (an unknown method, a bad fraction, a missing asset or data file)
raises :class:`HoraError` with a one-line message; ``hora`` prints that line and exits non-zero.
"""

from __future__ import annotations


class HoraError(Exception):
    """A user-facing error: the message is one line that says what to do."""


class AssetMissingError(HoraError):
    """An offline asset (model weights or data) is not installed; the message names the install command."""


class HoraWarning(UserWarning):
    """Something the user should know that does not stop the run (``hora`` prints it as one line)."""
