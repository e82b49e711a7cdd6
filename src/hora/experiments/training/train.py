"""One training run on transformers' ``Trainer``, in steps: the base model and the examples encoded for it
(:mod:`hora.experiments.training.inputs`), the data source's splits (:mod:`hora.experiments.data.datasource`), the
adapted model (:func:`adapted_model`), training and scores (:func:`fit`: :func:`training_arguments`,
:func:`make_trainer`, :func:`run_training`, :func:`evaluate`), the run's record (:func:`run_metrics`) and what it
leaves (:mod:`hora.experiments.training.outputs`).

Two objectives (``--objective``): ``classify`` trains a new classification head with the adapter
(:class:`~hora.experiments.training.checkpoints.HoraTrainer`); ``sft`` trains a decoder to generate the answer after a
prompt, through TRL's ``SFTTrainer`` (:mod:`hora.experiments.training.sft`), and scores the exact match of the greedy
answer. Both share the data, split and subsample, the method's adapter, the ``TrainingArguments``, the
trainer mixin (optimizer groups, checkpoints, NaN stop) and the outputs below.

The run is deterministic given its seed (on one device): the seed fixes the head and adapter
initialisation, the data order, dropout and the data-fraction subsample. The split into train /
validation / test depends on ``split_seed`` only (see :mod:`hora.experiments.data.datasource`).

Outputs in ``output``:
    adapter_config.json, adapter_model.safetensors   the adapter (``save_pretrained``); full model for ``full``
    README.md                                         a model card (:mod:`hora.experiments.methods.portable`)
    metrics.json                                      accuracy (test), val_accuracy, trainable_params, ...,
                                                      plus what ``hora export`` needs to rebuild the base model;
                                                      for sft, accuracy and val_accuracy are exact-match rates;
                                                      for a regression, pearson and spearman (and val_*) instead;
                                                      written right after training, then again with the
                                                      optional steps' results (``missing``: those that failed)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hora.experiments import paths
from hora.experiments.console import quiet
from hora.experiments.data import datasource, tasks
from hora.experiments.errors import HoraError, HoraWarning, TrainingInterrupted
from hora.experiments.methods import build, named_variants
from hora.experiments.models import loaders, qlora
from hora.experiments.scoring import evaluation
from hora.experiments.scoring.evaluation import answer_score, generation_budget
from hora.experiments.training import devices, outputs
from hora.experiments.training.inputs import (
    BaseModel,
    Encoded,
    encode_splits,
    load_test_sets,
    resolve_base_model,
    warn_if_many_epochs,
)
from hora.experiments.training.train_config import RECORDED, TRAJECTORY, TrainConfig, world_size


def check_output(cfg: TrainConfig) -> Path:
    """Check ``cfg.output`` before any work: a folder that can be written and holds no run, unless
    ``cfg.overwrite`` (replace it) or ``cfg.resume`` (continue it) says what to do with the one there."""
    return paths.check_train_output(cfg.output, overwrite=cfg.overwrite, resume=cfg.resume)


def _cpu_distributed() -> bool:
    """Launched with several processes (torchrun / accelerate launch) on a machine without CUDA."""
    import torch

    return world_size() > 1 and not torch.cuda.is_available()


def warn_if_fsdp_falls_back(cuda: bool) -> None:
    """A HoraWarning when ``accelerate launch --use_fsdp`` asked for FSDP on a machine without CUDA:
    Accelerate then runs plain DDP (every process holds the whole model) without saying so."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true") and not cuda:
        warnings.warn("FSDP was requested (accelerate --use_fsdp) but Accelerate does not shard on CPU: this run "
                      "is plain DDP, every process holds the whole model (docs/operations.md, 'Scaling out')",
                      HoraWarning, stacklevel=2)


def adapted_model(cfg: TrainConfig, data: tasks.TaskData, base: BaseModel):
    """(model, info): the base model with the method's adapter (and a fresh head unless ``sft``), seeded first."""
    from transformers import set_seed

    set_seed(cfg.seed)
    bits = qlora.quantization_of(vars(cfg))
    model = loaders.load_model(base.ref, data.kind, data.label_names, cfg.objective, base.revision, data.regression,
                              bits)
    if bits is not None:
        model = qlora.prepare(model)
    heads = loaders.head_module_names(model) if cfg.objective != "sft" else []  # sft: the LM head is the model's
    return build.build_adapted_model(
        cfg.method, model, r=cfg.r, alpha=cfg.alpha, dropout=cfg.dropout, hidden=cfg.hidden,
        projections=build.parse_projections(cfg.targets), kind=data.kind, head_modules=heads,
        objective=cfg.objective, total_steps=cfg.steps if cfg.epochs is None else None)


