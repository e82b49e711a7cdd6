"""A run's saved adapter travels (hora.experiments.methods.portable): the base model by a portable name, each
``modules_to_save`` entry once, a model card whose code loads it on another machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hora.experiments import assets
from hora.experiments.errors import AssetMissingError
from hora.experiments.methods import portable
from hora.experiments.training.train_config import TrainConfig

SRC = Path(__file__).resolve().parents[3] / "src"


def test_a_built_in_asset_is_named_by_the_hub_id_it_came_from(tmp_path):
    try:
        minilm = assets.minilm_dir()
    except AssetMissingError:
        pytest.skip("MiniLM not installed (make assets)")
    assert portable.portable_name(minilm) == "sentence-transformers/all-MiniLM-L6-v2"
    smollm2 = assets.smollm2_cache_dir()
    smollm2.mkdir(parents=True)  # the cache (an isolated one in tests) that smollm2_dir() fills
    assert portable.portable_name(smollm2) == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_folder_of_ones_own_is_named_by_its_folder_name(tmp_path):
    folder = tmp_path / "models" / "my-roberta"
    folder.mkdir(parents=True)
    assert portable.portable_name(folder) == "my-roberta"
    assert portable.portable_name(str(folder) + "/") == "my-roberta"
    assert portable.portable_name("FacebookAI/roberta-base") == "FacebookAI/roberta-base"  # a Hub ID as it is


METRICS = {"method": "hora", "base_method": "hora", "r": 8, "alpha": 16.0, "targets": ["a.query", "a.value"],
           "task": "rotten_tomatoes", "kind": "text", "objective": "classify", "label_names": ["fresh", "rotten"],
           "steps": 300, "batch_size": 32, "lr": 0.001, "n_train": 9223, "fraction": 1.0, "seed": 0,
           "accuracy": 0.8123, "n_test": 2562, "val_accuracy": 0.8, "n_val": 1025, "trainable_params": 79106,
           "lora_equivalent_params": 73728}


def test_the_model_card_says_what_the_adapter_is():
    card = portable.model_card(METRICS, "sentence-transformers/all-MiniLM-L6-v2", "runs/demo")
    header = card.split("---")[1]
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in header and "library_name: peft" in header
    assert "pipeline_tag: text-classification" in header and "- hora" in header
    for text in ("hora adapter for sentence-transformers/all-MiniLM-L6-v2 on rotten_tomatoes",
                 "2 classes: fresh, rotten",
                 "r = 8, alpha = 16, 2 attention projections", "| test accuracy | 81.23 % (n = 2562) |",
                 "79,106 (LoRA of equal rank: 73,728)", "300 steps of batch 32, lr 0.001",
                 "AutoModelForSequenceClassification.from_pretrained('sentence-transformers/all-MiniLM-L6-v2', "
                 "id2label={0: 'fresh', 1: 'rotten'})", "PeftModel.from_pretrained(base, 'runs/demo')",
                 "import hora"):
        assert text in card, text
    assert "More Information Needed" not in card


def test_the_card_of_a_regression_names_its_metric_and_never_says_accuracy():
    metrics = {**METRICS, "metric": "pearson", "regression": True, "label_names": [], "accuracy": -0.13291,
               "val_accuracy": -0.0559}
    card = portable.model_card(metrics, "sentence-transformers/all-MiniLM-L6-v2", "runs/demo")
    assert "| test Pearson correlation | -0.1329 (n = 2562) |" in card
    assert "| validation Pearson correlation | -0.0559 (n = 1025) |" in card
    assert "accuracy" not in card and "%" not in card and "a regression" in card


def test_the_card_of_a_run_that_predicts_one_class_says_so():
    card = portable.model_card({**METRICS, "predicted_classes": 1}, "base", "runs/demo")
    assert "| test accuracy | 81.23 % (n = 2562) (predicts one class: the comparison says nothing) |" in card


def test_the_card_of_a_generative_lora_run_needs_no_hora_and_no_labels():
    metrics = {**METRICS, "method": "lora", "base_method": "lora", "objective": "sft", "label_names": []}
    del metrics["lora_equivalent_params"]
    card = portable.model_card(metrics, "HuggingFaceTB/SmolLM2-135M-Instruct", "runs/sft")
    assert "pipeline_tag: text-generation" in card and "AutoModelForCausalLM.from_pretrained(" in card
    assert "import hora" not in card and "id2label" not in card and "- hora\n" not in card
    assert "exact match of the greedy answer" in card


def _hub_cache(root: Path, repo_id: str, files: Path) -> Path:
    """A Hugging Face cache at ``root`` holding ``files`` as the main revision of ``repo_id`` (what
    ``from_pretrained(repo_id)`` leaves on a machine that downloaded it)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(files, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return root


def test_a_saved_adapter_loads_on_another_machine(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    """Trained on a base model in one folder; loaded from another folder given explicitly, and by its name
    alone from a Hugging Face cache (a fresh process, the training folder gone), with the model card's code."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hora.experiments.methods import build
    from hora.experiments.training import train

    here = shutil.copytree(tiny_bert, tmp_path / "machine-a" / "tiny-bert")
    monkeypatch.setattr(portable, "asset_hub_ids", lambda: [(here, "hora-test/tiny-bert")])
    run = tmp_path / "run"
    train.train(TrainConfig(model=str(here), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                            steps=3, batch_size=8, max_length=16, output=str(run), progress=False))
    config = json.loads((run / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "hora-test/tiny-bert"
    assert config["modules_to_save"] == ["classifier", "score"]  # each once
    assert json.loads((run / "metrics.json").read_text())["model_path"] == str(here)  # the harness reloads from here
    card = (run / "README.md").read_text()
    assert "base_model: hora-test/tiny-bert" in card and "More Information Needed" not in card

    trained, _ = build.load_trained(run)
    batch = dict(AutoTokenizer.from_pretrained(here)(["good film", "dull plot"], padding=True, return_tensors="pt"))
    with torch.no_grad():
        expected = trained(**batch).logits

    # another path to the same base model, given explicitly
    elsewhere = shutil.copytree(here, tmp_path / "machine-b" / "models" / "bert")
    base = AutoModelForSequenceClassification.from_pretrained(elsewhere, num_labels=2)
    with torch.no_grad():
        torch.testing.assert_close(PeftModel.from_pretrained(base, run).eval()(**batch).logits, expected)

    # by name only: the card's code in a fresh process whose Hugging Face cache holds the base model
    cache = _hub_cache(tmp_path / "hub", "hora-test/tiny-bert", here)
    shutil.rmtree(tmp_path / "machine-a")
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    inputs = json.dumps({k: v.tolist() for k, v in batch.items()})
    probe = (f"{code}\nimport torch\nbatch = {{k: torch.tensor(v) for k, v in {inputs}.items()}}\n"
             "with torch.no_grad():\n    print(model.eval()(**batch).logits.tolist())\n"
             "print(base.config.id2label)\n")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    logits, labels = result.stdout.strip().splitlines()[-2:]
    torch.testing.assert_close(torch.tensor(json.loads(logits)), expected)
    assert labels == "{0: 'neg', 1: 'pos'}"


def test_a_lora_run_saves_its_head_once_and_a_card_without_hora(tiny_bert, tiny_csv, tmp_path):
    from hora.experiments.training import train

    run = tmp_path / "lora"
    train.train(TrainConfig(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                            method="lora", steps=1, batch_size=8, max_length=16, output=str(run), progress=False))
    config = json.loads((run / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["modules_to_save"] == ["classifier", "score"]
    assert config["base_model_name_or_path"] == tiny_bert.name
    card = (run / "README.md").read_text()
    assert "lora adapter for" in card and "import hora" not in card
