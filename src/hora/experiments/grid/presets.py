"""The benchmarks of the PEFT literature as data: which model, which data (IDs, configurations, columns, splits),
which metric, which methods, seeds and learning-rate grid, how long to train. ``hora study --preset NAME``
turns a benchmark into one comparison grid per task (:meth:`Benchmark.grids`), runs them with the protocol of
:mod:`hora.experiments.grid.study` (learning rate chosen on validation, paired seeds) and adds the benchmark's table:
one row per method, one column per task and the average.

    glue         RoBERTa-base on SST-2, MRPC, CoLA, QNLI, RTE, STS-B (nyu-mll/glue), the LoRA paper's recipe
    commonsense  a decoder fine-tuned once on commonsense_170k, scored on eight test sets by LLM-Adapters' rule
    vtab1k       ViT-B/16 (ImageNet-21k) on the 19 VTAB-1k tasks, NOAH's data layout
    metamathqa   PEFT's own method comparison: Llama-3.2-3B trained on MetaMathQA, scored on GSM8K, PEFT's
                 training parameters read from a copy of its defaults file (:mod:`hora.experiments.data.metamathqa`)

Where each format, recipe and number was read: docs/benchmarks.md. A task's settings may name the data root as
``{root}``: the benchmark's published layout on disk or its Hub ID (``--data-root`` replaces the default).

Cost estimate (:func:`estimate_hours`): training processes ``epochs x n_train x tokens`` tokens (with ``steps``:
``steps x batch x tokens``) (images: 197
patch tokens each for a ViT-B/16 at 224 px), evaluation ``n_val + n_test`` examples forward only (a third of a
training token's cost) plus, for generated answers, ``new_tokens`` decoding steps per example counted as tokens.
Time = tokens x parameters / RATE + optimiser steps x STEP_OVERHEAD. RATE = 7e13 parameter-tokens per second is
the training-step rate of the project's HoRA prototypes on one H200 in bfloat16 (docs/performance.md, "Prior
measurements", not this code: a Llama-3.2-1B shape, 8 x 1024 tokens per 130.6 ms, is 7.8e13; a ViT-B/16,
128 x 197 tokens per 34.7 ms at 86M parameters, 6.3e13; PEFT's LoRA took 143.9 and 50.2 ms there).
STEP_OVERHEAD = 20 ms per optimiser step is an assumption, not a measurement: small batches of short sentences
(GLUE) are bound by kernel launches, data loading and the Trainer, not by arithmetic. Padding is ignored. Read
the result as an order of magnitude (within a factor of about 2), not a quote; on an A100 expect 2-3x longer.
The estimate is for the preset's own model (``params``): ``--model`` does not change it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from hora.experiments.data import commonsense, metamathqa
from hora.experiments.errors import HoraError

RATE = 7e13  # parameter-tokens per second of a training step, one H200, bfloat16 (see the module docstring)
STEP_OVERHEAD = 0.02  # seconds per optimiser step beyond the arithmetic: an assumption (module docstring)
VIT_TOKENS = 197  # 14 x 14 patches + the class token of a ViT-B/16 at 224 x 224
EVAL_COST = 1 / 3  # a forward pass, relative to forward + backward + optimiser step
METHODS = ("hora", "lora", "dora", "hora-jointgen")


@dataclass(frozen=True)
class Task:
    """One task of a benchmark: its TrainConfig ``settings`` (``{root}`` is the data root), the published sizes
    the cost estimate reads, and its group (VTAB-1k: natural, specialized, structured)."""

    name: str
    settings: dict
    n_train: int
    n_eval: int  # validation + test examples scored by each run
    tokens: int = VIT_TOKENS  # mean tokens per example (text: its prompt or sentence(s); images: patches)
    group: str = ""
    new_tokens: int = 0  # tokens generated per evaluated example (generative scoring)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: its model (``params`` parameters), data root, protocol (methods, seeds, tuning seeds,
    absolute learning rates tried by every method) and tasks; ``settings`` are shared by every task."""

    name: str
    title: str
    model: str
    params: float
    root: str
    tasks: tuple[Task, ...]
    settings: dict
    lrs: tuple[float, ...]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    tune_seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] = METHODS
    # test sets of one grid that are the benchmark's tasks (commonsense: one fine-tuning, eight test sets)
    test_sets: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # the average is the mean of the groups' means when given (VTAB-1k)
    fetch: str = ""  # how to get the data folder, for a benchmark whose data root must be a local folder
    peft_results: bool = False  # also write each run as PEFT's method-comparison result JSON (adapters saved)

    def check_root(self, root: str | None) -> str:
        """The data root to use; for a benchmark read from a local folder, a one-line error saying how to get it
        when the folder does not exist."""
        root = root or self.root
        if self.fetch and not Path(root).expanduser().is_dir():
            raise HoraError(f"{self.name}: no data folder {root} ({self.fetch}; then pass --data-root FOLDER)")
        return root

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise HoraError(f"unknown task '{name}' of preset {self.name}: choose from "
                        f"{', '.join(t.name for t in self.tasks)}")

    def task_settings(self, task: Task, root: str | None = None, overrides: dict | None = None) -> dict:
        """``task``'s TrainConfig settings: the shared ones, the task's, the data root filled in, then
        ``overrides`` (``steps`` replaces the recipe's epochs)."""
        settings = {"model": self.model, **self.settings, **task.settings}
        root = root or self.root
        settings = {k: v.replace("{root}", root) if isinstance(v, str) else v for k, v in settings.items()}
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        if "steps" in overrides:
            settings["epochs"] = None
        return {**settings, **overrides}

    def with_protocol(self, methods: list[str] | None = None, seeds: list[int] | None = None,
                      lrs: list[float] | None = None) -> Benchmark:
        """This benchmark with other methods, seeds or learning rates (a slice or a cheaper protocol); the
        tuning seeds are those of ``seeds`` that tuned before, else the first of ``seeds``."""
        seeds_ = tuple(seeds) if seeds else self.seeds
        tune = tuple(s for s in self.tune_seeds if s in seeds_) or seeds_[:1]
        return replace(self, methods=tuple(methods) if methods else self.methods, seeds=seeds_, tune_seeds=tune,
                       lrs=tuple(lrs) if lrs else self.lrs)

    def runs(self) -> list[tuple[str, float | None, int]]:
        """One task's runs as (method, lr, seed): every lr on the tuning seeds, then the other seeds at the lr chosen
        on validation (None: not known before the tuning runs)."""
        others = [s for s in self.seeds if s not in self.tune_seeds]
        return ([(m, lr, s) for m in self.methods for lr in self.lrs for s in self.tune_seeds]
                + [(m, None, s) for m in self.methods for s in others])

    def runs_per_task(self) -> int:
        """Runs of one task's grid: every lr on the tuning seeds, the other seeds at the chosen lr, per method."""
        return len(self.runs())


