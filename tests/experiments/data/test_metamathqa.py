"""PEFT's MetaMathQA -> GSM8K protocol: its answer rule, its data filter and splits, the preset end to end on a tiny
Llama offline, its dry run, and the runs written as PEFT's result files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from benchmark_fixtures import write_metamathqa, write_peft_result

from hora.experiments.data import metamathqa
from hora.experiments.errors import HoraError
from hora.experiments.grid import presets, study


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


@pytest.mark.parametrize(("generation", "answer"), [
    ("Its magnitude squared is $4^2 = \\boxed{16}$.The answer is: 16", "16"),
    ("He pays 50%.\nThe answer is 50%.", "50"),
    ("first The answer is: 3 then The answer is: 4\nmore text", "4"),  # the last place of the first delimiter
    ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "72"),
    ("no final answer here", None),
])
def test_the_answer_is_read_as_peft_reads_it(generation, answer):
    assert metamathqa.parse_answer(generation) == answer


def test_answers_compare_as_numbers_then_as_text():
    assert metamathqa.is_correct("The answer is: 20/35", "... #### 0.5714285714285714")
    assert metamathqa.is_correct("The answer is: 7.0", "#### 7")
    assert not metamathqa.is_correct("The answer is: 1,000", "#### 1000")  # PEFT's rule: not a number, other text
    assert metamathqa.is_correct("The answer is: x+1", "The answer is: x+1")
    assert metamathqa.accuracy(["The answer is: 3", "nothing", "#### 5"], ["#### 3", "#### 4", "#### 6"]) == 1 / 3
    with pytest.raises(HoraError, match="states no answer"):
        metamathqa.is_correct("The answer is: 3", "three")


def test_the_folder_is_split_as_peft_splits_it(tmp_path):
    root = write_metamathqa(tmp_path)
    splits = metamathqa.read_folder(root)
    assert len(splits["train"]) == 40  # the two records over 1300 characters are left out
    assert set(splits["train"].column_names) == set(splits["test"].column_names) == {"query", "response"}
    gsm_train = pd.read_parquet(root / "gsm8k" / "main" / "train-00000-of-00001.parquet")
    np.random.seed(0)
    order = np.arange(len(gsm_train))
    np.random.shuffle(order)  # PEFT's data.py, with the global RNG
    assert splits["validation"]["query"] == gsm_train["question"].iloc[order[:50]].tolist()
    assert len(splits["test"]) == 12 and splits["test"][0]["response"].split("\n")[-1].startswith("#### ")
    assert metamathqa.prompt("What is 2+2?") == "Question: What is 2+2? Think step by step.\nAnswer:"
    (root / "gsm8k" / "main" / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(HoraError, match="gsm8k/main/test-"):
        metamathqa.read_folder(root)


def test_the_preset_reads_peft_defaults_as_data_and_plans_gpu_hours():
    b = presets.benchmark("metamathqa")
    settings = b.task_settings(b.tasks[0], "DATA")
    assert (settings["steps"], settings["batch_size"], settings["max_length"], settings["lr_scheduler"]) == (
        5000, 4, 768, "cosine")
    assert (settings["r"], settings["alpha"], settings["targets"], settings["weight_decay"]) == (32, 64.0, "q,v", 0.1)
    assert b.model == "meta-llama/Llama-3.2-3B" and 1e-4 in b.lrs and settings["dataset"] == "DATA"
    plan = presets.plan("metamathqa")
    assert plan.runs == 2 * (3 * 1 + 2) and 0.1 < plan.hours < 100
    assert metamathqa.MAX_NEW_TOKENS == 300 and b.tasks[0].new_tokens == 300
    listed = "\n".join(plan.lines())
    assert "GPU-h" in listed and "gsm8k" in listed


def test_the_preset_end_to_end_writes_our_tables_and_peft_result_files(hub_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(metamathqa, "MAX_NEW_TOKENS", 8)  # PEFT's 300 on a random model: minutes of decoding
    root = write_metamathqa(tmp_path, n_gsm_train=20, n_gsm_test=6)
    out = study.run_study("metamathqa", tmp_path / "out", progress=False, root=str(root),
                          overrides={"model": "hora-test/tiny-llama", "steps": 2, "bf16": False},
                          protocol={"methods": ["hora", "lora"], "seeds": [0], "lrs": [1e-3]})
    df = pd.read_csv(tmp_path / "out" / "gsm8k" / "results.csv")
    assert sorted(df["method"]) == ["hora", "lora"] and set(df["metric"]) == {"gsm8k"}
    assert df["score"].between(0, 1).all() and df["val_score"].between(0, 1).all()
    metrics = json.loads((tmp_path / "out" / "gsm8k" / "runs" / df["run_dir"].map(lambda d: d.split("/")[-1])[0]
                          / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"], metrics["max_new_tokens"]) == (40, 20, 6, 8)
    assert "peft_results/" in out.read_text()
    written = sorted((tmp_path / "out" / "gsm8k" / "peft_results").glob("*.json"))
    assert [p.name.split("--")[0] for p in written] == ["hora", "lora"]
    ours = json.loads(written[0].read_text())
    theirs = json.loads(write_peft_result(tmp_path / "peft", "lora/llama-3.2-3B-rank32", 0.478).read_text())
    for section in ("run_info", "train_info", "meta_info"):
        assert set(theirs[section]) <= set(ours[section]), section
    assert set(theirs["train_info"]["metrics"][-1]) <= set(ours["train_info"]["metrics"][-1])
    assert ours["run_info"]["peft_config"]["peft_type"] == "HORA" and ours["train_info"]["file_size"] > 0
    assert ours["train_info"]["metrics"][-1]["test accuracy"] == df.loc[df["method"] == "hora", "score"].iloc[0]
    assert ours["run_info"]["train_config"]["query_template"] == metamathqa.TRAINING_PARAMS["query_template"]
