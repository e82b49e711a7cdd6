"""A quiet run: our own progress and the warnings that ask something of the user, nothing else.

What the libraries say on every run, and the library's own switch that silences it here (all in this module):

- transformers' log: the load report that lists a newly initialised classification head as ``MISSING ...
  Consider training on your downstream task`` (the harness trains that head; a trained adapter brings its own),
  and similar notes: transformers' verbosity, ``error`` unless ``TRANSFORMERS_VERBOSITY`` says otherwise
  (``TRANSFORMERS_VERBOSITY=warning hora train ...`` shows them again).
- ``FutureWarning: `is_gradient_checkpointing` is deprecated``: PEFT's ``get_peft_model`` reads transformers'
  deprecated alias, for LoRA as for HoRA; nothing a user can change. A warnings filter on that message only.
- With bitsandbytes installed, its import looks up a CPU kernel on the Hub and logs ``Failed to load CPU
  gemm_4bit_forward from kernels-community ...`` (and ``kernels`` logs ``Skipping publisher trust check ...
  offline mode``): logging filters on those two messages only (:mod:`hora.kernel_lookup`, installed by ``import
  hora`` already), so its other messages still show.
- ``Token indices sequence length is longer than the specified maximum sequence length for this model``: a
  tokenizer's note when a text is tokenised whole, as the harness does to count the texts ``--max-length`` cuts;
  the harness says so itself, in its own words (:func:`hora.experiments.data.tasks.warn_truncated`). The tokenizer's
  own once-only flag marks the note as given (:func:`no_token_length_note`, on every tokenizer the harness loads).
- Progress bars off a terminal (a log file, CI, ``| tee``): tqdm redraws its bar with ``\\r``, hundreds of times
  per run. There the Trainer's bar gives way to one line per logging interval, and transformers' and
  huggingface_hub's loading bars are switched off (``transformers.utils.logging.disable_progress_bar``). On a
  terminal, and in a notebook (where transformers draws its own widget), the bars stay.

:func:`quiet_libraries` is called when the command line starts (before the libraries are imported, so the
filters are in place when bitsandbytes is imported) and again at the start of every run, once transformers is;
:func:`configure_progress` by every run on its Trainer; :func:`no_progress_bars` and :func:`loading_new_head`
around the loading of a base model.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from hora.kernel_lookup import drop_kernel_lookup_messages

GRADIENT_CHECKPOINTING_ALIAS = r"`is_gradient_checkpointing` is deprecated"


def interactive(stream: TextIO | None = None) -> bool:
    """Whether progress bars can redraw in place: ``stream`` (default stderr, where progress goes) is a terminal,
    or this is a notebook (transformers' check, once it is imported)."""
    stream = stream or sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        return True
    if "transformers" in sys.modules:
        from transformers.utils import is_in_notebook

        return bool(is_in_notebook())
    return False


def transformers_verbosity() -> int:
    """The level for transformers' log: ``TRANSFORMERS_VERBOSITY`` when set to one of its names, else error."""
    names = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
             "critical": logging.CRITICAL}
    return names.get(os.environ.get("TRANSFORMERS_VERBOSITY", "").lower(), logging.ERROR)


def quiet_libraries() -> None:
    """Silence what asks nothing of the user (see the module docstring). Idempotent. Before transformers is
    imported it sets what can be set without importing it (warnings and logging filters); once it is, its
    verbosity and, off a terminal, its progress bars."""
    warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_ALIAS, category=FutureWarning)
    drop_kernel_lookup_messages()
    if "transformers" in sys.modules:  # imported already: its environment switches were read
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(transformers_verbosity())
        if not interactive():
            hf_logging.disable_progress_bar()


TOKEN_LENGTH_NOTE = "sequence-length-is-longer-than-the-specified-maximum"  # the tokenizer's key for its note


def no_token_length_note(tokenizer):
    """``tokenizer`` with its "sequence length is longer than the specified maximum" note marked as given (the
    flag transformers sets after giving it once), so it never prints: the harness reports truncation itself."""
    warnings_given = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warnings_given, dict):
        warnings_given[TOKEN_LENGTH_NOTE] = True
    return tokenizer


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Inside: no transformers / huggingface_hub progress bar (loading a local model takes a second; its bar is
    noise); restored to its state before on exit."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


@contextmanager
def loading_new_head() -> Iterator[None]:
    """Inside: :func:`no_progress_bars`, and transformers logs errors only, as the harness loads a base model and
    adds a new classification head (its load report would list the head as MISSING, "Consider training");
    restored on exit."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with no_progress_bars():
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def configure_progress(trainer, enabled: bool, stream: TextIO | None = None) -> None:
    """The progress a Trainer shows: none when not ``enabled`` (e.g. inside a sweep's own progress); on a
    terminal (``stream``, default stderr) the Trainer's bar with one line per logging interval above it
    (:class:`~hora.experiments.console.log_lines.BarWithLines`); in a notebook transformers' own widget; otherwise the
    lines alone (:class:`~hora.experiments.console.log_lines.LogLines`), without the bar's ``\\r`` redraws. The raw log
    dicts are never printed."""
    from transformers import PrinterCallback, ProgressCallback
    from transformers.utils import is_in_notebook

    from hora.experiments.console.log_lines import BarWithLines, LogLines

    if enabled and is_in_notebook():
        return
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if enabled:
        trainer.add_callback(BarWithLines() if interactive(stream) else LogLines(stream))