def training_arguments(cfg: TrainConfig, output_dir: Path, n_train: int, save_every: int | None,
                       kind: str) -> dict:
    """The ``TrainingArguments`` keywords of a run (shared by both objectives' trainers)."""
    import torch

    max_steps = -1 if cfg.epochs is not None else int(cfg.steps)
    planned = max_steps if max_steps > 0 else math.ceil(math.ceil(n_train / cfg.batch_size) * cfg.epochs)
    return dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        num_train_epochs=cfg.epochs if cfg.epochs is not None else 1.0,
        # the batch sizes are global: each batch (sampled and padded as in a single process) is split
        # across the processes, so a run means the same experiment whatever the number of processes; with
        # accumulation, the batch of one optimiser step is cut into micro-batches
        per_device_train_batch_size=cfg.batch_size // cfg.gradient_accumulation_steps,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        per_device_eval_batch_size=math.ceil(cfg.eval_batch_size / world_size()) * world_size(),  # splits evenly
        accelerator_config={"split_batches": True},
        # every loss here is a mean over the examples of the batch; with True, Trainer would multiply
        # it by the number of processes (meant for token-summed losses), doubling loss and gradient
        average_tokens_across_devices=False,
        learning_rate=cfg.resolved_lr(),
        weight_decay=cfg.weight_decay,
        warmup_steps=int(cfg.warmup_ratio * planned),
        lr_scheduler_type=cfg.lr_scheduler,
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        activation_checkpointing=cfg.gradient_checkpointing,  # (transformers 5's name for gradient checkpointing)
        # non-reentrant: works with a frozen base model, whose inputs need no gradient
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        logging_steps=max(1, planned // 10),
        save_strategy="steps" if save_every else "no",
        save_steps=save_every or 500,
        save_total_limit=cfg.keep_checkpoints,
        eval_strategy="no",
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=devices.dataloader_workers(cfg.dataloader_workers, kind),  # training and evaluation
        dataloader_pin_memory=torch.cuda.is_available(),
        # under torchrun without a GPU, Accelerate sets up multi-CPU DDP (gloo) only when told to use the
        # CPU; otherwise every process would silently train alone (world size 1). bf16 autocast on a CPU
        # must be told so too (transformers refuses it otherwise)
        use_cpu=_cpu_distributed() or (cfg.bf16 and not torch.cuda.is_available()),
        remove_unused_columns=False,
        label_names=["labels"],
        # text: batches of similar length (seeded), so little compute goes to padding
        train_sampling_strategy="group_by_length" if kind == "text" else "random",
    )


def make_trainer(cfg: TrainConfig, model, encoded: Encoded, arguments: dict, callbacks: Sequence, sft=None):
    """The run's trainer: both mix in HoraTrainerMixin (AdamW over hora.param_groups with the shared generator
    at lr x generator_lr_ratio, atomic checkpoints, exact train_loss across resumes, stop at a NaN/inf loss)."""
    from transformers import DataCollatorWithPadding, TrainingArguments

    from hora.experiments.training import checkpoints

    args = sft.arguments(arguments, encoded.max_length) if sft is not None else TrainingArguments(**arguments)
    devices.one_gpu_per_process(args)  # never nn.DataParallel over the GPUs of one process
    shared = dict(model=model, args=args, run_config=cfg.settings((TRAJECTORY,)), stop_on_nan=cfg.stop_on_nan,
                  callbacks=list(callbacks))
    if sft is not None:  # TRL takes the tokens of the prompts and answers (sft.encode), and pads them itself
        trainer = sft.HoraSFTTrainer(train_dataset=encoded.train.dataset(), processing_class=encoded.tokenizer,
                                     **shared)
    else:
        collator = DataCollatorWithPadding(encoded.tokenizer) if encoded.tokenizer is not None else None
        trainer = checkpoints.HoraTrainer(train_dataset=encoded.train, data_collator=collator, **shared)
    quiet.configure_progress(trainer, cfg.progress)  # a bar on a terminal, else a line per logging interval
    return trainer


