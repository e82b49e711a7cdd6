"""Tiny data sets in the real formats of the benchmarks of :mod:`hora.experiments.grid.presets`, written into a folder
by the tests (nothing large is committed). Formats and where they were read: docs/benchmarks.md.

- GLUE: the Hub repository layout of ``nyu-mll/glue`` (``<config>/{train,validation,test}-00000-of-00001.parquet``
  and a README whose ``configs`` name them), the same columns, ``ClassLabel`` names and ``idx``; test labels -1.
- Commonsense: LLM-Adapters' JSON lists (``ft-training_set/commonsense_170k.json``, ``dataset/<task>/test.json``)
  of records with ``instruction`` / ``input`` / ``output`` / ``answer``, the instructions in each task's template.
- MetaMathQA -> GSM8K (PEFT's method comparison): ``MetaMathQA/MetaMathQA-395K.json``, a JSON list of records
  ``query`` / ``response`` (ending ``The answer is: N``) / ``type`` / ``original_question``, and the Hub layout of
  ``openai/gsm8k``: ``gsm8k/main/{train,test}-00000-of-00001.parquet`` with ``question`` / ``answer`` (``#### N``).
- VTAB-1k: NOAH's layout, ``<task>/{train800,val200,train800val200,test}.txt`` lines
  ``images/<split>/000000.jpg <label>`` and the JPEGs.

The examples are synthetic (made-up sentences, coloured squares) but learnable: the label is readable from the
input, so a tiny model moves off chance in a few steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GLUE_CONFIGS = {  # config -> (text columns, class names or None for a regression)
    "sst2": (("sentence",), ["negative", "positive"]),
    "mrpc": (("sentence1", "sentence2"), ["not_equivalent", "equivalent"]),
    "cola": (("sentence",), ["unacceptable", "acceptable"]),
    "qnli": (("question", "sentence"), ["entailment", "not_entailment"]),
    "rte": (("sentence1", "sentence2"), ["entailment", "not_entailment"]),
    "stsb": (("sentence1", "sentence2"), None),
}
WORDS = ("good", "bad")


def write_glue(root: Path, configs=tuple(GLUE_CONFIGS), sizes=(32, 16, 8)) -> Path:
    """``root/glue``: parquet files in nyu-mll/glue's layout for ``configs``, ``sizes`` = train, validation, test."""
    import datasets

    folder = root / "glue"
    card = ["---", "configs:"]
    for config in configs:
        columns, names = GLUE_CONFIGS[config]
        label = datasets.ClassLabel(names=names) if names else datasets.Value("float32")
        features = datasets.Features({**{c: datasets.Value("string") for c in columns}, "label": label,
                                      "idx": datasets.Value("int32")})
        card += [f"- config_name: {config}", "  data_files:"]
        for split, n in zip(("train", "validation", "test"), sizes, strict=True):
            rng = np.random.default_rng([len(config), n])
            y = rng.integers(0, 2, n)
            rows = {c: [f"the {WORDS[v]} movie number {i}" for i, v in enumerate(y)] for c in columns}
            if names:
                rows["label"] = [-1] * n if split == "test" else y.tolist()
            else:  # STS-B: a similarity score in [0, 5], high for "good"
                rows["label"] = [-1.0] * n if split == "test" else (y * 4 + rng.uniform(0, 1, n)).tolist()
            rows["idx"] = list(range(n))
            path = folder / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
            card += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (folder / "README.md").write_text("\n".join(card + ["---", "", "GLUE in nyu-mll/glue's layout (test fixture)"]))
    return folder


