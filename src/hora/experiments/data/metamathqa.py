"""PEFT's own method comparison, MetaMathQA -> GSM8K: its data, splits, prompt, answer rule and result file.

Read from huggingface/peft @ 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40, ``method_comparison/MetaMathQA/``:
``README.md``, ``data.py`` (filter and splits), ``utils.py`` (``parse_answer``, ``convert_to_decimal``,
``get_accuracy``, ``log_results``: the result file), ``run.py`` (generation, the training loop) and
``default_training_params.json``, copied unchanged as ``metamathqa_training_params.json`` beside this module and
read as data (:data:`TRAINING_PARAMS`). docs/benchmarks.md says what differs here.

Data (the folder :func:`read_folder` reads, as ``hf download`` writes the two Hub datasets):
    ``MetaMathQA/*.json``               meta-math/MetaMathQA: a JSON list of records ``query``, ``response``,
                                        ``type``, ``original_question``
    ``gsm8k/main/{train,test}-*.parquet``  openai/gsm8k ("main"): ``question``, ``answer`` (its last line
                                        ``#### N``), renamed ``query`` / ``response`` as PEFT does
Splits: train = every MetaMathQA record whose ``f"{query} {response}"`` has at most :data:`CHAR_LIMIT` characters;
validation = :data:`VALID_SIZE` GSM8K train questions, the first of ``np.random.seed(0); np.random.shuffle(
arange(n))`` (legacy global RNG, reproduced with ``RandomState(0)``); test = the GSM8K test split.

Prompt: ``query_template`` (``"Question: {query} Think step by step.\\nAnswer:"``), the response appended as it is.
Score (:func:`accuracy`): the answer after the last of the first delimiter found (``The answer is: `` ...
``#### ``) of the generation and of the gold response, compared as numbers (fractions allowed) or else as text.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, DivisionByZero, InvalidOperation
from pathlib import Path

import numpy as np

from hora.experiments.errors import HoraError

SOURCE_COMMIT = "5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40"
TRAINING_PARAMS: dict = json.loads((Path(__file__).parent / "metamathqa_training_params.json").read_text())
CHAR_LIMIT = 1300  # data.py: query + " " + response longer than this is left out (768 tokens for Llama-3.2)
VALID_SIZE = 50  # data.py: GSM8K train questions that validate
WARMUP_RATIO = 0.1  # utils.py's WARMUP_STEP_RATIO (not in the defaults file)
# utils.py's parse_answer: the delimiters tried in this order; the first one present is used, at its last place
DELIMITERS = ("The answer is: ", "The answer is ", "The final answer is: ", "The final answer is ", "#### ")
# run.py's generation: at most max_new_tokens new tokens and max_length tokens in all (the smaller bound wins)
MAX_NEW_TOKENS = int(TRAINING_PARAMS["generation_kwargs"]["max_new_tokens"])
METAMATH_FOLDER, GSM8K_FOLDER = "MetaMathQA", "gsm8k"


def prompt(query: str) -> str:
    """The prompt of a question: PEFT's ``query_template``."""
    return TRAINING_PARAMS["query_template"].format(query=query)


def is_folder(path: Path) -> bool:
    """``path`` holds the two datasets in the layout of the module docstring."""
    return path.is_dir() and (path / METAMATH_FOLDER).is_dir() and (path / GSM8K_FOLDER).is_dir()


def read_folder(path: Path) -> dict:
    """Split name -> ``datasets.Dataset`` with columns ``query`` and ``response``: train (MetaMathQA, filtered),
    validation (GSM8K train, PEFT's 50) and test (GSM8K test)."""
    import datasets

    metamath_files = sorted(str(f) for f in (path / METAMATH_FOLDER).glob("*.json"))
    gsm8k = {split: sorted(str(f) for f in (path / GSM8K_FOLDER / "main").glob(f"{split}-*.parquet"))
             for split in ("train", "test")}
    missing = [what for what, files in (("MetaMathQA/*.json", metamath_files), ("gsm8k/main/train-*.parquet",
               gsm8k["train"]), ("gsm8k/main/test-*.parquet", gsm8k["test"])) if not files]
    if missing:
        raise HoraError(f"{path} has no {', '.join(missing)}: fetch the data as docs/benchmarks.md says "
                        "(hf download meta-math/MetaMathQA and openai/gsm8k into it)")
    metamath = datasets.load_dataset("json", data_files=metamath_files, split="train")
    keep = [i for i, (q, r) in enumerate(zip(metamath["query"], metamath["response"], strict=True))
            if len(f"{q} {r}") <= CHAR_LIMIT]
    gsm = datasets.load_dataset("parquet", data_files=gsm8k).rename_columns({"question": "query",
                                                                               "answer": "response"})
    order = np.arange(len(gsm["train"]))
    np.random.RandomState(0).shuffle(order)  # the stream of np.random.seed(0); np.random.shuffle(...)
    text = datasets.Features({"query": datasets.Value("string"), "response": datasets.Value("string")})
    splits = {"train": metamath.select(keep), "validation": gsm["train"].select(order[:VALID_SIZE]),
              "test": gsm["test"]}
    return {name: split.select_columns(list(text)).cast(text) for name, split in splits.items()}  # one string type


def parse_answer(text: str) -> str | None:
    """The final answer in a response or generation, or None when it states none (utils.py's rule)."""
    text = text.strip().rstrip(".!?")
    delimiter = next((d for d in DELIMITERS if d in text), None)
    if delimiter is None:
        return None
    answer = text.rpartition(delimiter)[2].strip().split("\n", 1)[0]
    return answer.strip(" .!?$%")


