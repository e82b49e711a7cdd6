"""One-line errors and warnings; anything that is not a user error keeps its traceback."""

from __future__ import annotations

import warnings

import pytest
import typer

from hora.cli.display import report_rows, user_errors, warnings_as_lines
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