COMMONSENSE_TEMPLATES = {  # task -> (instruction, answer words)
    "boolq": ("Please answer the following question with true or false, question: is {w} {i} good?\n\n"
              "Answer format: true/false", ("true", "false")),
    "piqa": ("Please choose the correct solution to the question: do {w} {i}\n\nSolution1: good way\n\n"
             "Solution2: bad way\n\nAnswer format: solution1/solution2", ("solution1", "solution2")),
    "social_i_qa": ("Please choose the correct answer to the question: {w} {i}?\n\nAnswer1: good Answer2: bad "
                    "Answer3: so-so\n\nAnswer format: answer1/answer2/answer3", ("answer1", "answer2")),
    "hellaswag": ("Please choose the correct ending to complete the given sentence: Cooking: {w} {i}\n\n"
                  "Ending1: good Ending2: bad Ending3: odd Ending4: late\n\n"
                  "Answer format: ending1/ending2/ending3/ending4", ("ending1", "ending2")),
    "winogrande": ("Please choose the correct answer to fill in the blank to complete the given sentence: {w} {i} _"
                   "\n\nOption1: good Option2: bad Answer format: option1/option2", ("option1", "option2")),
    "ARC-Easy": ("Please choose the correct answer to the question: {w} {i}?\n\nAnswer1: good Answer2: bad "
                 "Answer3: odd Answer4: late\n\nAnswer format: answer1/answer2/answer3/answer4",
                 ("answer1", "answer2")),
    "ARC-Challenge": ("Please choose the correct answer to the question: {w} {i}?\n\nAnswer1: good Answer2: bad "
                      "Answer3: odd Answer4: late\n\nAnswer format: answer1/answer2/answer3/answer4",
                      ("answer1", "answer2")),
    "openbookqa": ("Please choose the correct answer to the question: {w} {i}\n\nAnswer1: good Answer2: bad "
                   "Answer3: odd Answer4: late\n\nAnswer format: answer1/answer2/answer3/answer4",
                   ("answer1", "answer2")),
}


def _commonsense_records(task: str, n: int, seed: int) -> list[dict]:
    template, words = COMMONSENSE_TEMPLATES[task]
    y = np.random.default_rng([seed, n, len(task)]).integers(0, 2, n)
    return [{"instruction": template.format(w=WORDS[v], i=i), "input": "",
             "output": f"the correct answer is {words[v]}", "answer": words[v]} for i, v in enumerate(y)]


