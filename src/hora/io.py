"""Atomic file writes: every file goes to a temporary name in its folder, then is renamed into place,
so a failure half-way never leaves a partial file and never destroys the previous one.

Temporary files and folders are created private (``tempfile`` makes them 0600 / 0700, and so does
safetensors' ``save_file``); before one is renamed into place it is given the mode a plain
``open(path, "w")`` / ``mkdir`` would give under the process's umask (0644 / 0755 under umask 022), so an
exported adapter is readable by a serving process.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux), else set and reset."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    """The permission bits a plain file write gives under the current umask (0o644 under 022)."""
    return 0o666 & ~current_umask()


def plain_dir_mode() -> int:
    """The permission bits a plain ``mkdir`` gives under the current umask (0o755 under 022)."""
    return 0o777 & ~current_umask()


def make_temp_dir(parent: str | Path, prefix: str, suffix: str | None = None) -> Path:
    """A new temporary folder in ``parent`` with a plain folder's mode, ready to be renamed into place."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(folder, plain_dir_mode())
    return folder


def give_plain_modes(folder: str | Path) -> None:
    """Give every file and folder under ``folder`` (itself included) a plain write's mode under the umask.

    For trees written by other libraries before they are renamed into place: safetensors' ``save_file``
    (used by ``save_pretrained``) creates its file 0600 whatever the umask.
    """
    folder = Path(folder)
    os.chmod(folder, plain_dir_mode())
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, plain_dir_mode() if path.is_dir() else plain_file_mode())


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` for a temporary file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary keeps the suffix, so writers that infer a format from it (matplotlib) still work
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, plain_file_mode())  # mkstemp made it 0600; give it a plain write's mode
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars and paths; anything else is a TypeError, as json.dumps raises."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write JSON (indented, sorted keys; numpy scalars and paths converted) atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_save_safetensors(path: str | Path, tensors: dict[str, torch.Tensor],
                            metadata: dict[str, str] | None = None) -> Path:
    """Save tensors (made contiguous, unshared) as safetensors atomically."""
    from safetensors.torch import save_file  # here, so the command line's imports stay light

    prepared = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(prepared, str(tmp), metadata=metadata or {"format": "pt"}))


def _fsync_files(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as stream:
                os.fsync(stream.fileno())


def move_into_place(staged: str | Path, target: str | Path, *, replace: bool = True) -> Path:
    """Make the fully written folder ``staged`` the folder ``target`` by one rename, after its files are
    fsynced and given a plain write's modes.

    An existing ``target`` is swapped out (``replace=True``: kept as a backup until the new folder is in
    place, then deleted) or kept (``replace=False``: ``staged`` is deleted instead, e.g. when another
    process built the same cache folder first). ``staged`` must be on ``target``'s file system.
    """
    staged, target = Path(staged), Path(target)
    _fsync_files(staged)
    give_plain_modes(staged)
    if target.exists() and not replace:
        shutil.rmtree(staged, ignore_errors=True)
        return target
    backup = target.with_name(f".{target.name}.old")
    if backup.exists():
        shutil.rmtree(backup)
    if target.exists():
        os.replace(target, backup)
    try:
        os.replace(staged, target)
    except BaseException:
        if backup.exists() and not target.exists():
            os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    return target


def atomic_dir(target: str | Path, build: Callable[[Path], None], *, replace: bool = True) -> Path:
    """Build the folder ``target`` with ``build(tmp)`` in a temporary sibling folder, then move it into place
    (:func:`move_into_place`), so a failure half-way leaves no partial folder and the previous one intact.

    ``replace=False`` keeps an existing ``target`` and returns it without building (a cache: the first
    complete build wins), e.g. ``atomic_dir(out, model.save_pretrained)`` or ``atomic_dir(cache, fill,
    replace=False)``.
    """
    target = Path(target)
    if target.exists() and not replace:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        build(tmp)
        return move_into_place(tmp, target, replace=replace)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_save_files(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill a temporary folder inside ``folder`` with ``write(tmp_folder)``, then rename each of its files
    into ``folder`` (same relative path), so no file of ``folder`` is ever half-written, while the other
    files of ``folder`` (e.g. checkpoints) stay. E.g. ``atomic_save_files(out, model.save_pretrained)``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(folder, prefix=".save.")
    try:
        write(tmp)
        _fsync_files(tmp)
        give_plain_modes(tmp)
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                target = folder / path.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