def estimate_hours(benchmark: Benchmark, task: Task) -> float:
    """GPU-hours of one run of ``task`` with the recipe's epochs and batch (see the module docstring)."""
    settings = {**benchmark.settings, **task.settings}
    epochs, batch = settings.get("epochs") or 1.0, settings.get("batch_size", 32)
    examples = settings["steps"] * batch if settings.get("steps") else epochs * task.n_train
    train_tokens = examples * task.tokens
    eval_tokens = task.n_eval * (task.tokens * EVAL_COST + task.new_tokens)
    steps = math.ceil(examples / batch)
    return ((train_tokens + eval_tokens) * benchmark.params / RATE + steps * STEP_OVERHEAD) / 3600


# --------------------------------------------------------------------------- GLUE

# LoRA (Hu et al. 2021), examples/NLU/roberta_base_<task>.sh: r 8, alpha 16, q and v, max length 512, warm-up 6 %,
# weight decay 0.1; batch and epochs per task. Sizes: nyu-mll/glue's train / validation splits. Tokens: mean
# RoBERTa tokens of a (pair of) sentence(s), rounded (an estimate's input only).
GLUE_TASKS = (
    Task("sst2", dict(dataset_config="sst2", text_columns="sentence", batch_size=16, epochs=60),
         n_train=67349, n_eval=872, tokens=25),
    Task("mrpc", dict(dataset_config="mrpc", text_columns="sentence1,sentence2", batch_size=16, epochs=30),
         n_train=3668, n_eval=408, tokens=55),
    Task("cola", dict(dataset_config="cola", text_columns="sentence", batch_size=32, epochs=80, metric="matthews"),
         n_train=8551, n_eval=1043, tokens=12),
    Task("qnli", dict(dataset_config="qnli", text_columns="question,sentence", batch_size=32, epochs=25),
         n_train=104743, n_eval=5463, tokens=50),
    Task("rte", dict(dataset_config="rte", text_columns="sentence1,sentence2", batch_size=32, epochs=80),
         n_train=2490, n_eval=277, tokens=75),
    Task("stsb", dict(dataset_config="stsb", text_columns="sentence1,sentence2", batch_size=16, epochs=40,
                      metric="pearson"), n_train=5749, n_eval=1500, tokens=30),
)