def write_commonsense(root: Path, per_task_train: int = 6, per_task_test: int = 6) -> Path:
    """``root/LLM-Adapters``: ``ft-training_set/commonsense_170k.json`` (every task's training records) and
    ``dataset/<task>/test.json``, as LLM-Adapters lays them out."""
    folder = root / "LLM-Adapters"
    train = [r for task in COMMONSENSE_TEMPLATES for r in _commonsense_records(task, per_task_train, 0)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ft-training_set").mkdir()
    (folder / "ft-training_set" / "commonsense_170k.json").write_text(json.dumps(train, indent=4))
    for task in COMMONSENSE_TEMPLATES:
        path = folder / "dataset" / task / "test.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_commonsense_records(task, per_task_test, 1), indent=4))
    return folder


def _sum_question(rng, i: int) -> tuple[str, int, int, int]:
    a, b = (int(x) for x in rng.integers(1, 20, size=2))
    return f"Tom has {a} apples and buys {b} more. How many apples does he have? ({i})", a, b, a + b


def write_metamathqa(root: Path, n_train: int = 40, n_long: int = 2, n_gsm_train: int = 60,
                     n_gsm_test: int = 12) -> Path:
    """``root/peft-metamathqa`` with ``MetaMathQA/`` and ``gsm8k/`` as ``hf download`` writes them; ``n_long``
    MetaMathQA records are longer than PEFT's 1300-character limit (its filter leaves them out)."""
    import pandas as pd

    folder, rng = root / "peft-metamathqa", np.random.default_rng(0)
    records = []
    for i in range(n_train + n_long):
        question, a, b, total = _sum_question(rng, i)
        padding = " He counts again." * (100 if i >= n_train else 0)
        records.append({"query": question + padding, "response": f"{a} + {b} = {total}.{padding} The answer is: "
                        f"{total}", "type": "GSM_Rephrased", "original_question": question})
    (folder / "MetaMathQA").mkdir(parents=True)
    (folder / "MetaMathQA" / "MetaMathQA-395K.json").write_text(json.dumps(records, indent=4))
    (folder / "gsm8k" / "main").mkdir(parents=True)
    for split, n in (("train", n_gsm_train), ("test", n_gsm_test)):
        rows = [_sum_question(rng, i) for i in range(n)]
        answers = [f"He has {a}+{b}=<<{a}+{b}={t}>>{t} apples.\n#### {t}" for _, a, b, t in rows]
        table = pd.DataFrame({"question": [q for q, *_ in rows], "answer": answers})
        table.to_parquet(folder / "gsm8k" / "main" / f"{split}-00000-of-00001.parquet", index=False)
    return folder


def write_peft_result(folder: Path, experiment: str, test_accuracy: float, accelerator: str = "NVIDIA L40S",
                      params: int = 9175040, train_time: float = 941.96) -> Path:
    """One result file of PEFT's ``method_comparison/MetaMathQA/results`` (``<method>--<name>.json``), with the keys
    and nesting of ``lora--llama-3.2-3B-rank32.json`` at peft@5d602fd (values made up but of the right kinds)."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = [{"step": 250, "valid accuracy": 0.32, "train loss": 0.98, "train samples": 1000, "train time": 29.0,
                "eval time": 12.2, "tokens / sec": 7299.5, "mem allocated avg": 6.9e9, "mem reserved avg": 1.45e10,
                "elapsed time": 66.6},
               {"step": 5000, "test accuracy": test_accuracy, "train loss": 0.55, "train samples": 20000,
                "train total tokens": 4198051, "forgetting": 0.05}]
    data = {
        "run_info": {"created_at": "2026-07-15T05:41:18+00:00", "total_time": train_time + 211.3,
                     "experiment_name": experiment, "peft_branch": "main",
                     "train_config": {"model_id": "meta-llama/Llama-3.2-3B", "dtype": "bfloat16", "max_steps": 5000},
                     "peft_config": {"task_type": "CAUSAL_LM", "peft_type": experiment.split("/")[0].upper(),
                                     "r": 32, "target_modules": ["v_proj", "q_proj"]},
                     "error_msg": ""},
        "train_info": {"accelerator_memory_reserved_avg": 14397338969, "accelerator_memory_max": 22292725760,
                       "accelerator_memory_reserved_99th": 20120076288, "train_time": train_time,
                       "file_size": 36715216, "num_trainable_params": params, "num_total_params": 3221924864,
                       "status": "success", "metrics": metrics},
        "meta_info": {"model_info": {"sha": "13afe5124825b4f3751f836b40dafda64c1ed062",
                                     "created_at": "2024-09-18T15:23:48+00:00"},
                      "dataset_info": {"metamath": {"sha": "aa4f34d3", "created_at": "2023-09-21T17:22:46+00:00"},
                                       "gsm8k": {"sha": "740312ad", "created_at": "2022-04-12T10:22:10+00:00"}},
                      "package_info": {"transformers-version": "5.13.1", "peft-version": "0.19.2.dev0",
                                       "datasets-version": "4.2.0", "bitsandbytes-version": "0.49.2",
                                       "torch-version": "2.13.0+cu130"},
                      "system_info": {"system": "Linux", "machine": "x86_64", "accelerator": accelerator},
                      "pytorch_info": "PyTorch built with: ..."},
    }
    path = folder / f"{experiment.replace('/', '--')}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


VTAB_SPLITS = {"train800": 16, "val200": 8, "test": 12}


def write_vtab(root: Path, tasks=("cifar", "dtd"), classes: int = 3, size: int = 32) -> Path:
    """``root/vtab-1k/<task>``: list files and JPEGs in NOAH's VTAB-1k layout; the class is the square's colour."""
    from PIL import Image

    folder = root / "vtab-1k"
    for t, task in enumerate(tasks):
        rng = np.random.default_rng(t)
        lists = {}
        for split, n in VTAB_SPLITS.items():
            (folder / task / "images" / split).mkdir(parents=True, exist_ok=True)
            labels = np.arange(n) % classes
            lines = []
            for i, label in enumerate(labels):
                pixels = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
                pixels[..., int(label) % 3] += 200
                relative = f"images/{split}/{i:06d}.jpg"
                Image.fromarray(pixels).save(folder / task / relative)
                lines.append(f"{relative} {int(label)}")
            lists[split] = lines
        lists["train800val200"] = lists["train800"] + lists["val200"]  # get_vtab1k.py writes copies of these images
        for split, lines in lists.items():
            (folder / task / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder
