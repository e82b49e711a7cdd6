"""One training run on transformers' ``Trainer``: data, split, method, train, evaluate, save.

Two objectives (``--objective``): ``classify`` trains a new classification head with the adapter
(:class:`~hora.experiments.checkpoints.HoraTrainer`); ``sft`` trains a decoder to generate the answer after a
prompt, through TRL's ``SFTTrainer`` (:mod:`hora.experiments.sft`), and scores the exact match of the greedy
answer. Both share the data, split and subsample, the method's adapter, the ``TrainingArguments``, the
trainer mixin (optimizer groups, checkpoints, NaN stop) and the outputs below.

The run is deterministic given its seed (on one device): the seed fixes the head and adapter
initialisation, the data order, dropout and the data-fraction subsample. The split into train /
validation / test depends on ``split_seed`` only (see :mod:`hora.experiments.tasks`).

Outputs in ``output``:
    adapter_config.json, adapter_model.safetensors   the adapter (``save_pretrained``); full model for ``full``
    metrics.json                                      accuracy (test), val_accuracy, trainable_params, ...,
                                                      plus what ``hora export`` needs to rebuild the base model;
                                                      for sft, accuracy and val_accuracy are exact-match rates
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
from dataclasses import asdict
from pathlib import Path

from hora.experiments import methods, models, paths, quantization, tasks, variants
from hora.experiments.errors import HoraError, HoraWarning, TrainingInterrupted
from hora.experiments.evaluation import accuracy, answer_tokens, exact_match
from hora.experiments.train_config import RECORDED, TRAJECTORY, TrainConfig, world_size
from hora.io import atomic_save_files, atomic_write_json


def check_output(cfg: TrainConfig) -> Path:
    """Check ``cfg.output`` before any work: a folder that can be written and holds no run, unless
    ``cfg.overwrite`` (replace it) or ``cfg.resume`` (continue it) says what to do with the one there."""
    return paths.check_train_output(cfg.output, overwrite=cfg.overwrite, resume=cfg.resume)


def _cpu_distributed() -> bool:
    """Launched with several processes (torchrun / accelerate launch) on a machine without CUDA."""
    import torch

    return world_size() > 1 and not torch.cuda.is_available()


def _adapter_diagnostics(model, method: str) -> dict:
    """Mean stable rank of the updates and cross-head shared energy of the head factors (DESIGN: report
    both beside accuracy), from :mod:`hora.diagnostics` for HoRA, LoRA and DoRA; none for other methods."""
    import torch

    from hora.diagnostics import adapter_diagnostics, lora_diagnostics
    from hora.heads import HeadLayoutError

    compute = {"hora": adapter_diagnostics, "lora": lora_diagnostics, "dora": lora_diagnostics}.get(method)
    if compute is None:
        return {}
    try:
        out = compute(model)
    except (torch.linalg.LinAlgError, HeadLayoutError):
        # The two failures a finished run can meet here; its metrics are then written without diagnostics:
        # - LinAlgError: a diverged run (kept as a result by ``hora compare``, stop_on_nan=False) has NaN in
        #   its update, which has no singular values, so no stable rank;
        # - HeadLayoutError: a LoRA/DoRA run on a model whose config does not give its head counts; the head
        #   split is read only for this diagnostic (a HoRA run read it when its adapter was built).
        # Anything else is a bug and is raised.
        return {}
    return {f"diag_{k}": float(v) for k, v in out.items() if isinstance(v, int | float)}


def warn_if_fsdp_falls_back(cuda: bool) -> None:
    """A HoraWarning when ``accelerate launch --use_fsdp`` asked for FSDP on a machine without CUDA:
    Accelerate then runs plain DDP (every process holds the whole model) without saying so."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true") and not cuda:
        warnings.warn("FSDP was requested (accelerate --use_fsdp) but Accelerate does not shard on CPU: this run "
                      "is plain DDP, every process holds the whole model (docs/operations.md, 'Scaling out')",
                      HoraWarning, stacklevel=2)


# a user's --data trained for more epochs than this by the step budget alone gets a HoraWarning
MANY_EPOCHS = 20


def warn_if_many_epochs(cfg: TrainConfig, n_train: int) -> None:
    """A HoraWarning when ``--steps`` (the default 300, sized for the built-in datasets) makes many epochs
    over a small ``--data`` file; the settings are kept as given."""
    if cfg.data is None or cfg.epochs is not None or cfg.steps is None or n_train < 1:
        return
    epochs = cfg.steps * cfg.batch_size / n_train
    if epochs > MANY_EPOCHS:
        warnings.warn(f"{cfg.data} gives {n_train} training examples: {cfg.steps} steps of batch {cfg.batch_size} "
                      f"are about {epochs:.0f} epochs over them, which can overfit; set the length with "
                      "--epochs N (e.g. --epochs 10) or fewer --steps", HoraWarning, stacklevel=2)


def load_data(cfg: TrainConfig) -> tasks.TaskData:
    """The run's data: the task's or the user's file, as prompts and answers for ``--objective sft``."""
    if cfg.objective == "sft":
        return tasks.load_prompt_task(cfg.task, cfg.data, cfg.prompt_column, cfg.answer_column)
    return tasks.load_task(cfg.task, cfg.data, cfg.text_column, cfg.label_column)


