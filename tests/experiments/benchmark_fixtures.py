"""Tiny data sets in the real formats of the benchmarks of :mod:`hora.experiments.presets`, written into a folder
by the tests (nothing large is committed). Formats and where they were read: docs/benchmarks.md.

- GLUE: the Hub repository layout of ``nyu-mll/glue`` (``<config>/{train,validation,test}-00000-of-00001.parquet``
  and a README whose ``configs`` name them), the same columns, ``ClassLabel`` names and ``idx``; test labels -1.
- Commonsense: LLM-Adapters' JSON lists (``ft-training_set/commonsense_170k.json``, ``dataset/<task>/test.json``)
  of records with ``instruction`` / ``input`` / ``output`` / ``answer``, the instructions in each task's template.
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