def resume_point(cfg: TrainConfig) -> tuple[Path | None, int | None]:
    """(checkpoint to resume from or None, checkpoint interval): found and checked before any heavy work; with
    ``--overwrite`` the replaced run's checkpoints are removed (they must not be resumed later)."""
    from hora.experiments.training import checkpoints

    ckpt_root = Path(cfg.output) / checkpoints.CHECKPOINTS
    if not cfg.resume:
        if cfg.overwrite and ckpt_root.is_dir():
            shutil.rmtree(ckpt_root)
        return None, cfg.save_every
    resume_from = checkpoints.latest_checkpoint(ckpt_root)
    if resume_from is None:
        raise HoraError(f"--resume: no checkpoint in {ckpt_root}; start the run with --save-every N "
                        "(or replace the run there with --overwrite)")
    checkpoints.check_resumable(resume_from, cfg)
    save_every = cfg.save_every
    if save_every is None:  # keep saving as the interrupted run did
        state = json.loads((resume_from / "trainer_state.json").read_text())
        save_every = int(state.get("save_steps") or 0) or None
    return resume_from, save_every


def run_training(cfg: TrainConfig, trainer, resume_from: Path | None, save_every: int | None) -> float:
    """Train (or, for a finished checkpoint, load its result); the seconds it took. Ctrl-C and a NaN loss
    become :class:`TrainingInterrupted` / a one-line HoraError naming the last checkpoint."""
    from hora.experiments.training import checkpoints

    ckpt_root = Path(cfg.output) / checkpoints.CHECKPOINTS
    if resume_from is not None:
        trainer.restore_loss(resume_from)
        if cfg.progress and trainer.is_world_process_zero():
            print(f"hora: resuming from {resume_from}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        if resume_from is not None and checkpoints.is_final(resume_from):
            # the run had finished: Trainer would take one step too many, so only load its result
            checkpoints.load_final(trainer, resume_from)
        else:
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            step=int(trainer.state.global_step), save_every=save_every, output=cfg.output,
            checkpoint=checkpoints.latest_checkpoint(ckpt_root) if save_every else None) from None
    except checkpoints.NonFiniteLossError as exc:
        last = checkpoints.latest_checkpoint(ckpt_root) if save_every else None
        kept = (f"the last good checkpoint is {last}" if last is not None
                else "no checkpoint was saved" + ("" if save_every else " (use --save-every N)"))
        raise HoraError(f"{exc} (lr {cfg.resolved_lr():g}): training stopped (no adapter or metrics written); "
                        f"{kept}; try a lower --lr") from None
    return time.perf_counter() - t0


def evaluate(cfg: TrainConfig, trainer, data: tasks.TaskData, encoded: Encoded, sft=None) -> dict:
    """The run's scores by its metric (``--metric``, :meth:`TrainConfig.resolved_metric`) on validation, test and
    each further test set (``test_NAME``): a metric of the predictions (classification, regression) or of the
    greedily generated answers (``sft``, with the longest answer's token budget). With further test sets and no
    test split, the test score (``accuracy``) is their mean. Scores are fractions (correlations in [-1, 1]). A
    classification also records ``predicted_classes``, the number of distinct classes it predicted on test."""
    metric = cfg.resolved_metric(data.regression)
    extra: dict = {}
    if sft is not None:
        model = trainer.accelerator.unwrap_model(trainer.model)
        answers = [a for d in (data, *encoded.tests.values()) for a in (d.answers if hasattr(d, "answers") else [])]
        budget = generation_budget(metric, encoded.tokenizer, answers or data.answers)  # longest answer, or cap

        def score(ds, task=None):
            return answer_score(metric, model, encoded.tokenizer, ds.prompts, ds.answers, cfg.eval_batch_size,
                                budget, task), None
        extra["max_new_tokens"] = budget
    else:
        def score(ds, task=None):
            return evaluation.score_and_classes(trainer, ds, metric, data.regression)
    test, classes = score(encoded.test)
    scores = {"metric": metric, "accuracy": test, "val_accuracy": score(encoded.val)[0], **extra}
    if classes is not None:
        scores["predicted_classes"] = classes
    for name, ds in encoded.tests.items():
        scores[f"test_{name}"] = score(ds, name)[0]
    if encoded.tests and len(encoded.test) == 0:
        scores["accuracy"] = float(np.mean([scores[f"test_{name}"] for name in encoded.tests]))
    return scores