def as_number(answer: str | None) -> float | None:
    """``"13"``, ``"65.33"`` or ``"20/14"`` as a float (through Decimal, as utils.py), else None."""
    if answer is None:
        return None
    try:
        parts = answer.strip().split("/")
        if len(parts) > 2:
            return None
        value = Decimal(parts[0].strip())
        if len(parts) == 2:
            denominator = Decimal(parts[1].strip())
            if denominator == 0:
                return None
            value = value / denominator
        return float(value)
    except (DivisionByZero, InvalidOperation, ValueError):
        return None


def is_correct(generation: str, response: str) -> bool:
    """The generation's answer equals the gold response's: as numbers when both parse, else as text."""
    gold = parse_answer(response)
    if gold is None:
        raise HoraError(f"a gold response states no answer (no '#### ' or 'The answer is'): {response[-80:]!r}")
    guess = parse_answer(generation)
    if guess is None:
        return False
    gold_number = as_number(gold)
    guess_number = as_number(guess)
    return (guess_number if guess_number is not None else guess) == (gold_number if gold_number is not None
                                                                      else gold)


def accuracy(generations: list[str], responses: list[str]) -> float:
    """The fraction of generations whose answer is right (:func:`is_correct`)."""
    return sum(is_correct(g, r) for g, r in zip(generations, responses, strict=True)) / len(responses)


# --------------------------------------------------------------------------- PEFT's result file


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its metrics.json and its folder (with the adapter when it was saved)."""

    metrics: dict
    folder: Path

    @property
    def experiment_name(self) -> str:
        """``<method>/<model>-rank<r>-lr<lr>-s<seed>``: PEFT's ``<method>/<name>`` with our protocol's settings."""
        cfg, model = self.metrics["config"], str(self.metrics["model"]).split("/")[-1].lower()
        return f"{self.metrics['method']}/{model}-rank{cfg['r']}-lr{self.metrics['lr']:g}-s{self.metrics['seed']}"


def result(record: RunRecord) -> dict:
    """The run as PEFT's result JSON (``utils.log_results``: the same keys), for PEFT's ``results/`` and its app.

    Measured here: test accuracy, validation accuracy, train and total time, peak reserved accelerator memory
    (None on CPU), adapter file size (None when the adapter was not saved), parameters. Not measured (None):
    the average and 99th-percentile reserved memory, the total training tokens and PEFT's ``forgetting`` (loss
    on 100 FineWiki rows before and after, a download this harness does not make)."""
    m, cfg = record.metrics, record.metrics["config"]
    adapter = record.folder / "adapter_model.safetensors"
    peft_config = record.folder / "adapter_config.json"
    train_config = {**TRAINING_PARAMS, "model_id": m["model"], "dtype": "bfloat16" if cfg["bf16"] else "float32",
                    "max_seq_length": cfg["max_length"], "batch_size": cfg["batch_size"],
                    "batch_size_eval": cfg["eval_batch_size"], "max_steps": m["steps"], "eval_steps": m["steps"],
                    "use_gc": cfg["gradient_checkpointing"], "seed": m["seed"],
                    "optimizer_kwargs": {"lr": m["lr"], "weight_decay": cfg["weight_decay"]},
                    "lr_scheduler": cfg["lr_scheduler"]}
    final = {"step": m["steps"], "valid accuracy": m["val_accuracy"], "test accuracy": m["accuracy"],
             "train loss": m["train_loss"], "train samples": m["steps"] * cfg["batch_size"],
             "train total tokens": None, "forgetting": None}
    return {
        "run_info": {"created_at": _created_at(record.folder / "metrics.json"), "total_time": m["total_seconds"],
                     "experiment_name": record.experiment_name, "peft_branch": "hora",
                     "peft_worktree_is_dirty": None, "train_config": train_config,
                     "peft_config": json.loads(peft_config.read_text()) if peft_config.is_file() else None,
                     "error_msg": ""},
        "train_info": {"accelerator_memory_reserved_avg": None,
                       "accelerator_memory_max": m.get("accelerator_memory_max"),
                       "accelerator_memory_reserved_99th": None, "train_time": m["train_seconds"],
                       "file_size": adapter.stat().st_size if adapter.is_file() else None,
                       "num_trainable_params": m["trainable_params"], "num_total_params": m["total_params"],
                       "status": "success", "metrics": [final]},
        "meta_info": {"model_info": {"sha": m.get("revision"), "created_at": None},
                      "dataset_info": {"metamath": {"sha": None, "created_at": None},
                                       "gsm8k": {"sha": None, "created_at": None}},
                      "package_info": _package_info(), "system_info": _system_info(m.get("device", "cpu")),
                      "pytorch_info": None},
    }


def write_results(records: list[RunRecord], folder: Path) -> list[Path]:
    """One PEFT result JSON per run, ``folder/<method>--<name>.json`` (PEFT's file name), written atomically."""
    from hora.io import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for record in records:
        path = folder / f"{record.experiment_name.replace('/', '--')}.json"
        atomic_write_json(path, result(record))
        written.append(path)
    return written


def _created_at(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).isoformat(timespec="seconds")


def _package_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    info = {}
    for package in ("transformers", "peft", "datasets", "bitsandbytes", "torch", "hora"):
        try:
            info[f"{package}-version"] = version(package)
        except PackageNotFoundError:
            info[f"{package}-version"] = None
        info[f"{package}-commit-hash"] = None
    return info


def _system_info(device: str) -> dict:
    import torch

    accelerator = torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    return {"system": platform.system(), "release": platform.release(), "version": platform.version(),
            "machine": platform.machine(), "processor": platform.processor(), "accelerator": accelerator}
