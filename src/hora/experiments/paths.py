"""Checks of the paths a command reads and writes, run before any work starts.

A command that would fail only when it writes its results (``--output`` naming an existing file, a folder
inside a file, a read-only place) or that would silently replace something valuable (a finished run, the
adapter being exported) fails here at once with one line that says what to do. Nothing here imports
torch or writes anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hora.experiments.errors import HoraError

METRICS = "metrics.json"
ADAPTER_CONFIG = "adapter_config.json"
CHECKPOINTS = "checkpoints"  # the same name as hora.experiments.training.checkpoints.CHECKPOINTS (checked in tests)


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_writable_place(path: Path, option: str) -> None:
    """Every existing ancestor of ``path`` is a folder, and the nearest one can be written in."""
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise HoraError(f"{option} {path}: {parent} is a file, not a folder; choose another {option}")
    anchor = _nearest_existing(path)
    if anchor.is_dir() and not os.access(anchor, os.W_OK | os.X_OK):
        raise HoraError(f"{option} {path}: no permission to write in {anchor}; choose another {option}")


def check_output_dir(path: str | Path, option: str = "--output") -> Path:
    """``path`` is a folder, or can be created as one (it is not a file, nor inside a file, nor read-only)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise HoraError(f"{option} {path} is an existing file, not a folder; choose a folder path")
    _check_writable_place(path, option)
    return path


def check_output_file(path: str | Path, option: str = "--output") -> Path:
    """``path`` can be written as a file (it is not a folder, and its folder can be created and written)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise HoraError(f"{option} {path} is a folder; give a file path")
    _check_writable_place(path, option)
    return path


def check_input_file(path: str | Path, what: str) -> Path:
    """``path`` is an existing, readable file."""
    return _check_input(path, what, folder=False)


def check_input_dir(path: str | Path, what: str) -> Path:
    """``path`` is an existing, readable folder."""
    return _check_input(path, what, folder=True)


def _check_input(path: str | Path, what: str, folder: bool) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise HoraError(f"{what} not found: {path}")
    if path.is_dir() != folder:
        found, wanted = ("file", "the folder") if folder else ("folder", "a file")
        raise HoraError(f"{what} {path} is a {found}; give {wanted}")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise HoraError(f"{what} {path}: no permission to read it")
    return path


def holds_run(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished run or an adapter (its metrics.json or adapter_config.json)."""
    folder = Path(folder)
    return (folder / METRICS).is_file() or (folder / ADAPTER_CONFIG).is_file()


def holds_checkpoints(folder: str | Path) -> bool:
    """Whether ``folder/checkpoints`` holds a checkpoint (of a run that can be resumed)."""
    root = Path(folder) / CHECKPOINTS
    return root.is_dir() and any(p.name.startswith("checkpoint-") for p in root.iterdir())


def check_train_output(output: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """``hora train --output``: a folder that does not already hold a run, unless the user said what to do.

    A folder with a finished run (metrics.json / an adapter) or with checkpoints is refused unless
    ``--overwrite`` (replace it) or ``--resume`` (continue it from its checkpoints) is given.
    """
    output = check_output_dir(output)
    if overwrite and resume:
        raise HoraError("--overwrite and --resume exclude each other: --resume continues the run in --output, "
                        "--overwrite replaces it")
    if overwrite or resume:
        return output
    if holds_run(output):
        raise HoraError(f"{output} already holds a finished run ({METRICS} or an adapter): pass --overwrite to "
                        "replace it, --resume to continue it from its checkpoints, or choose another --output")
    if holds_checkpoints(output):
        raise HoraError(f"{output / CHECKPOINTS} already holds checkpoints of an earlier run: continue it with "
                        "--resume, replace it with --overwrite, or choose another --output")
    return output


def _same_or_inside(inner: Path, outer: Path) -> bool:
    inner, outer = inner.resolve(), outer.resolve()
    return inner == outer or outer in inner.parents


def _peft_type(config: Path) -> str | None:
    """The ``peft_type`` recorded in an adapter_config.json; None when there is none; "unknown" if unreadable."""
    if not config.is_file():
        return None
    try:
        return str(json.loads(config.read_text()).get("peft_type", "unknown"))
    except (ValueError, OSError, AttributeError):
        return "unknown"


def check_export_paths(adapter_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """``hora export ADAPTER_DIR OUT_DIR``: the adapter exists, and writing OUT_DIR cannot destroy it or
    another run (OUT_DIR is neither ADAPTER_DIR nor inside it, and holds no training run)."""
    adapter_dir = check_input_dir(adapter_dir, "adapter folder")
    out_dir = check_output_dir(out_dir, "OUT_DIR")
    if _same_or_inside(out_dir, adapter_dir):
        raise HoraError(f"OUT_DIR {out_dir} is the adapter folder {adapter_dir} or inside it: exporting there would "
                        "overwrite the HoRA adapter; choose another OUT_DIR")
    if (out_dir / METRICS).is_file():
        raise HoraError(f"OUT_DIR {out_dir} holds a training run ({METRICS}): exporting there would overwrite its "
                        "adapter; choose another OUT_DIR")
    if _peft_type(out_dir / ADAPTER_CONFIG) not in (None, "LORA"):
        raise HoraError(f"OUT_DIR {out_dir} holds a {_peft_type(out_dir / ADAPTER_CONFIG)} adapter: exporting there "
                        "would overwrite it; choose another OUT_DIR")
    return adapter_dir, out_dir