def train(cfg: TrainConfig, splits: tasks.Splits | None = None, callbacks: Sequence = ()) -> dict:
    """Run one training job; returns the metrics dict (also written to ``cfg.output``/metrics.json).

    ``splits`` (:func:`hora.experiments.data.datasource.load_splits` of the run's source) may be passed to reuse
    loaded data across the runs of a sweep; ``callbacks`` are extra ``transformers.TrainerCallback`` objects
    (e.g. :mod:`hora.experiments.training.dynamics`' update recorder).
    """
    check_output(cfg)
    source = cfg.data_source()
    base = resolve_base_model(cfg, source.kind)  # before torch and the Trainer load: a wrong --model fails at once
    import torch

    warn_if_fsdp_falls_back(torch.cuda.is_available())
    quiet.quiet_libraries()
    t_start = time.perf_counter()
    resume_from, save_every = resume_point(cfg)
    if splits is None:
        splits = datasource.load_splits(source)
    data = splits.data
    sft = None
    if cfg.objective == "sft":
        from hora.experiments.training import sft
    cfg.resolved_metric(data.regression)  # fail before training on a metric that does not fit the task
    indices = datasource.run_indices(splits, cfg.fraction, cfg.seed, cfg.max_eval_samples)
    encoded = encode_splits(cfg, data, indices, base, sft, load_test_sets(cfg, data))
    model, info = adapted_model(cfg, data, base)
    warn_if_many_epochs(cfg, len(encoded.train))
    fitted = fit(cfg, model, data, encoded, [*callbacks, *info["callbacks"]], resume_from, save_every, sft)
    metrics = run_metrics(cfg, base, data, encoded, model, info, fitted, sft is not None)
    metrics["total_seconds"] = round(time.perf_counter() - t_start, 3)
    return outputs.finish_run(cfg, model, metrics, writer=fitted.trainer.is_world_process_zero())


@dataclass
class Fitted:
    """A trained model's trainer, and what its training and evaluation measured."""

    trainer: Any
    train_seconds: float
    train_loss: float
    scores: dict
    eval_seconds: float
    steps: int


def fit(cfg: TrainConfig, model, data: tasks.TaskData, encoded: Encoded, callbacks: list,
        resume_from: Path | None, save_every: int | None, sft=None) -> Fitted:
    """Train ``model`` on the encoded examples and score it. The Trainer needs an output_dir: the checkpoints
    folder when saving (``--save-every``), else a scratch folder removed at the end (none with ``--save-every``,
    so a run killed hard leaves nothing in the temp dir)."""
    from hora.experiments.training.checkpoints import CHECKPOINTS

    scratch = None if save_every else Path(tempfile.mkdtemp(prefix="hora-trainer-"))
    try:
        arguments = training_arguments(cfg, scratch or Path(cfg.output) / CHECKPOINTS, len(encoded.train),
                                       save_every, data.kind)
        trainer = make_trainer(cfg, model, encoded, arguments, callbacks, sft)
        train_seconds = run_training(cfg, trainer, resume_from, save_every)
        t1 = time.perf_counter()
        scores = evaluate(cfg, trainer, data, encoded, sft)
        return Fitted(trainer, train_seconds, trainer.mean_train_loss(), scores, time.perf_counter() - t1,
                      int(trainer.state.global_step))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def run_metrics(cfg: TrainConfig, base: BaseModel, data: tasks.TaskData, encoded: Encoded, model, info: dict,
                fitted: Fitted, generative: bool) -> dict:
    """metrics.json's record of a trained run: its settings, scores, sizes, timings and where it ran."""
    import torch

    trainable, total = build.count_parameters(model)
    return {
        **cfg.settings(RECORDED),  # every setting that fixes the run or its scores, as given (lr resolved)
        **fitted.scores,
        "method": build.method_label(cfg.method),  # a PEFT config path: its folder's name
        "trainable_params": int(trainable),
        "total_params": int(total),
        "train_seconds": round(fitted.train_seconds, 3),
        "eval_seconds": round(fitted.eval_seconds, 3),
        "train_loss": float(fitted.train_loss),
        "fraction": float(cfg.fraction),
        "model": base.name,  # the resolved name, e.g. the default for the task
        "model_path": str(base.ref),
        "task": data.name,
        "kind": data.kind,
        "regression": data.regression,
        "label_names": [] if generative else list(data.label_names),  # sft: answers, not classes
        "dropped_rows": dict(data.dropped),  # rows left out of the source: empty text or label, by reason
        "steps": fitted.steps,  # the steps taken (set by --epochs when given)
        "n_train": len(encoded.train),
        "n_val": len(encoded.val),
        "n_test": len(encoded.test),
        "targets": info["targets"],  # the adapted modules' names
        "device": str(next(model.parameters()).device),
        "accelerator_memory_max": torch.cuda.max_memory_reserved() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "base_method": named_variants.resolve(cfg.method).method,  # a named variant counts as its base method
    }


