"""One-line errors and warnings; anything that is not a user error keeps its traceback."""

from __future__ import annotations

import warnings

import pytest
import typer

from hora.cli.display import report_rows, train_rows, user_errors, warnings_as_lines
from hora.experiments.errors import HoraError, HoraWarning


def test_a_user_error_is_one_line_and_exit_status_2(capsys, monkeypatch):
    monkeypatch.delenv("HORA_DEBUG", raising=False)
    with pytest.raises(typer.Exit) as stop, user_errors():
        raise HoraError("bad   option\n  --x")
    assert stop.value.exit_code == 2
    assert capsys.readouterr().err == "hora: error: bad option --x\n"


def test_a_bug_is_not_turned_into_a_user_error(monkeypatch):
    monkeypatch.delenv("HORA_DEBUG", raising=False)
    with pytest.raises(KeyError), user_errors():
        raise KeyError("a real bug")


def test_hora_warnings_are_lines_and_the_process_settings_come_back(capsys):
    before = warnings.showwarning
    with warnings_as_lines():
        warnings.warn("tiny   data", HoraWarning, stacklevel=1)
    assert capsys.readouterr().err == "hora: warning: tiny data\n"
    assert warnings.showwarning is before


def test_report_rows_format_numbers_and_skip_nested_entries():
    rows = dict(report_rows({"hora": 1234, "ratio": 1.23456, "flag": True, "per_layer": [1, 2]}))
    assert rows == {"hora": "1,234", "ratio": "1.235", "flag": "True"}


def test_train_rows_show_accuracy_or_for_a_regression_the_correlations(tmp_path):
    common = {"trainable_params": 10, "total_params": 100, "n_train": 5, "n_val": 2, "n_test": 3, "fraction": 1.0,
              "steps": 4, "lr": 1e-3, "train_loss": 0.5, "train_seconds": 1.0, "total_seconds": 2.0}
    rows = dict(train_rows({**common, "accuracy": 0.5, "val_accuracy": 0.25}, tmp_path))
    assert rows["test accuracy"] == "50.00 %  (n=3)" and rows["validation accuracy"] == "25.00 %  (n=2)"
    scores = {"pearson": 0.81234, "spearman": 0.8, "val_pearson": 0.7, "val_spearman": 0.65}
    rows = dict(train_rows({**common, **scores}, tmp_path))
    assert rows["test Pearson / Spearman"] == "0.8123 / 0.8000  (n=3)"
    assert rows["validation Pearson / Spearman"] == "0.7000 / 0.6500  (n=2)" and "test accuracy" not in rows
