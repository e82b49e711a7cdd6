"""Atomic writes: a failure while saving leaves the previous file intact and no temporary behind."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from hora import io


def test_atomic_json_and_safetensors_round_trip(tmp_path):
    io.atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    io.atomic_save_safetensors(tmp_path / "w.safetensors", {"t": torch.arange(3.0)})
    assert torch.equal(load_file(tmp_path / "w.safetensors")["t"], torch.arange(3.0))


def test_failure_during_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    io.atomic_write_json(target, {"version": 1})

    def explode(tmp):
        tmp.write_text('{"version": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io.atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_save_dir_replaces_or_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "adapter"
    io.atomic_save_dir(target, lambda d: (d / "weights.bin").write_text("one"))
    io.atomic_save_dir(target, lambda d: (d / "weights.bin").write_text("two"))
    assert (target / "weights.bin").read_text() == "two"

    def half_written(folder):
        (folder / "weights.bin").write_text("thr")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_save_dir(target, half_written)
    assert (target / "weights.bin").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
