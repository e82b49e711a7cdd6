"""The HoRA experiment folder in PEFT's method_comparison layout loads through PEFT's own config loading (by
``peft_type``, after ``import hora``) and adapts a Llama's q_proj and v_proj with ``get_peft_model``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import PeftConfig, get_peft_model

import hora
from tiny_models import make_model

FOLDER = Path(__file__).parents[1] / "benchmarks" / "peft_method_comparison" / "experiments" / "hora" / \
    "llama-3.2-3B-rank32"


def test_peft_loads_the_experiment_folder_and_adapts_a_llama(tmp_path):
    config = PeftConfig.from_pretrained(str(FOLDER))  # what PEFT's run.py calls
    assert isinstance(config, hora.HoraConfig)
    assert (config.r, config.alpha, sorted(config.target_modules), config.task_type) == (
        32, 64.0, ["q_proj", "v_proj"], "CAUSAL_LM")
    model = get_peft_model(make_model("llama_gqa"), config)
    adapted = {name.split(".")[-1] for name, module in model.named_modules() if isinstance(module, hora.HoraLayer)}
    assert adapted == {"q_proj", "v_proj"}
    ids = torch.randint(3, 64, (2, 5))
    model(input_ids=ids, labels=ids).loss.backward()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == "HORA"