def train(cfg: TrainConfig, data: tasks.TaskData | None = None, callbacks: Sequence = ()) -> dict:
    """Run one training job; returns the metrics dict (also written to ``cfg.output``/metrics.json).

    ``data`` may be passed to reuse loaded data across the runs of a sweep; ``callbacks`` are extra
    ``transformers.TrainerCallback`` objects (e.g. :mod:`hora.experiments.dynamics`' update recorder).
    """
    check_output(cfg)
    from hora.experiments import assets

    assets.set_offline()
    import torch

    warn_if_fsdp_falls_back(torch.cuda.is_available())
    from transformers import DataCollatorWithPadding, PrinterCallback, TrainingArguments, set_seed
    from transformers.utils import logging as hf_logging

    from hora.experiments import checkpoints

    hf_logging.set_verbosity_error()
    t_start = time.perf_counter()
    ckpt_root = Path(cfg.output) / checkpoints.CHECKPOINTS
    resume_from, save_every = None, cfg.save_every
    if cfg.resume:  # find and check the checkpoint before any heavy work
        resume_from = checkpoints.latest_checkpoint(ckpt_root)
        if resume_from is None:
            raise HoraError(f"--resume: no checkpoint in {ckpt_root}; start the run with --save-every N "
                            "(or replace the run there with --overwrite)")
        checkpoints.check_resumable(resume_from, cfg)
        if save_every is None:  # keep saving as the interrupted run did
            state = json.loads((resume_from / "trainer_state.json").read_text())
            save_every = int(state.get("save_steps") or 0) or None
    elif cfg.overwrite and ckpt_root.is_dir():  # the replaced run's checkpoints must not be resumed later
        shutil.rmtree(ckpt_root)
    if data is None:
        data = load_data(cfg)
    sft = None
    if cfg.objective == "sft":
        from hora.experiments import sft
    model_name, folder = models.resolve_model(cfg.model, data.kind)
    splits = tasks.split_indices(data.labels, cfg.split_seed)
    train_idx = tasks.subsample(splits.train, data.labels, cfg.fraction, cfg.seed, data.label_names)
    val_idx, test_idx = splits.val, splits.test
    val_idx = tasks.eval_subset(val_idx, cfg.max_eval_samples, cfg.split_seed)
    test_idx = tasks.eval_subset(test_idx, cfg.max_eval_samples, cfg.split_seed)

    if len(train_idx) == 0 or len(test_idx) == 0:
        raise HoraError(f"{len(data)} examples are too few to split into train / validation / test; "
                        "give at least 3 examples of every class")

    tokenizer = models.load_tokenizer(folder) if data.kind == "text" else None
    max_length = models.cap_max_length(cfg.max_length, folder, tokenizer) if tokenizer is not None else cfg.max_length
    encode = sft.prepare if sft is not None else tasks.encode  # sft: prompts and answers, cut to max_length
    train_ds, val_ds, test_ds = (encode(data, idx, tokenizer, max_length) for idx in (train_idx, val_idx, test_idx))
    if sft is not None:
        sft.warn_cut([train_ds, val_ds, test_ds], max_length, data.name)
    elif data.kind == "text":
        tasks.warn_truncated([train_ds, val_ds, test_ds], max_length, data.name)
    if data.kind == "text" and sft is None:  # evaluate in length order: less padding, same accuracy
        for ds in (val_ds, test_ds):
            ds.items.sort(key=lambda item: len(item["input_ids"]))

    set_seed(cfg.seed)
    bits = quantization.quantization_of(vars(cfg))
    base = models.load_model(folder, data.kind, data.label_names, cfg.objective, bits)
    if bits is not None:
        base = quantization.prepare(base)
    heads = models.head_module_names(base) if sft is None else []  # sft: the LM head is the model's own
    model, info = methods.build_adapted_model(
        cfg.method, base, r=cfg.r, alpha=cfg.alpha, dropout=cfg.dropout, hidden=cfg.hidden,
        projections=methods.parse_projections(cfg.targets), kind=data.kind, head_modules=heads,
        objective=cfg.objective)
    trainable, total = methods.count_parameters(model)

    warn_if_many_epochs(cfg, len(train_ds))
    lr = cfg.resolved_lr()
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    max_steps = -1 if cfg.epochs is not None else int(cfg.steps)
    planned = max_steps if max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    # Trainer needs an output_dir: the checkpoints folder when saving, else a scratch folder removed at the end
    # (none with --save-every, so a run killed hard leaves nothing in the temp dir)
    scratch = None if save_every else Path(tempfile.mkdtemp(prefix="hora-trainer-"))
    try:
        common = dict(
            output_dir=str(scratch or ckpt_root),
            max_steps=max_steps,
            num_train_epochs=cfg.epochs if cfg.epochs is not None else 1.0,
            # the batch sizes are global: each batch (sampled and padded as in a single process) is split
            # across the processes, so a run means the same experiment whatever the number of processes
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=math.ceil(cfg.eval_batch_size / world_size()) * world_size(),  # splits evenly
            accelerator_config={"split_batches": True},
            # every loss here is a mean over the examples of the batch; with True, Trainer would multiply
            # it by the number of processes (meant for token-summed losses), doubling loss and gradient
            average_tokens_across_devices=False,
            learning_rate=lr,
            weight_decay=cfg.weight_decay,
            warmup_steps=int(cfg.warmup_ratio * planned),
            lr_scheduler_type=cfg.lr_scheduler,
            logging_steps=max(1, planned // 10),
            save_strategy="steps" if save_every else "no",
            save_steps=save_every or 500,
            save_total_limit=cfg.keep_checkpoints,
            eval_strategy="no",
            report_to="none",
            seed=cfg.seed,
            data_seed=cfg.seed,
            disable_tqdm=not cfg.progress,
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
            # under torchrun without a GPU, Accelerate sets up multi-CPU DDP (gloo) only when told to use the
            # CPU; otherwise every process would silently train alone (world size 1)
            use_cpu=_cpu_distributed(),
            remove_unused_columns=False,
            label_names=["labels"],
            # text: batches of similar length (seeded), so little compute goes to padding
            train_sampling_strategy="group_by_length" if data.kind == "text" else "random",
        )
        # both trainers mix in HoraTrainerMixin: AdamW over hora.param_groups (the shared generator at lr x
        # generator_lr_ratio), atomic checkpoints, exact train_loss across resumes, stop at a NaN/inf loss
        shared = dict(model=model, run_config=cfg.settings((TRAJECTORY,)), stop_on_nan=cfg.stop_on_nan,
                      callbacks=list(callbacks))
        if sft is not None:  # TRL tokenises the prompts and answers, and pads them itself
            trainer = sft.HoraSFTTrainer(args=sft.arguments(common, max_length), train_dataset=train_ds.dataset(),
                                         processing_class=tokenizer, **shared)
        else:
            collator = DataCollatorWithPadding(tokenizer) if tokenizer is not None else None
            trainer = checkpoints.HoraTrainer(args=TrainingArguments(**common), train_dataset=train_ds,
                                              data_collator=collator, **shared)
        if not cfg.progress:  # quiet: no per-step log lines either (e.g. inside a sweep's progress bar)
            trainer.remove_callback(PrinterCallback)
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
            raise HoraError(f"{exc} (lr {lr:g}): training stopped (no adapter or metrics written); {kept}; "
                            "try a lower --lr") from None
        train_seconds = time.perf_counter() - t0
        train_loss = trainer.mean_train_loss()
        t1 = time.perf_counter()
        if sft is not None:  # exact match of the greedy answer, reported as accuracy
            generator = trainer.accelerator.unwrap_model(trainer.model)
            budget = answer_tokens(tokenizer, data.answers)  # the longest answer of the task
            val_acc, test_acc = (exact_match(generator, tokenizer, ds.prompts, ds.answers, cfg.eval_batch_size, budget)
                                 for ds in (val_ds, test_ds))
        else:
            val_acc = accuracy(trainer, val_ds)
            test_acc = accuracy(trainer, test_ds)
        eval_seconds = time.perf_counter() - t1
        steps_done = int(trainer.state.global_step)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    metrics = {
        **cfg.settings(RECORDED),  # every setting that fixes the run or its scores, as given (lr resolved)
        "accuracy": test_acc,
        "val_accuracy": val_acc,
        "trainable_params": int(trainable),
        "total_params": int(total),
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "train_loss": float(train_loss),
        "fraction": float(cfg.fraction),
        "model": model_name,  # the resolved name, e.g. the default for the task
        "model_path": str(folder),
        "task": data.name if cfg.data is not None else cfg.task,
        "kind": data.kind,
        "label_names": list(data.label_names) if sft is None else [],  # sft: answers, not classes
        "steps": steps_done,  # the steps taken (set by --epochs when given)
        "n_train": len(train_ds),
        "n_val": len(val_ds),
        "n_test": len(test_ds),
        "targets": info["targets"],  # the adapted modules' names
        "device": str(next(model.parameters()).device),
        "torch_threads": torch.get_num_threads(),
    }
    if sft is not None:
        metrics["max_new_tokens"] = budget
    base_method = variants.resolve(cfg.method).method  # a named variant counts as its base method
    metrics["base_method"] = base_method
    if base_method == "hora":
        import hora

        # no try: the model was built as HoRA above, so the report has everything it reads; an error is a bug
        metrics["lora_equivalent_params"] = int(hora.parameter_report(model)["lora_equivalent"])
    metrics.update(_adapter_diagnostics(model, base_method))

    if trainer.is_world_process_zero():  # under torchrun / accelerate launch only one process writes
        out = Path(cfg.output)
        out.mkdir(parents=True, exist_ok=True)
        if cfg.save:
            atomic_save_files(out, model.save_pretrained)
        atomic_write_json(out / "metrics.json", {**metrics, "config": asdict(cfg)})
    return metrics
