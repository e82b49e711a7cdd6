"""One-line errors and warnings; anything that is not a user error keeps its traceback."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import typer

from hora.cli.display import REPORT_LABELS, report_rows, train_rows, user_errors, warnings_as_lines
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


def test_wall_time_counts_from_the_start_of_the_process():
    import subprocess
    import sys

    code = "import time; time.sleep(1.5); from hora.cli.display import process_seconds; print(process_seconds())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 1.5 <= float(result.stdout) < 60  # the sleep before the call is counted
    rows = dict(train_rows({"accuracy": 0.5, "n_test": 2, "val_accuracy": 0.5, "n_val": 2, "trainable_params": 1,
                            "total_params": 2, "n_train": 3, "fraction": 1.0, "steps": 1, "lr": 1e-3,
                            "train_loss": 0.7, "train_seconds": 10.9}, Path("out"), 48.0))
    assert rows["wall time"] == "48.0 s  (since the process started)"
    assert rows["train time"] == "10.9 s  (the training steps)"


def test_train_rows_name_the_metric_and_its_unit(tmp_path):
    common = {"trainable_params": 10, "total_params": 100, "n_train": 5, "n_val": 2, "n_test": 3, "fraction": 1.0,
              "steps": 4, "lr": 1e-3, "train_loss": 0.5, "train_seconds": 1.0, "total_seconds": 2.0}
    rows = dict(train_rows({**common, "metric": "accuracy", "accuracy": 0.5, "val_accuracy": 0.25}, tmp_path, 1.0))
    assert rows["test accuracy"] == "50.00 %  (n=3)" and rows["validation accuracy"] == "25.00 %  (n=2)"
    rows = dict(train_rows({**common, "metric": "pearson", "accuracy": -0.13291, "val_accuracy": 0.7}, tmp_path, 1.0))
    assert rows["test Pearson correlation"] == "-0.1329  (n=3)"
    assert rows["validation Pearson correlation"] == "0.7000  (n=2)"
    assert not any("accuracy" in key or "%" in value for key, value in rows.items())


def test_train_rows_flag_a_run_that_predicts_one_class_and_count_dropped_rows(tmp_path):
    common = {"trainable_params": 10, "total_params": 100, "n_train": 5, "n_val": 2, "n_test": 3, "fraction": 1.0,
              "steps": 4, "lr": 1e-3, "train_loss": 0.5, "train_seconds": 1.0, "metric": "accuracy",
              "accuracy": 0.5, "val_accuracy": 0.5, "label_names": ["neg", "pos"]}
    rows = dict(train_rows({**common, "predicted_classes": 1, "dropped_rows": {"empty text": 24}}, tmp_path, 1.0))
    assert rows["classes predicted on test"] == "1 of 2  (predicts one class: the comparison says nothing)"
    assert rows["rows dropped (empty text)"] == "24"
    rows = dict(train_rows({**common, "predicted_classes": 2}, tmp_path, 1.0))
    assert rows["classes predicted on test"] == "2 of 2"
