"""Split list files (VTAB-1k's layout as NOAH writes it) read as ``datasets`` splits with lazy images."""

from __future__ import annotations

import pytest
from benchmark_fixtures import VTAB_SPLITS, write_vtab

from hora.experiments.data import filelist
from hora.experiments.errors import HoraError


def test_a_vtab_task_folder_reads_as_splits_with_one_class_list(tmp_path):
    folder = write_vtab(tmp_path, tasks=("cifar",), classes=3) / "cifar"
    assert filelist.is_filelist_folder(folder, "train800") and not filelist.is_filelist_folder(folder, "train")
    splits = filelist.read_filelist_folder(folder)
    assert set(splits) == {"train800", "val200", "test", "train800val200"}
    assert {name: len(ds) for name, ds in splits.items() if name != "train800val200"} == VTAB_SPLITS
    train = splits["train800"]
    assert train.features["label"].names == ["0", "1", "2"]
    assert train[4]["label"] == 1 and train[4]["image"].size == (32, 32)  # decoded on access, a PIL image
    assert train.features == splits["test"].features


def test_malformed_lists_and_missing_images_are_named(tmp_path):
    folder = write_vtab(tmp_path, tasks=("dtd",)) / "dtd"
    (folder / "val200.txt").write_text("images/val200/000000.jpg one\n")
    with pytest.raises(HoraError, match=r"val200.txt:1: expected '<image path> <integer label>'"):
        filelist.read_filelist_folder(folder)
    (folder / "val200.txt").write_text("images/val200/999999.jpg 0\n")
    with pytest.raises(HoraError, match="lists 1 image"):
        filelist.read_filelist_folder(folder)