GLUE = Benchmark(
    name="glue", title="GLUE with RoBERTa-base", model="FacebookAI/roberta-base", params=125e6, root="nyu-mll/glue",
    tasks=GLUE_TASKS,
    # GLUE's test labels are hidden (-1): validation is the reported split, as in the LoRA / VeRA / DoRA tables,
    # and the validation split that chooses the lr is taken from train by the fixed split rule
    settings=dict(dataset="{root}", label_column="label", validation_split="none", test_split="validation",
                  r=8, alpha=16.0, targets="q,v", max_length=512, warmup_ratio=0.06, weight_decay=0.1,
                  lr_scheduler="linear", bf16=True),
    lrs=(2e-4, 4e-4, 8e-4),
)

# --------------------------------------------------------------------------- commonsense reasoning

# DoRA's commonsense_reasoning/llama3_8B_DoRA.sh (as LLM-Adapters' finetune.py): batch 16, 3 epochs, cutoff 256,
# q/k/v (and MLP, which HoRA does not adapt), r 32, alpha 64, lr 1e-4..3e-4. Test sizes: LLM-Adapters'
# dataset/<task>/test.json (HellaSwag: 10,042). Tokens: a prompt of about 120 tokens, answer about 8.
COMMONSENSE_TEST_SIZES = {"boolq": 3270, "piqa": 1838, "social_i_qa": 1954, "hellaswag": 10042, "winogrande": 1267,
                          "ARC-Easy": 2376, "ARC-Challenge": 1172, "openbookqa": 500}
COMMONSENSE = Benchmark(
    name="commonsense", title="Commonsense reasoning (LLM-Adapters / DoRA protocol)", model="Qwen/Qwen2.5-0.5B",
    params=0.5e9, root="LLM-Adapters",
    tasks=(Task("commonsense_170k", dict(
        dataset="{root}/ft-training_set/commonsense_170k.json",
        test_sets=",".join(f"{t}={{root}}/dataset/{t}/test.json" for t in commonsense.TASKS)),
        n_train=170420, n_eval=1000 + sum(COMMONSENSE_TEST_SIZES.values()), tokens=130, new_tokens=8),),
    settings=dict(objective="sft", prompt_column="instruction", answer_column="output",
                  prompt_template="llm-adapters", metric="llm-adapters", validation_split="none",
                  test_split="none", max_eval_samples=1000, r=32, alpha=64.0, targets="q,k,v", max_length=256,
                  batch_size=16, epochs=3, warmup_ratio=0.01, bf16=True, gradient_checkpointing=True),
    lrs=(1e-4, 2e-4, 4e-4), seeds=(0, 1, 2), test_sets=commonsense.TASKS,
    fetch="git clone --depth 1 https://github.com/AGI-Edgerunners/LLM-Adapters",
)

