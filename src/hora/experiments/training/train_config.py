"""The settings of one training run, each defined once: its type, default, help text and role live in its
``TrainConfig`` field, and everything else derives from the field:

- the CLI options of ``hora train`` / ``hora compare`` (:mod:`hora.cli.options` reads ``help`` and ``commands``);
- which settings a checkpoint must share with the run that resumes it (role ``trajectory``: they fix the
  training trajectory) and which a finished run must share to be reused by a comparison (``trajectory`` and
  ``evaluation``: the latter change the scores, not the training);
- the settings recorded in every run's metrics.json (roles ``trajectory`` and ``evaluation``).

Each setting is checked once, when the config is built (``__post_init__``; ``dataclasses.replace`` builds
a new one and checks it again), so bad input fails with one line before any heavy work.

Adding a training option is one field here plus its use in :func:`hora.experiments.training.train.train`.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hora.experiments import paths
from hora.experiments.data import datasource, tasks
from hora.experiments.errors import HoraError, did_you_mean
from hora.experiments.methods import build
from hora.experiments.models import catalogue, qlora
from hora.experiments.scoring import evaluation, metrics

TRAJECTORY = "trajectory"  # fixes what is trained: a resumed run must match it
EVALUATION = "evaluation"  # changes the reported scores only
RECORDED = (TRAJECTORY, EVALUATION)  # recorded in metrics.json; a reused finished run must match them
# metrics.json's list of the optional steps still to run (diagnostics, ...): written with a run's first save, gone
# once they ran; a grid retrains a run stopped in between, so that every finished run has the same metrics
PENDING = "pending"
BOTH = ("train", "compare")
LR_SCHEDULERS = ("linear", "cosine", "constant")
OBJECTIVES = ("classify", "sft")


def setting(default: Any = MISSING, *, help: str, role: str | None = None, commands: tuple[str, ...] = BOTH,
            default_factory: Any = MISSING, aliases: tuple[str, ...] = ()) -> Any:
    """A TrainConfig field with its help text, its role (``TRAJECTORY``, ``EVALUATION`` or None: how the
    run is carried out), the CLI commands that offer it as an option and other flags for it (``aliases``,
    e.g. an older name)."""
    return field(default=default, default_factory=default_factory,
                 metadata={"help": help, "role": role, "commands": commands, "aliases": aliases})


METHOD_HELP = ("hora, lora, dora, vera, full, a named variant (see docs/results.md), another PEFT method by name "
               "(loha, lokr, ia3, adalora, fourierft, ...: 'hora methods' lists them) or a PEFT adapter config "
               "(a folder holding adapter_config.json, or the JSON file; results carry the folder's name).")
MODEL_HELP = ("minilm (all-MiniLM-L6-v2 encoder, default for text), smollm2 (SmolLM2-135M-Instruct decoder, "
              "GQA), vit (small ViT pre-trained here by 'hora pretrain-vit'; default for images), "
              "a local Hugging Face model folder, or a Hub ID (ORG/NAME, see --revision; a timm model's too, "
              "e.g. timm/vit_base_patch16_224.augreg2_in21k_ft_in1k). Offline (HF_HUB_OFFLINE=1) a Hub ID is "
              "read from the Hugging Face cache.")
TASK_HELP = ("rotten_tomatoes (default; sentiment of 12.8k movie-review snippets), mnist (5k digits, "
             "adapts the ViT), fashion_mnist. Ignored when --dataset or --data is given.")
DATA_HELP = "A local .csv, .tsv or .jsonl file: the same as --dataset FILE."
DATASET_HELP = ("Your own data through the datasets library: a Hub dataset ID (ORG/NAME, see --dataset-config), a "
                "local dataset folder (data files, or save_to_disk), or a .csv/.tsv/.jsonl/.json/.parquet file. "
                "Columns: --text-columns (and --label-column), --image-column, or with --objective sft "
                "--prompt-column and --answer-column. Splits: --train-split, --validation-split, --test-split; a "
                "missing one is taken from the train split by the fixed split rule (docs/method.md).")
SPLIT_HELP = "Split of --dataset {} ('none': take it from the train split by the fixed split rule)."
METRIC_HELP = ("The score that chooses the learning rate and is reported: accuracy, f1, matthews (classification; "
               "default accuracy), pearson, spearman (regression; default pearson); with --objective sft exact "
               "(default: the greedy answer equals the answer), llm-adapters (the answer word read from the "
               "generation by LLM-Adapters' rule) or gsm8k (the final number read by PEFT's MetaMathQA rule).")
OBJECTIVE_HELP = ("classify (default: a new linear head classifies each text) or sft (decoders only: the model "
                  "learns to generate the answer after a prompt, through TRL's SFTTrainer, loss on the answer only; "
                  "accuracy is then the exact-match rate of the greedy answer).")


@dataclass
class TrainConfig:
    """One run: a method on a task's data fraction, trained with AdamW through transformers' Trainer."""

    task: str = setting("rotten_tomatoes", help=TASK_HELP, role=TRAJECTORY)
    model: str | None = setting(None, help=MODEL_HELP, role=TRAJECTORY)
    revision: str | None = setting(None, help="Revision of a Hub --model: a branch, tag or commit (default: main).",
                                   role=TRAJECTORY)
    data: str | None = setting(None, help=DATA_HELP, role=TRAJECTORY)
    dataset: str | None = setting(None, help=DATASET_HELP, role=TRAJECTORY)
    dataset_config: str | None = setting(None, help="Configuration of a Hub --dataset (e.g. sst2 of glue).",
                                         role=TRAJECTORY)
    train_split: str = setting("train", help="Split of --dataset to train on.", role=TRAJECTORY)
    validation_split: str = setting("validation", help=SPLIT_HELP.format("for choices such as the learning rate"),
                                    role=TRAJECTORY)
    test_split: str = setting("test", help=SPLIT_HELP.format("that scores the run"), role=TRAJECTORY)
    text_columns: str = setting("text", help="Text column of the data, or two separated by a comma for sentence "
                                "pairs (tokenised as a pair, e.g. sentence1,sentence2).", role=TRAJECTORY,
                                aliases=("--text-column",))
    label_column: str = setting("label", help="Label column of the data: classes (names from a ClassLabel "
                                "feature), or float targets for a regression (e.g. STS-B: one output, mean squared "
                                "error, scored by --metric pearson or spearman).", role=TRAJECTORY)
    image_column: str | None = setting(None, help="Image column of --dataset (any image feature; read by the "
                                       "model's image processor). Makes the task an image task.", role=TRAJECTORY)
    objective: str = setting("classify", help=OBJECTIVE_HELP, role=TRAJECTORY)
    prompt_column: str = setting("prompt", help="Prompt column of --data with --objective sft.", role=TRAJECTORY)
    answer_column: str = setting("answer", help="Answer column of --data with --objective sft (the text to "
                                 "generate after the prompt, as written: start it with a space if the prompt "
                                 "does not end with one).", role=TRAJECTORY)
    prompt_template: str | None = setting(None, help="With --objective sft: a named template that turns the prompt "
                                          "column into the prompt: llm-adapters (LLM-Adapters' instruction "
                                          "prompt) or peft-metamathqa (PEFT's MetaMathQA query template), "
                                          "docs/benchmarks.md. Default: the prompt column as written.",
                                          role=TRAJECTORY)
    metric: str | None = setting(None, help=METRIC_HELP, role=EVALUATION)
    test_sets: str | None = setting(None, help="Further test sets, each scored after training like the test split: "
                                    "a comma list of NAME=SOURCE (a file, folder or Hub dataset ID with the same "
                                    "columns; its test split, else its only split); their scores are recorded as "
                                    "test_NAME. With them the fixed split rule takes no test split from train, and "
                                    "with no test split their mean is the run's test score.", role=EVALUATION)
    load_in_4bit: bool = setting(False, help="Load the decoder's linear layers in 4 bits (QLoRA: nf4, double "
                                 "quantisation, bfloat16 compute on CUDA, float32 on CPU; needs hora[quant]).",
                                 role=TRAJECTORY)
    load_in_8bit: bool = setting(False, help="Load the decoder's linear layers in 8 bits (bitsandbytes LLM.int8(); "
                                 "needs hora[quant]).", role=TRAJECTORY)
    method: str = setting("hora", help=METHOD_HELP, role=TRAJECTORY, commands=("train",))
    fraction: float = setting(1.0, help="Fraction of the training split to train on, in (0, 1].",
                              role=TRAJECTORY, commands=("train", "dynamics"))
    seed: int = setting(0, help="Seed of initialisation, data order and the fraction's subsample.",
                        role=TRAJECTORY, commands=("train", "dynamics"))
    split_seed: int = setting(0, help="Seed of the fixed train/validation/test split.", role=TRAJECTORY)
    lr: float | None = setting(None, help="Learning rate (default per method: 1e-3 adapters, 1e-2 vera, "
                               "5e-5 full).", role=TRAJECTORY, commands=("train",))
    r: int = setting(8, help="Rank.", role=TRAJECTORY)
    alpha: float = setting(16.0, help="Scaling alpha (update scaled by alpha / r).", role=TRAJECTORY)
    hidden: int | None = setting(None, help="HoRA generator width p (default: the library's).", role=TRAJECTORY)
    dropout: float = setting(0.0, help="Adapter dropout.", role=TRAJECTORY)
    targets: str = setting("q,v", help="Attention projections to adapt, a comma list of q,k,v,o.", role=TRAJECTORY)
    steps: int | None = setting(300, help="Optimiser steps (ignored when --epochs is given).", role=TRAJECTORY,
                                commands=(*BOTH, "dynamics"))
    epochs: float | None = setting(None, help="Train for this many epochs instead of --steps.", role=TRAJECTORY)
    batch_size: int = setting(32, help="Training batch size: the global batch of one optimiser step, split across "
                              "processes under torchrun / accelerate launch and into --gradient-accumulation-steps "
                              "micro-batches.", role=TRAJECTORY, commands=(*BOTH, "dynamics"))
    gradient_accumulation_steps: int = setting(1, help="Split each batch into this many micro-batches, one forward "
                                               "and backward each, to save memory (per-device batch = "
                                               "batch-size / processes / this); the same optimiser steps.")
    gradient_checkpointing: bool = setting(False, help="Recompute activations in the backward pass instead of "
                                           "keeping them: less memory, about a third more compute.")
    bf16: bool = setting(False, help="Mixed precision in bfloat16 (autocast; weights and optimiser stay float32). "
                         "CUDA, or a CPU that transformers allows.", role=TRAJECTORY)
    fp16: bool = setting(False, help="Mixed precision in float16 with loss scaling (CUDA only).", role=TRAJECTORY)
    eval_batch_size: int = setting(128, help="Evaluation batch size.", commands=())
    dataloader_workers: int | None = setting(None, help="DataLoader worker processes that read and decode the "
                                             "examples beside training and evaluation. Default: for images on a "
                                             "GPU, the run's CPUs but one (at most 8); else 0 (texts are tokenised "
                                             "before training; on CPUs workers would take the cores that compute).")
    max_length: int = setting(64, help="Maximum tokens per text (with --objective sft: per prompt and answer; "
                              "a longer prompt loses its start).", role=TRAJECTORY)
    warmup_ratio: float = setting(0.06, help="Fraction of the steps spent warming the learning rate up from 0.",
                                  role=TRAJECTORY)
    weight_decay: float = setting(0.0, help="AdamW weight decay.", role=TRAJECTORY)
    lr_scheduler: str = setting("linear", help=f"Learning-rate schedule after warm-up: {', '.join(LR_SCHEDULERS)}.",
                                role=TRAJECTORY)
    max_eval_samples: int | None = setting(None, help="Evaluate on only N random validation/test examples "
                                           "(quick checks; not for reported numbers).", role=EVALUATION)
    output: str = setting("runs/train", help="Folder for the adapter and metrics.json.", commands=("train",))
    save: bool = setting(True, help="Save the adapter (save_pretrained) into --output.", commands=("train",))
    progress: bool = setting(True, help="Show the training progress bar.", commands=("train",))
    save_every: int | None = setting(None, help="Checkpoint (adapter, optimizer, scheduler, RNG, data position) "
                                     "every N steps into OUTPUT/checkpoints, so the run can be resumed.",
                                     commands=("train",))
    resume: bool = setting(False, help="Continue from the latest checkpoint in OUTPUT/checkpoints (same options "
                           "as the interrupted run).", commands=("train",))
    overwrite: bool = setting(False, help="Replace the run already in --output (its adapter, metrics and "
                              "checkpoints); without it such a folder is refused.", commands=("train",))
    keep_checkpoints: int = setting(2, help="With --save-every: how many of the newest checkpoints to keep.",
                                    commands=("train",))
    stop_on_nan: bool = setting(True, help="Stop with an error at the first NaN/inf training loss.", commands=())

    def data_source(self) -> datasource.DataSource:
        """The source these settings name: ``--dataset`` or ``--data`` (a local file), else ``--task``, with the
        columns' roles and the split rule's settings."""
        return datasource.DataSource(
            task=self.task, dataset=self.dataset or self.data, config=self.dataset_config,
            text_columns=datasource.parse_columns(self.text_columns), label_column=self.label_column,
            image_column=self.image_column, prompt_column=self.prompt_column, answer_column=self.answer_column,
            objective=self.objective, train_split=self.train_split, validation_split=self.validation_split,
            test_split=self.test_split, split_seed=self.split_seed, prompt_template=self.prompt_template,
            test_from_train=self.test_sets is None)

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Every setting's check, with a one-line HoraError that names the option."""
        build.check_method(self.method, self.epochs)
        self._check_data()
        if self.model is not None and self.model not in catalogue.MODELS:
            catalogue.check_not_misspelt(self.model)
            _check_hub_or_folder(self.model, "model", f"use one of {', '.join(catalogue.MODELS)}, a local model folder "
                                 "or a Hub ID (ORG/NAME)")
        if self.objective not in OBJECTIVES:
            raise HoraError(f"--objective must be one of {', '.join(OBJECTIVES)}, got '{self.objective}'")
        if self.objective == "sft":
            self._check_sft()
        self._check_scoring()
        qlora.check(vars(self))
        tasks.check_fraction(self.fraction)
        build.parse_projections(self.targets)
        _at_least(1, r=self.r, batch_size=self.batch_size, eval_batch_size=self.eval_batch_size,
                  max_length=self.max_length, save_every=self.save_every, keep_checkpoints=self.keep_checkpoints,
                  max_eval_samples=self.max_eval_samples, steps=self.steps if self.epochs is None else None)
        if self.epochs is not None and not self.epochs > 0:
            raise HoraError(f"--epochs must be > 0, got {self.epochs}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise HoraError(f"--lr must be > 0, got {self.lr}")
        if not 0.0 <= self.dropout < 1.0:
            raise HoraError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise HoraError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise HoraError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise HoraError(f"--lr-scheduler must be one of {', '.join(LR_SCHEDULERS)}, got '{self.lr_scheduler}'")
        _at_least(1, gradient_accumulation_steps=self.gradient_accumulation_steps)
        _at_least(0, dataloader_workers=self.dataloader_workers)
        parts = world_size() * self.gradient_accumulation_steps
        if self.batch_size % parts:
            raise HoraError(f"--batch-size {self.batch_size} is the global batch, split across {world_size()} "
                            f"processes and {self.gradient_accumulation_steps} accumulation steps: make it a "
                            f"multiple of {parts}")
        self._check_precision()

    def _check_data(self) -> None:
        """One data source, named well: a built-in task, a --data file, or a --dataset."""
        if self.data is not None and self.dataset is not None:
            raise HoraError("--data FILE is the same as --dataset FILE: give one of them")
        if self.data is not None:
            paths.check_input_file(self.data, "data file")
        elif self.dataset is not None:
            _check_hub_or_folder(self.dataset, "dataset", "use a local dataset folder or file, or a Hub dataset ID "
                                 "(ORG/NAME)", files=True)
        elif self.task not in tasks.TASKS:
            raise HoraError(f"unknown task '{self.task}'; {did_you_mean(self.task, tasks.TASKS)}choose one of: "
                            f"{', '.join(tasks.TASKS)} "
                            "(or pass --dataset)")
        datasource.parse_columns(self.text_columns)
        if self.image_column is not None and self.objective == "sft":
            raise HoraError("--image-column makes an image task, and --objective sft generates text: drop one")

    def _check_precision(self) -> None:
        """--bf16 / --fp16: one of them; float16 needs CUDA (bfloat16 runs on CPUs too)."""
        if self.bf16 and self.fp16:
            raise HoraError("--bf16 and --fp16 are two mixed precisions: choose one")
        if self.fp16:
            import torch

            if not torch.cuda.is_available():
                raise HoraError("--fp16 needs a CUDA GPU and none is available; use --bf16 (CPUs support it) "
                                "or float32 (neither)")

    def _check_sft(self) -> None:
        """--objective sft trains a decoder on text: refuse image tasks and encoders (the default model too)."""
        use = "use --model smollm2, a causal LM's Hub ID or a local causal-LM folder"
        if importlib.util.find_spec("trl") is None:
            raise HoraError("--objective sft trains through TRL's SFTTrainer: pip install 'hora[trl]'")
        if self.data is None and self.dataset is None and self.task not in tasks.TEXT_TASKS:
            raise HoraError(f"--objective sft generates text: task '{self.task}' is images; use --task "
                            f"{' or '.join(tasks.TEXT_TASKS)} or --dataset with prompt and answer columns")
        if self.model is None:
            raise HoraError(f"--objective sft needs a decoder and the default model, minilm, is an encoder: {use}")
        if self.model in catalogue.MODELS:
            if self.model not in catalogue.DECODER_MODELS:
                raise HoraError(f"--objective sft needs a decoder, and '{self.model}' is not one: {use}")
        elif catalogue.is_local(self.model) and not catalogue.is_causal_lm(catalogue.read_config(self.model)):
            # (a Hub ID is checked when the run resolves it: reading its config may need the network)
            raise HoraError(f"--objective sft needs a decoder, and {self.model} holds no causal LM (its config.json "
                            f"names no ...ForCausalLM architecture): {use}")

    def _check_scoring(self) -> None:
        """--metric fits the objective; --prompt-template is a known template, with --objective sft;
        --test-sets is a list of NAME=SOURCE."""
        if self.metric is not None:
            scores = evaluation.ANSWER_METRICS if self.objective == "sft" else tuple(metrics.METRICS)
            if self.metric not in scores:
                raise HoraError(f"--metric {self.metric} does not score --objective {self.objective}: use one of "
                                f"{', '.join(scores)}")
        if self.prompt_template is not None:
            if self.objective != "sft":
                raise HoraError("--prompt-template makes prompts for --objective sft; drop it or add --objective sft")
            datasource.check_template(self.prompt_template)
        if self.test_sets is not None:
            datasource.parse_test_sets(self.test_sets)

    def resolved_metric(self, regression: bool) -> str:
        """--metric, or the default for the run: exact (sft), pearson (a regression), accuracy."""
        if self.metric is not None:
            return metrics.check_metric(self.metric, regression) if self.objective != "sft" else self.metric
        return "exact" if self.objective == "sft" else "pearson" if regression else "accuracy"

    def resolved_lr(self) -> float:
        return float(self.lr) if self.lr is not None else build.default_lr(self.method)

    def settings(self, roles: Iterable[str] = (TRAJECTORY,)) -> dict:
        """The settings with one of ``roles``, the learning rate resolved to the one used."""
        return settings_of(asdict(self), roles)

    def differences(self, saved: dict, roles: Iterable[str] = (TRAJECTORY,)) -> list[str]:
        """'name: saved -> now' for every setting of ``roles`` where a run saved with the settings ``saved``
        (a metrics.json's ``config``, a checkpoint's run file) differs from this config."""
        old, new = settings_of(saved, roles), self.settings(roles)
        return [f"{name}: {old[name]!r} -> {new[name]!r}" for name in new if old[name] != new[name]]


def settings_of(values: dict, roles: Iterable[str]) -> dict:
    """The settings of ``roles`` from a saved dict of TrainConfig values; a setting the dict lacks (saved
    before the option existed) takes its default (or its value under an older name), and ``lr`` is resolved to
    the one used."""
    roles = tuple(roles)
    out = {f.name: _saved(values, f) for f in fields(TrainConfig) if f.metadata["role"] in roles}
    if "lr" in out and out["lr"] is None:
        out["lr"] = build.default_lr(values.get("method", "hora"))
    return out


def _check_hub_or_folder(value: str, what: str, use: str, files: bool = False) -> None:
    """``value`` is an existing local folder (or file, with ``files``), or has the form of a Hub ID; a path that
    does not exist (it starts with / . ~ or has more than one /) is one line naming it."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(value).expanduser()
    if path.is_dir() or (files and path.is_file()):
        return
    if value.startswith(("/", ".", "~")) or value.count("/") > 1:
        raise HoraError(f"{what} not found: {path} ({use})")
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise HoraError(f"unknown {what} '{value}': {use}") from None


def world_size() -> int:
    """The number of processes the launcher (torchrun / accelerate launch) started; 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _saved(values: dict, f: Field) -> Any:
    """The value of setting ``f`` in a saved dict: under its name, else under an older name among its aliases
    (``--text-column`` saved ``text_column``), else its default."""
    for key in (f.name, *(a.lstrip("-").replace("-", "_") for a in f.metadata.get("aliases", ()))):
        if key in values:
            return values[key]
    return _default(f)


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _at_least(minimum: int, **values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < minimum:
            raise HoraError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
