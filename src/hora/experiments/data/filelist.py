"""Image folders described by split list files (the Caffe file-list layout VTAB-1k is distributed in), read
as ``datasets`` splits.

Layout, as NOAH's ``data/vtab-source/get_vtab1k.py`` writes VTAB-1k (and NOAH, SPT, FacT and Convpass read it)::

    <task>/train800.txt  val200.txt  train800val200.txt  test.txt
    <task>/images/<split>/000000.jpg ...

Each ``<split>.txt`` line is ``<image path relative to the folder> <integer label>``. A folder is such a source
when it holds a ``<split>.txt`` for the train split asked for. Its splits become ``datasets.Dataset``\\ s with an
``image`` column (``datasets.Image``: decoded lazily, on access) and a ``label`` column (``ClassLabel`` named
"0", "1", ... up to the largest label in any list file of the folder, so every split shares one class list
even when a small train split misses a class).
"""

from __future__ import annotations

from pathlib import Path

from hora.experiments.errors import HoraError

IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"


def is_filelist_folder(folder: str | Path, train_split: str) -> bool:
    """Whether ``folder`` is an image folder with a ``<train_split>.txt`` list file."""
    folder = Path(folder).expanduser()
    return folder.is_dir() and (folder / f"{train_split}.txt").is_file()


def read_list(path: Path) -> list[tuple[str, int]]:
    """(relative image path, label) per line of a list file; a one-line error names a malformed line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise HoraError(f"{path}:{number}: expected '<image path> <integer label>', got '{line.strip()}'")
        rows.append((parts[0], int(parts[1])))
    if not rows:
        raise HoraError(f"split list {path} is empty")
    return rows


def read_filelist_folder(folder: str | Path) -> dict:
    """Split name (the list file's stem) -> ``datasets.Dataset`` of every ``*.txt`` list in ``folder``."""
    import datasets

    folder = Path(folder).expanduser()
    lists = {path.stem: read_list(path) for path in sorted(folder.glob("*.txt"))}
    classes = max(label for rows in lists.values() for _, label in rows) + 1
    features = datasets.Features({IMAGE_COLUMN: datasets.Image(),
                                  LABEL_COLUMN: datasets.ClassLabel(names=[str(i) for i in range(classes)])})
    splits = {}
    for name, rows in lists.items():
        paths = [folder / relative for relative, _ in rows]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise HoraError(f"{folder / (name + '.txt')} lists {len(missing)} image(s) that do not exist, "
                            f"e.g. {missing[0]}")
        splits[name] = datasets.Dataset.from_dict(
            {IMAGE_COLUMN: [str(p) for p in paths], LABEL_COLUMN: [label for _, label in rows]}, features=features)
    return splits
