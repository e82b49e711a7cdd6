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


def test_write_json_atomic(tmp_path):
    io.atomic_write_json(tmp_path / "x" / "m.json", {"a": 1})
    assert json.loads((tmp_path / "x" / "m.json").read_text()) == {"a": 1}
    with pytest.raises(TypeError):
        io.atomic_write_json(tmp_path / "x" / "m.json", {"a": object()})
    assert json.loads((tmp_path / "x" / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["m.json"]


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


def test_atomic_dir_replaces_or_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "adapter"
    io.atomic_dir(target, lambda d: (d / "weights.bin").write_text("one"))
    io.atomic_dir(target, lambda d: (d / "weights.bin").write_text("two"))
    assert (target / "weights.bin").read_text() == "two"

    def half_written(folder):
        (folder / "weights.bin").write_text("thr")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_dir(target, half_written)
    assert (target / "weights.bin").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one after it."""
    import os

    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                        (0o002, 0o664, 0o775)])
def test_written_files_get_the_mode_a_plain_write_gives(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    assert io.current_umask() == mask
    io.atomic_write_json(tmp_path / "metrics.json", {"x": 1})
    io.atomic_save_safetensors(tmp_path / "w.safetensors", {"t": torch.zeros(2)})
    io.atomic_dir(tmp_path / "adapter", lambda d: (d / "a.json").write_text("{}") and (d / "a.json").chmod(0o600))
    io.atomic_save_files(tmp_path / "run", lambda d: (d / "sub").mkdir() or (d / "sub" / "b.json").write_text("{}"))
    for path in (tmp_path / "metrics.json", tmp_path / "w.safetensors", tmp_path / "adapter" / "a.json",
                 tmp_path / "run" / "sub" / "b.json"):
        assert path.stat().st_mode & 0o777 == file_mode, path
    for path in (tmp_path / "adapter", tmp_path / "run", tmp_path / "run" / "sub"):
        assert path.stat().st_mode & 0o777 == dir_mode, path


def test_atomic_save_files_keeps_other_files_and_leaves_no_temporary(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    io.atomic_save_files(tmp_path, lambda d: (d / "adapter_config.json").write_text("{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "checkpoints"]


def test_atomic_dir_without_replace_builds_once_and_leaves_nothing_on_failure(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "file.txt").write_text("ok")

    target = io.atomic_dir(tmp_path / "thing", build, replace=False)
    assert (target / "file.txt").read_text() == "ok"
    io.atomic_dir(tmp_path / "thing", build, replace=False)
    assert len(calls) == 1

    def broken(tmp):
        (tmp / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.atomic_dir(tmp_path / "broken", broken, replace=False)
    assert not (tmp_path / "broken").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]
