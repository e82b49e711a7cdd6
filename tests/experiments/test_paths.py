"""Path checks before any work: existing files, folders inside files, finished runs, export into itself."""

from __future__ import annotations

import os

import pytest

from hora.experiments import paths
from hora.experiments.errors import HoraError
from hora.experiments.training import checkpoints


def test_checkpoint_folder_name_matches_the_trainer():
    assert paths.CHECKPOINTS == checkpoints.CHECKPOINTS


def test_output_dir_refuses_a_file_and_a_folder_inside_a_file(tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    with pytest.raises(HoraError, match="is an existing file, not a folder"):
        paths.check_output_dir(existing)
    with pytest.raises(HoraError, match="is a file, not a folder"):
        paths.check_output_dir(existing / "run")
    assert paths.check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()  # a check writes nothing
    assert existing.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_output_dir_refuses_a_read_only_place(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(HoraError, match="no permission to write"):
        paths.check_output_dir(locked / "run")


def test_output_file_and_input_checks(tmp_path):
    with pytest.raises(HoraError, match="is a folder; give a file path"):
        paths.check_output_file(tmp_path)
    assert paths.check_output_file(tmp_path / "b.json") == tmp_path / "b.json"
    with pytest.raises(HoraError, match="data file not found"):
        paths.check_input_file(tmp_path / "nope.csv", "data file")
    with pytest.raises(HoraError, match="is a folder; give a file"):
        paths.check_input_file(tmp_path, "data file")
    with pytest.raises(HoraError, match="adapter folder not found"):
        paths.check_input_dir(tmp_path / "nope", "adapter folder")


def test_train_output_holding_a_run_needs_overwrite_or_resume(tmp_path):
    run = tmp_path / "run"
    assert paths.check_train_output(run, overwrite=False, resume=False) == run  # new folder: fine
    run.mkdir()
    assert paths.check_train_output(run, overwrite=False, resume=False) == run  # empty folder: fine
    (run / "metrics.json").write_text("{}")
    with pytest.raises(HoraError, match="already holds a finished run.*--overwrite.*--resume"):
        paths.check_train_output(run, overwrite=False, resume=False)
    assert paths.check_train_output(run, overwrite=True, resume=False) == run
    assert paths.check_train_output(run, overwrite=False, resume=True) == run
    with pytest.raises(HoraError, match="exclude each other"):
        paths.check_train_output(run, overwrite=True, resume=True)
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(HoraError, match="already holds checkpoints.*--resume.*--overwrite"):
        paths.check_train_output(unfinished, overwrite=False, resume=False)


def test_export_refuses_its_own_adapter_folder_and_other_runs(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "metrics.json").write_text("{}")
    for out in (adapter, adapter / "lora", adapter / "." / "lora" / ".."):
        with pytest.raises(HoraError, match="would overwrite the HoRA adapter"):
            paths.check_export_paths(adapter, out)
    link = tmp_path / "link"
    link.symlink_to(adapter)
    with pytest.raises(HoraError, match="would overwrite the HoRA adapter"):
        paths.check_export_paths(adapter, link)
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "metrics.json").write_text("{}")
    with pytest.raises(HoraError, match="holds a training run"):
        paths.check_export_paths(adapter, other)
    hora_only = tmp_path / "hora-adapter"
    hora_only.mkdir()
    (hora_only / "adapter_config.json").write_text('{"peft_type": "HORA"}')
    with pytest.raises(HoraError, match="holds a HORA adapter"):
        paths.check_export_paths(adapter, hora_only)
    earlier_export = tmp_path / "lora"
    earlier_export.mkdir()
    (earlier_export / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    assert paths.check_export_paths(adapter, earlier_export)[1] == earlier_export  # re-export: fine
    with pytest.raises(HoraError, match="adapter folder not found"):
        paths.check_export_paths(tmp_path / "missing", tmp_path / "out")
