"""``hora report --peft-results``: our runs among PEFT's published MetaMathQA result files, ours marked, the hardware
named."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from benchmark_fixtures import write_peft_result
from typer.testing import CliRunner

from hora.cli.commands import app
from hora.experiments.errors import HoraError
from hora.experiments.grid import sweep
from hora.experiments.reports import peft_report
from hora.experiments.training.train import TrainConfig


@pytest.fixture
def compared(tiny_bert, tiny_csv, tmp_path):
    base = TrainConfig(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                       steps=2, batch_size=8, max_length=16, progress=False)
    sweep.run_compare(base, ["lora"], [0.5], [0, 1], tmp_path / "cmp", progress=False)
    return tmp_path / "cmp" / "results.csv"


def test_our_runs_join_peft_published_table(compared, tmp_path):
    published = tmp_path / "peft-results"
    write_peft_result(published, "lora/llama-3.2-3B-rank32", 0.478)
    write_peft_result(published, "loha/llama-3.2-3B-rank32", 0.393, accelerator="NVIDIA RTX 4090", params=18350080)
    failed = write_peft_result(published, "oft/llama-3.2-3B-rank32", 0.1)
    data = json.loads(failed.read_text())
    data["train_info"]["status"] = "failed"
    failed.write_text(json.dumps(data))

    result = CliRunner().invoke(app, ["report", str(compared), "--output", str(tmp_path / "rep"),
                                      "--peft-results", str(published)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "rep" / "peft_comparison.csv")
    assert list(table["source"]).count("ours") == 2 and list(table["source"]).count("PEFT") == 2  # failed run left out
    assert table["test_accuracy"].is_monotonic_decreasing
    peft = table[table["source"] == "PEFT"].set_index("experiment")
    assert peft.loc["loha/llama-3.2-3B-rank32", "trainable_params"] == 18350080
    assert peft.loc["lora/llama-3.2-3B-rank32", "peak_memory_gib"] == pytest.approx(22292725760 / 2**30)
    ours = table[table["source"] == "ours"]
    assert ours["experiment"].str.startswith("lora/").all() and ours["accelerator"].eq("cpu").all()
    text = (tmp_path / "rep" / "peft_comparison.md").read_text()
    assert "**lora/" in text and "ours: cpu; PEFT's: NVIDIA L40S, NVIDIA RTX 4090" in text
    assert "| lora/llama-3.2-3B-rank32 | PEFT | 0.478 | 942 | 20.8 | 35.0 | 9,175,040 | NVIDIA L40S |" in text
    assert "Our runs among PEFT's published" in result.output


def test_a_folder_without_result_files_is_one_line(compared, tmp_path):
    with pytest.raises(HoraError, match="no result files"):
        peft_report.write_comparison([compared], tmp_path / "empty", tmp_path / "rep")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.json").write_text("{}")
    with pytest.raises(HoraError, match="not one of PEFT's result files"):
        peft_report.write_comparison([compared], tmp_path / "bad", tmp_path / "rep")
