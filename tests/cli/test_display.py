"""One-line errors and warnings; anything that is not a user error keeps its traceback."""

from __future__ import annotations

import warnings

import pytest
import typer

from hora.cli.display import REPORT_LABELS, report_rows, user_errors, warnings_as_lines
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
    assert rows == {"HoRA adapter": "1,234", "ratio": "1.235", "flag": "True"}


def test_report_rows_use_user_facing_names_for_every_entry_of_the_parameter_report():
    from peft import get_peft_model
    from transformers import BertConfig, BertForSequenceClassification

    from hora import HoraConfig, parameter_report

    base = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                    intermediate_size=40, vocab_size=64))
    report = parameter_report(get_peft_model(base, HoraConfig(r=4, task_type="SEQ_CLS")))
    rows = dict(report_rows(report))
    assert set(report) <= set(REPORT_LABELS)  # a new entry needs a name here
    assert not {"seeds", "free_factors", "shared_free", "overhead_vs_lora", "lora_equivalent"} & set(rows)
    assert rows["HoRA over LoRA"] == f"{100 * report['overhead_vs_lora']:+.2f} %"
    assert rows["LoRA of equal rank"] == f"{report['lora_equivalent']:,}"
