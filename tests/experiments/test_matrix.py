"""Every method a preset uses under every documented training flag, through the whole harness (``train``, then
``hora export`` for HoRA): the run completes, writes metrics.json (no optional step missing) and its adapter, and
a HoRA adapter exports to a LoRA adapter with the same outputs.

The grid is a Latin square, to stay within CI's budget: every method runs under every flag (float32, ``--bf16``,
``--fp16``, ``--gradient-checkpointing``, ``--gradient-accumulation-steps 2`` and all three memory flags at once),
and the task of each cell (single-text classification, sentence pairs, regression) rotates, so each method and
each flag meets every task. Decoders: every adapter method with ``--objective sft``, ``--load-in-4bit`` and
``--load-in-8bit``. ``--fp16`` needs CUDA: without it the run is refused before any work, with one line, and the
cell checks that refusal; on a GPU (``benchmarks/gpu_check.py``) the same cells train.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import make_prompt_rows, make_rows, write_pairs

from hora.experiments.errors import HoraError
from hora.experiments.methods.run_export import export_run
from hora.experiments.training import train as train_mod
from hora.experiments.training.train_config import TrainConfig

METHODS = ["hora", "hora-jointgen", "hora-nores", "lora", "dora", "vera", "full"]
HORA_METHODS = {"hora", "hora-jointgen", "hora-nores"}
FLAGS = {
    "float32": {},
    "bf16": {"bf16": True},
    "fp16": {"fp16": True},
    "checkpointing": {"gradient_checkpointing": True},
    "accumulation": {"gradient_accumulation_steps": 2},
    "bf16+checkpointing+accumulation": {"bf16": True, "gradient_checkpointing": True,
                                        "gradient_accumulation_steps": 2},
}
TASKS = ["classification", "pair", "regression"]
CELLS = [(method, flag, TASKS[(i + j) % len(TASKS)])
         for i, method in enumerate(METHODS) for j, flag in enumerate(FLAGS)]
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def task_data(tmp_path_factory) -> dict[str, dict]:
    """The run settings that read each task's data (written once for the module)."""
    folder = tmp_path_factory.mktemp("matrix-data")
    pd.DataFrame(make_rows()).to_csv(folder / "reviews.csv", index=False)
    return {
        "classification": dict(data=str(folder / "reviews.csv"), text_columns="review", label_column="sentiment"),
        "pair": dict(dataset=str(write_pairs(folder / "pairs")), text_columns="sentence1,sentence2"),
        "regression": dict(dataset=str(write_pairs(folder / "scores", regression=True)),
                           text_columns="sentence1,sentence2"),
    }


def run(model: Path, out: Path, **settings) -> dict:
    cfg = TrainConfig(model=str(model), output=str(out), steps=2, batch_size=8, max_length=16, max_eval_samples=16,
                      progress=False, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bitsandbytes and PEFT warn on every quantized matmul and merge
        return train_mod.train(cfg)


def check_run(metrics: dict, out: Path, method: str) -> None:
    """The run's files and scores, and for HoRA an export whose LoRA gives the same outputs."""
    saved = json.loads((out / "metrics.json").read_text())
    assert "missing" not in saved, saved.get("missing")
    assert saved["accuracy"] == metrics["accuracy"] and saved["steps"] == 2
    assert (out / "adapter_config.json").is_file() or method == "full"
    assert (out / ("model.safetensors" if method == "full" else "adapter_model.safetensors")).is_file()
    assert saved["device"].startswith("cuda" if CUDA else "cpu")
    if method in HORA_METHODS:
        assert export_run(out, out.parent / f"{out.name}-lora") < 1e-4


@pytest.mark.parametrize(("method", "flag", "task"), CELLS, ids=["-".join(cell) for cell in CELLS])
def test_every_method_under_every_flag(method, flag, task, task_data, tiny_bert, tmp_path):
    settings = {**task_data[task], **FLAGS[flag], "method": method}
    if flag == "fp16" and not CUDA:
        with pytest.raises(HoraError, match="--fp16 needs a CUDA GPU"):
            run(tiny_bert, tmp_path / "run", **settings)
        assert not (tmp_path / "run" / "metrics.json").exists()
        return
    metrics = run(tiny_bert, tmp_path / "run", **settings)
    assert metrics["regression"] == (task == "regression")
    assert metrics["metric"] == ("pearson" if task == "regression" else "accuracy")
    check_run(metrics, tmp_path / "run", method)


DECODER_FLAGS = {"sft": {"objective": "sft"}, "4bit": {"load_in_4bit": True}, "8bit": {"load_in_8bit": True}}
# the combinations that cannot work, refused before any work with one line
REFUSED = {("full", "4bit"): "full fine-tuning cannot train quantized weights",
           ("full", "8bit"): "full fine-tuning cannot train quantized weights"}
if not CUDA:  # PEFT's DoRA fails on bitsandbytes' CPU int8 layers (plain PEFT too)
    REFUSED[("dora", "8bit")] = "PEFT's DoRA fails on bitsandbytes' 8-bit layers without CUDA"
DECODER_CELLS = [(method, flag) for method in METHODS for flag in DECODER_FLAGS]


@pytest.mark.parametrize(("method", "flag"), DECODER_CELLS, ids=["-".join(cell) for cell in DECODER_CELLS])
def test_every_method_on_a_decoder(method, flag, tiny_llama64, tmp_path):
    """A decoder trained by SFT on prompts and answers, or classifying on a 4-bit / 8-bit base (QLoRA); what
    cannot work (full fine-tuning of quantized weights; DoRA on 8 bits without CUDA) is refused before any work."""
    if flag == "sft":
        pd.DataFrame(make_prompt_rows()).to_csv(tmp_path / "qa.csv", index=False)
        settings = dict(data=str(tmp_path / "qa.csv"))
    else:
        pytest.importorskip("bitsandbytes")
        pd.DataFrame(make_rows()).to_csv(tmp_path / "reviews.csv", index=False)
        settings = dict(data=str(tmp_path / "reviews.csv"), text_columns="review", label_column="sentiment")
    settings.update(DECODER_FLAGS[flag], method=method, targets="q,k,v,o")
    refusal = REFUSED.get((method, flag))
    if refusal is not None:
        with pytest.raises(HoraError, match=refusal):
            run(tiny_llama64, tmp_path / "run", **settings)
        assert not (tmp_path / "run" / "metrics.json").exists()
        return
    metrics = run(tiny_llama64, tmp_path / "run", **settings)
    check_run(metrics, tmp_path / "run", method)