# --------------------------------------------------------------------------- VTAB-1k

# NOAH's data/vtab-source/get_vtab1k.py (task folder names) and configs/LoRA/VTAB/slurm_train_lora_vtab.sh (LoRA
# r 8: batch 64, 100 epochs, lr 5e-3 (1e-3 also tried), weight decay 1e-4), FacT's fact_tt.py (AdamW, cosine with
# 10 warm-up epochs; trains on train800val200: here train800 trains and val200 chooses the lr), Convpass' README
# (the three groups; the average is the mean of the group means).
# Test sizes: the VTAB test splits (approximate where marked in docs/benchmarks.md).
VTAB_GROUPS = {
    "natural": ("cifar", "caltech101", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397"),
    "specialized": ("patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"),
    "structured": ("clevr_count", "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori", "smallnorb_azi",
                   "smallnorb_ele"),
}
VTAB_TEST_SIZES = {"cifar": 10000, "caltech101": 6084, "dtd": 1880, "oxford_flowers102": 6149, "oxford_iiit_pet": 3669,
                   "svhn": 26032, "sun397": 21750, "patch_camelyon": 32768, "eurosat": 5400, "resisc45": 6300,
                   "diabetic_retinopathy": 42670, "clevr_count": 15000, "clevr_dist": 15000, "dmlab": 22735,
                   "kitti": 711, "dsprites_loc": 73728, "dsprites_ori": 73728, "smallnorb_azi": 12150,
                   "smallnorb_ele": 12150}
VTAB1K = Benchmark(
    name="vtab1k", title="VTAB-1k with ViT-B/16 (ImageNet-21k)", model="timm/vit_base_patch16_224.orig_in21k",
    params=86e6, root="vtab-1k",
    tasks=tuple(Task(name, dict(dataset=f"{{root}}/{name}"), n_train=800, n_eval=200 + VTAB_TEST_SIZES[name],
                     group=group) for group, names in VTAB_GROUPS.items() for name in names),
    settings=dict(image_column="image", label_column="label", train_split="train800", validation_split="val200",
                  test_split="test", r=8, alpha=8.0, targets="q,v", batch_size=64, epochs=100,
                  lr_scheduler="cosine", warmup_ratio=0.1, weight_decay=1e-4, bf16=True),
    lrs=(1e-3, 2e-3, 5e-3), seeds=(0, 1, 2), groups=tuple(VTAB_GROUPS),
    fetch="build it with NOAH's data/vtab-source/get_vtab1k.py, see docs/benchmarks.md",
)

# --------------------------------------------------------------------------- PEFT's MetaMathQA -> GSM8K

# PEFT's method_comparison/MetaMathQA (docs/benchmarks.md: where read): its default_training_params.json as data
# (model, steps, batch, max length, lr 1e-4 with weight decay 0.1, cosine, bf16, eval batch), warm-up 10 % (utils.py),
# LoRA r 32 alpha 64 on q/v (experiments/lora/llama-3.2-3B-rank32). Our protocol adds seeds and an lr grid around
# PEFT's 1e-4. Sizes: MetaMathQA after the 1300-character filter (93.8 % of 395k, data.py), 50 + 1319 GSM8K
# questions; tokens: PEFT's LoRA run reports 4,198,051 training tokens for 20,000 examples (about 210 each); a
# GSM8K prompt is about 80 tokens; generation is capped at 300 new tokens (an upper bound of the decoding cost).
_MMQA = metamathqa.TRAINING_PARAMS
METAMATHQA = Benchmark(
    name="metamathqa", title="PEFT's method comparison: MetaMathQA -> GSM8K", model=_MMQA["model_id"], params=3.2e9,
    root="peft-metamathqa",
    tasks=(Task("gsm8k", dict(dataset="{root}"), n_train=int(0.938 * 395000), n_eval=50 + 1319, tokens=210,
                new_tokens=metamathqa.MAX_NEW_TOKENS),),
    settings=dict(objective="sft", prompt_column="query", answer_column="response", prompt_template="peft-metamathqa",
                  metric="gsm8k", r=32, alpha=64.0, targets="q,v", epochs=None, steps=_MMQA["max_steps"],
                  batch_size=_MMQA["batch_size"], eval_batch_size=_MMQA["batch_size_eval"],
                  max_length=_MMQA["max_seq_length"], lr_scheduler=_MMQA["lr_scheduler"],
                  weight_decay=_MMQA["optimizer_kwargs"]["weight_decay"], warmup_ratio=metamathqa.WARMUP_RATIO,
                  bf16=_MMQA["dtype"] == "bfloat16", gradient_checkpointing=_MMQA["use_gc"]),
    lrs=(_MMQA["optimizer_kwargs"]["lr"], 2e-4, 4e-4), seeds=(0, 1, 2), methods=("hora", "lora"),
    fetch="hf download meta-math/MetaMathQA --repo-type dataset --local-dir peft-metamathqa/MetaMathQA && "
          "hf download openai/gsm8k --repo-type dataset --local-dir peft-metamathqa/gsm8k",
    peft_results=True,
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (GLUE, COMMONSENSE, VTAB1K, METAMATHQA)}


def benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise HoraError(f"unknown benchmark preset '{name}': choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


@dataclass
class Plan:
    """What ``hora study --preset NAME --dry-run`` prints: every run (task, method, lr, seed), then each task's
    number of runs and estimated GPU-hours, and the totals."""

    benchmark: Benchmark
    rows: list[tuple[str, int, float]] = field(default_factory=list)  # (task, runs, GPU-hours of all its runs)

    @property
    def runs(self) -> int:
        return sum(r for _, r, _ in self.rows)

    @property
    def hours(self) -> float:
        return sum(h for _, _, h in self.rows)

    def lines(self) -> list[str]:
        b = self.benchmark
        out = [f"{b.title}: model {b.model}; methods {', '.join(b.methods)}; seeds {', '.join(map(str, b.seeds))} "
               f"(lr tried on {', '.join(map(str, b.tune_seeds))}); lrs {', '.join(f'{x:g}' for x in b.lrs)}",
               "", f"{'task':<22} {'method':<16} {'lr':>8} {'seed':>4}"]
        out += [f"{task:<22} {method:<16} {'chosen' if lr is None else f'{lr:g}':>8} {seed:>4}"
                for task, _, _ in self.rows for method, lr, seed in b.runs()]
        out += ["(chosen: the lr with the best mean validation score on the tuning seeds)", "",
                f"{'task':<22} {'runs':>5} {'GPU-h':>8}"]
        out += [f"{task:<22} {runs:>5} {hours:>8.1f}" for task, runs, hours in self.rows]
        out.append(f"{'total':<22} {self.runs:>5} {self.hours:>8.1f}  (one H200 in bfloat16; basis: "
                   "hora.experiments.grid.presets, within a factor of about 2)")
        return out


def plan(name: str, only: list[str] | None = None, protocol: dict | None = None) -> Plan:
    """The runs of preset ``name`` (optionally only the tasks in ``only``, with the ``protocol`` overrides of
    :meth:`Benchmark.with_protocol`) and their estimated GPU-hours."""
    b = benchmark(name).with_protocol(**(protocol or {}))
    tasks = [b.task(t) for t in only] if only else list(b.tasks)
    result = Plan(b)
    for task in tasks:
        runs = b.runs_per_task()
        result.rows.append((task.name, runs, runs * estimate_hours(b, task)))
    return result
