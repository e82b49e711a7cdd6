"""What the ``hora`` command line shows: errors and warnings as one line each on stderr, results as tables.

Errors the user can fix are :class:`~hora.experiments.errors.HoraError`, raised where they are detected;
here they become ``hora: error: ...`` and exit status 2 (HORA_DEBUG=1 keeps the traceback). Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from hora.experiments.errors import HoraError, HoraWarning


def version_text() -> str:
    """'hora 0.1.0': the installed distribution's version (importlib.metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"hora {version('hora')}"
    except PackageNotFoundError:
        return "hora (not installed as a package: pip install -e . in the repository)"


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def fail(message: object) -> None:
    typer.echo(f"hora: error: {one_line(message)}", err=True)
    raise typer.Exit(2)


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Inside a command: every HoraWarning printed once per call site as 'hora: warning: ...' on stderr,
    even where an outer context (a test harness recording warnings) has replaced warnings.showwarning; other
    warnings as Python shows them (those that ask nothing of the user are filtered by
    :mod:`hora.experiments.console.quiet`). The process's warning settings are restored on exit."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, HoraWarning):
                typer.echo(f"hora: warning: {one_line(message)}", err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.simplefilter("always", HoraWarning)
        warnings.showwarning = show
        yield


@contextmanager
def user_errors() -> Iterator[None]:
    """Run a command: HoraError -> one line and exit 2, Ctrl-C -> 'hora: interrupted' and exit 130."""
    with warnings_as_lines():
        if os.environ.get("HORA_DEBUG"):
            yield
            return
        try:
            yield
        except KeyboardInterrupt:
            typer.echo("hora: interrupted", err=True)
            raise typer.Exit(130) from None
        except HoraError as exc:
            fail(exc)


def print_table(title: str, rows: list[tuple[str, str]], headers: tuple[str, str] = ("metric", "value")) -> None:
    """A two-column rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column(headers[0])
    table.add_column(headers[1], justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def process_seconds() -> float:
    """Seconds since this process started (psutil's ``create_time``): interpreter start-up and imports included."""
    import time

    import psutil

    return time.time() - psutil.Process().create_time()


def train_rows(m: dict, output: Path, wall_seconds: float) -> list[tuple[str, str]]:
    """The rows of ``hora train``'s result table, from its metrics; ``wall_seconds``: the command's whole time.
    Scores under their metric's name and unit (:mod:`hora.experiments.scoring.score_text`); a run that predicted one
    class on test is flagged, and rows dropped from the data are counted."""
    from hora.experiments.scoring import score_text

    metric = m.get("metric", "accuracy")
    rows = [(f"{split} {score_text.name(metric)}", f"{score_text.text(m[key], metric)}  (n={m[count]})")
            for split, key, count in (("test", "accuracy", "n_test"), ("validation", "val_accuracy", "n_val"))]
    if "predicted_classes" in m:
        classes = f"{m['predicted_classes']} of {len(m.get('label_names') or [])}"
        rows.append(("classes predicted on test", classes + (f"  ({score_text.ONE_CLASS})"
                                                           if score_text.predicts_one_class(m["predicted_classes"])
                                                           else "")))
    for reason, count in (m.get("dropped_rows") or {}).items():
        rows.append((f"rows dropped ({reason})", f"{count:,}"))
    rows.append(("trainable parameters", f"{m['trainable_params']:,} of {m['total_params']:,}"))
    if "lora_equivalent_params" in m:
        rows.append(("LoRA of equal rank", f"{m['lora_equivalent_params']:,} (adapter only)"))
    rows += [
        ("training examples", f"{m['n_train']:,} (fraction {m['fraction']:g})"),
        ("steps / lr", f"{m['steps']} / {m['lr']:g}"),
        ("train loss", f"{m['train_loss']:.4f}  (mean over all steps)"),
        ("train time", f"{m['train_seconds']:.1f} s  (the training steps)"),
        ("wall time", f"{wall_seconds:.1f} s  (since the process started)"),
        ("output", str(output)),
    ]
    return rows


# what ``hora info`` calls the entries of hora.parameter_report (its keys are the library's names)
REPORT_LABELS = {
    "seeds": "per-head seeds (head factors)",
    "free_factors": "free factors (LoRA's A; its B for o)",
    "shared_free": "shared free factor (q, k, v)",
    "generator": "generator (hypernetwork)",
    "hora": "HoRA adapter",
    "lora_equivalent": "LoRA of equal rank",
    "overhead_vs_lora": "HoRA over LoRA",
    "other_trainable": "other trainable (classification head)",
    "trainable": "trainable in all",
    "total": "model in all",
}


def report_rows(report: dict) -> list[tuple[str, str]]:
    """The scalar entries of :func:`hora.parameter_report` under their user-facing names (:data:`REPORT_LABELS`;
    other keys as they are), formatted: counts with thousands separators, the overhead as a percentage; nested
    entries are left out."""

    def text(key: str, value: object) -> str:
        if key == "overhead_vs_lora":
            return f"{100 * float(value):+.2f} %"
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    return [(REPORT_LABELS.get(str(key), str(key)), text(str(key), value)) for key, value in report.items()
            if not isinstance(value, dict | list | tuple)]
