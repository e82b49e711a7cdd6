"""Resumable training on transformers' ``Trainer``: atomic checkpoints, an exact running loss, a stop on NaN.

``hora train --save-every N`` makes the Trainer checkpoint every N optimiser steps (``save_strategy="steps"``)
into ``OUTPUT/checkpoints/checkpoint-STEP``; ``hora train --resume`` continues from the latest one with
``Trainer.train(resume_from_checkpoint=...)``. A checkpoint holds what the Trainer saves (the adapter, or
the full model for ``--method full``; ``optimizer.pt``, ``scheduler.pt``, ``rng_state*.pth``,
``trainer_state.json`` with the global step, which fixes the data position) plus two files of ours:

    hora_run.json       the settings that must match for a resume (method, lr, data, seed, ...)
    hora_state*.json    the running sum of the per-step training losses (one file per process), so the
                        resumed run reports the same ``train_loss`` as an uninterrupted one

Atomic: the Trainer writes into its folder in place (no temporary name of its own), so :class:`HoraTrainer`
points it at ``OUTPUT/checkpoints/.partial/checkpoint-STEP``, fsyncs the files, and renames the folder
into ``OUTPUT/checkpoints/`` only when complete. A run killed while saving leaves at most a
``.partial`` folder, which ``--resume`` ignores and the next save replaces.

Loading: the Trainer reads ``optimizer.pt``, ``scheduler.pt`` and ``rng_state*.pth`` (written with
``torch.save``) with ``torch.load(..., weights_only=True)``, i.e. no pickled code runs; the adapter is
safetensors. Resume only from checkpoints you wrote.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from hora import param_groups
from hora.experiments.training.train_config import TrainConfig
from hora.io import atomic_write_json, move_into_place

CHECKPOINTS = "checkpoints"
STAGING = ".partial"
RUN_FILE = "hora_run.json"
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


class NonFiniteLossError(RuntimeError):
    """The training loss (or a trained parameter) became NaN or infinite at ``step``."""

    def __init__(self, step: int, value: float, what: str = "training loss"):
        super().__init__(f"{what} is {value} at step {step}")
        self.step, self.value, self.what = step, value, what


def state_file(process_index: int, world_size: int) -> str:
    return "hora_state.json" if world_size <= 1 else f"hora_state_{process_index}.json"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints in ``folder`` (``checkpoint-STEP``, not ``.partial``), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


class HoraTrainerMixin:
    """What every trainer of the harness adds to a transformers ``Trainer`` (subclass): HoRA's optimizer groups,
    atomic checkpoints, an exact running sum of the step losses, and a stop on NaN/inf. Mixed into
    :class:`HoraTrainer` (``Trainer``, classification) and into ``hora.experiments.training.sft.HoraSFTTrainer`` (TRL's
    ``SFTTrainer``, generation); it goes first in the bases, so its methods wrap the trainer's own.

    ``stop_on_nan``: raise :class:`NonFiniteLossError` at the first non-finite loss (Trainer's default,
    ``logging_nan_inf_filter``, silently replaces it in the logs and trains on). Before each checkpoint
    the trainable parameters are checked too, so a saved checkpoint is always finite ("last good").
    """

    def __init__(self, *args, run_config: dict | None = None, stop_on_nan: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.run_config = run_config or {}
        self.stop_on_nan = stop_on_nan
        self.loss_sum = 0.0  # float64 sum of training_step losses since step 0 (restored on resume)
        self._staging: str | None = None

    # ---------------------------------------------------------------- optimizer
    def create_optimizer(self, model=None):
        """AdamW over :func:`hora.param_groups` (HoRA's shared generator at ``lr * generator_lr_ratio``),
        built here rather than passed in, so that Trainer builds it after wrapping the model (FSDP refuses
        an optimizer passed to ``Trainer``)."""
        if self.optimizer is None:
            import torch

            groups = param_groups(self.model, self.args.learning_rate, self.args.weight_decay)
            self.optimizer = torch.optim.AdamW(groups, betas=(self.args.adam_beta1, self.args.adam_beta2),
                                               eps=self.args.adam_epsilon)
        return self.optimizer

    # ---------------------------------------------------------------- loss
    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        value = float(loss.detach())
        if self.stop_on_nan and not math.isfinite(value):
            raise NonFiniteLossError(self.state.global_step + 1, value)
        self.loss_sum += value
        return loss

    def mean_train_loss(self) -> float:
        """Mean per-step training loss over the whole run (all processes), resumed or not."""
        total = self.loss_sum
        if self.args.world_size > 1:
            import torch

            total = float(self.accelerator.reduce(torch.tensor(total, dtype=torch.float64,
                                                               device=self.args.device), reduction="mean"))
        return total / max(int(self.state.global_step), 1)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Trainer's log, with the end-of-training ``train_loss`` taken over the whole run: after a resume,
        Trainer's own value covers only the steps since the resume, so the line printed on screen would
        disagree with metrics.json. Called on every process (the mean is reduced across them)."""
        if "train_loss" in logs and "train_runtime" in logs:
            logs = {**logs, "train_loss": self.mean_train_loss()}
        super().log(logs, start_time)

    def restore_loss(self, checkpoint: str | Path) -> None:
        path = Path(checkpoint) / state_file(self.args.process_index, self.args.world_size)
        if path.is_file():
            self.loss_sum = float(json.loads(path.read_text())["loss_sum"])

    # ---------------------------------------------------------------- checkpoints
    def _get_output_dir(self, trial) -> str:
        return self._staging or super()._get_output_dir(trial)

    def _check_finite_parameters(self) -> None:
        import torch

        for name, param in self.model.named_parameters():
            if param.requires_grad and not bool(torch.isfinite(param.detach()).all()):
                raise NonFiniteLossError(self.state.global_step, float("nan"), what=f"parameter {name}")

    def _save_checkpoint(self, model, trial) -> None:
        if self.stop_on_nan:
            self._check_finite_parameters()
        root = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = root / STAGING
        staged, final = staging_root / name, root / name
        main = self.args.should_save
        if main:
            shutil.rmtree(staged, ignore_errors=True)  # left by a run killed while saving
        self.accelerator.wait_for_everyone()
        self._staging = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        staged.mkdir(parents=True, exist_ok=True)
        with open(staged / state_file(self.args.process_index, self.args.world_size), "w") as fh:
            json.dump({"loss_sum": self.loss_sum, "global_step": int(self.state.global_step)}, fh)
        if main:
            atomic_write_json(staged / RUN_FILE, self.run_config)
        self.accelerator.wait_for_everyone()
        if main:
            move_into_place(staged, final)  # replaces the same step saved before (a resume from the last one)
            rotate_checkpoints(output_dir=str(root), save_total_limit=self.args.save_total_limit)
        self.accelerator.wait_for_everyone()


class HoraTrainer(HoraTrainerMixin, Trainer):
    """transformers' ``Trainer`` with :class:`HoraTrainerMixin`: the trainer of the classification runs.

    A classification (or regression) loss is a mean over the examples of a micro-batch, never scaled for gradient
    accumulation by the model, so Trainer divides it by ``--gradient-accumulation-steps`` (it would otherwise
    assume a model that takes loss keywords scales it itself, and sum the micro-batches' means).
    """

    loss_is_scaled_for_ga = False


def is_final(checkpoint: Path) -> bool:
    """Whether the checkpoint is the last step of its run (its trainer_state.json says so)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int(state.get("global_step", 0)) >= int(state.get("max_steps", 0)) > 0


def load_final(trainer: HoraTrainerMixin, checkpoint: Path) -> None:
    """Load a finished run's weights and state from its final checkpoint, without a training step."""
    from transformers.trainer_callback import TrainerState

    trainer._load_from_checkpoint(str(checkpoint))  # the Trainer's own loader (adapter or full model)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    trainer.restore_loss(checkpoint)


def check_resumable(checkpoint: Path, cfg: TrainConfig) -> None:
    """Raise HoraError when the checkpoint was written by a run with other trajectory settings."""
    from hora.experiments.errors import HoraError

    path = checkpoint / RUN_FILE
    if not path.is_file():
        raise HoraError(f"{checkpoint} has no {RUN_FILE}: it was not written by 'hora train --save-every'")
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise HoraError(f"{path} is not valid JSON; delete {checkpoint} and resume from an earlier one") from None
    diffs = cfg.differences(old)
    if diffs:
        raise HoraError(f"cannot resume from {checkpoint}: it was written with other settings ({'; '.join(diffs)}); "
                        "rerun with the original options or start afresh in another --output")
