"""The settings of one training run, each defined once: its type, default, help text and role live in its
``TrainConfig`` field, and everything else derives from the field:

- the CLI options of ``hora train`` / ``hora compare`` (:mod:`hora.cli.options` reads ``help`` and ``commands``);
- which settings a checkpoint must share with the run that resumes it (role ``trajectory``: they fix the
  training trajectory) and which a finished run must share to be reused by a comparison (``trajectory`` and
  ``evaluation``: the latter change the scores, not the training);
- the settings recorded in every run's metrics.json (roles ``trajectory`` and ``evaluation``).

Each setting is checked once, when the config is built (``__post_init__``; ``dataclasses.replace`` builds
a new one and checks it again), so bad input fails with one line before any heavy work.

Adding a training option is one field here plus its use in :func:`hora.experiments.train.train`.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hora.experiments import methods, models, paths, quantization, tasks
from hora.experiments.errors import HoraError

TRAJECTORY = "trajectory"  # fixes what is trained: a resumed run must match it
EVALUATION = "evaluation"  # changes the reported scores only
RECORDED = (TRAJECTORY, EVALUATION)  # recorded in metrics.json; a reused finished run must match them
BOTH = ("train", "compare")
LR_SCHEDULERS = ("linear", "cosine", "constant")
OBJECTIVES = ("classify", "sft")


def setting(default: Any = MISSING, *, help: str, role: str | None = None, commands: tuple[str, ...] = BOTH,
            default_factory: Any = MISSING) -> Any:
    """A TrainConfig field with its help text, its role (``TRAJECTORY``, ``EVALUATION`` or None: how the
    run is carried out) and the CLI commands that offer it as an option."""
    return field(default=default, default_factory=default_factory,
                 metadata={"help": help, "role": role, "commands": commands})


METHOD_HELP = "hora, lora, dora, vera, full, or a named variant (see docs/results.md)."
MODEL_HELP = ("minilm (all-MiniLM-L6-v2 encoder, default for text), smollm2 (SmolLM2-135M-Instruct decoder, "
              "GQA), vit (small ViT pre-trained here by 'hora pretrain-vit'; default for images), "
              "or a local Hugging Face model folder.")
TASK_HELP = ("rotten_tomatoes (default; sentiment of 12.8k movie-review snippets), mnist (5k digits, "
             "adapts the ViT), fashion_mnist. Ignored when --data is given.")
DATA_HELP = ("Your own data: a .csv or .jsonl file, with text and label columns (see --text-column, "
             "--label-column), or with --objective sft prompt and answer columns (--prompt-column, --answer-column).")
OBJECTIVE_HELP = ("classify (default: a new linear head classifies each text) or sft (decoders only: the model "
                  "learns to generate the answer after a prompt, through TRL's SFTTrainer, loss on the answer only; "
                  "accuracy is then the exact-match rate of the greedy answer).")


@dataclass
class TrainConfig:
    """One run: a method on a task's data fraction, trained with AdamW through transformers' Trainer."""

    task: str = setting("rotten_tomatoes", help=TASK_HELP, role=TRAJECTORY)
    model: str | None = setting(None, help=MODEL_HELP, role=TRAJECTORY)
    data: str | None = setting(None, help=DATA_HELP, role=TRAJECTORY)
    text_column: str = setting("text", help="Text column of --data.", role=TRAJECTORY)
    label_column: str = setting("label", help="Label column of --data.", role=TRAJECTORY)
    objective: str = setting("classify", help=OBJECTIVE_HELP, role=TRAJECTORY)
    prompt_column: str = setting("prompt", help="Prompt column of --data with --objective sft.", role=TRAJECTORY)
    answer_column: str = setting("answer", help="Answer column of --data with --objective sft (the text to "
                                 "generate after the prompt, as written: start it with a space if the prompt "
                                 "does not end with one).", role=TRAJECTORY)
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
    batch_size: int = setting(32, help="Training batch size: the global batch, split across processes under "
                              "torchrun / accelerate launch.", role=TRAJECTORY, commands=(*BOTH, "dynamics"))
    eval_batch_size: int = setting(128, help="Evaluation batch size.", commands=())
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

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Every setting's check, with a one-line HoraError that names the option."""
        methods.check_method(self.method)
        if self.data is not None:
            paths.check_input_file(self.data, "data file")
        elif self.task not in tasks.TASKS:
            raise HoraError(f"unknown task '{self.task}'; choose one of: {', '.join(tasks.TASKS)} "
                            "(or pass --data FILE)")
        if self.model is not None and self.model not in models.MODELS and not Path(self.model).expanduser().is_dir():
            raise HoraError(f"unknown model '{self.model}': use one of {', '.join(models.MODELS)} or a local "
                            "model folder")
        if self.objective not in OBJECTIVES:
            raise HoraError(f"--objective must be one of {', '.join(OBJECTIVES)}, got '{self.objective}'")
        if self.objective == "sft":
            self._check_sft()
        quantization.check(vars(self))
        tasks.check_fraction(self.fraction)
        methods.parse_projections(self.targets)
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
        processes = world_size()
        if self.batch_size % processes:
            raise HoraError(f"--batch-size {self.batch_size} is the global batch, split across {processes} "
                            f"processes: make it a multiple of {processes}")

    def _check_sft(self) -> None:
        """--objective sft trains a decoder on text: refuse image tasks and encoders (the default model too)."""
        use = "use --model smollm2 or a local causal-LM folder"
        if importlib.util.find_spec("trl") is None:
            raise HoraError("--objective sft trains through TRL's SFTTrainer: pip install 'hora[trl]'")
        if self.data is None and self.task not in tasks.TEXT_TASKS:
            raise HoraError(f"--objective sft generates text: task '{self.task}' is images; use --task "
                            f"{' or '.join(tasks.TEXT_TASKS)} or --data FILE with prompt and answer columns")
        if self.model is None:
            raise HoraError(f"--objective sft needs a decoder and the default model, minilm, is an encoder: {use}")
        if self.model in models.MODELS:
            if self.model not in models.DECODER_MODELS:
                raise HoraError(f"--objective sft needs a decoder, and '{self.model}' is not one: {use}")
        elif not models.is_causal_lm(Path(self.model).expanduser()):
            raise HoraError(f"--objective sft needs a decoder, and {self.model} holds no causal LM (its config.json "
                            f"names no ...ForCausalLM architecture): {use}")

    def resolved_lr(self) -> float:
        return float(self.lr) if self.lr is not None else methods.default_lr(self.method)

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
    before the option existed) takes its default, and ``lr`` is resolved to the one used."""
    roles = tuple(roles)
    out = {f.name: values.get(f.name, _default(f)) for f in fields(TrainConfig) if f.metadata["role"] in roles}
    if "lr" in out and out["lr"] is None:
        out["lr"] = methods.default_lr(values.get("method", "hora"))
    return out


def world_size() -> int:
    """The number of processes the launcher (torchrun / accelerate launch) started; 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _at_least(minimum: int, **values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < minimum:
            raise HoraError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
