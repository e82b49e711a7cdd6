"""One training run on transformers' ``Trainer``, in steps: the base model (:func:`resolve_base_model`), the data
source's splits (:mod:`hora.experiments.data.datasource`), the run's examples encoded for the model
(:func:`encode_splits`), the adapted model (:func:`adapted_model`), the trainer (:func:`training_arguments`,
:func:`make_trainer`), training (:func:`run_training`), scores (:func:`evaluate`), outputs (:func:`save_run`).

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hora.experiments import paths
from hora.experiments.console import quiet
from hora.experiments.data import datasource, tasks
from hora.experiments.errors import HoraError, HoraWarning, TrainingInterrupted
from hora.experiments.methods import build, named_variants, portable
from hora.experiments.models import catalogue, loaders, qlora
from hora.experiments.scoring import evaluation
from hora.experiments.scoring.evaluation import answer_score, generation_budget
from hora.experiments.training import devices
from hora.experiments.training.train_config import PENDING, RECORDED, TRAJECTORY, TrainConfig, world_size
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
    over a small ``--dataset`` / ``--data``; the settings are kept as given."""
    source = cfg.dataset or cfg.data
    if source is None or cfg.epochs is not None or cfg.steps is None or n_train < 1:
        return
    epochs = cfg.steps * cfg.batch_size / n_train
    if epochs > MANY_EPOCHS:
        warnings.warn(f"{source} gives {n_train} training examples: {cfg.steps} steps of batch {cfg.batch_size} "
                      f"are about {epochs:.0f} epochs over them, which can overfit; set the length with "
                      "--epochs N (e.g. --epochs 10) or fewer --steps", HoraWarning, stacklevel=2)


@dataclass
class BaseModel:
    """The resolved ``--model``: its name in reports, what ``from_pretrained`` takes (a folder or a Hub ID), the
    revision and its config.json."""

    name: str
    ref: str | Path
    revision: str | None
    config: dict


@dataclass
class Encoded:
    """A run's three data sets as the trainer takes them, and the tokenizer and token limit that made them."""

    train: Any
    val: Any
    test: Any
    tokenizer: Any = None
    max_length: int = 0
    tests: dict = field(default_factory=dict)  # further test sets (--test-sets): name -> data set


def resolve_base_model(cfg: TrainConfig, kind: str) -> BaseModel:
    """``--model`` (or the default for the data's ``kind``, text or image) resolved and checked against the kind
    and the objective, before any data is read."""
    name, ref = catalogue.resolve_model(cfg.model, kind, cfg.revision)
    config = catalogue.read_config(ref, cfg.revision)
    if cfg.objective == "sft" and not catalogue.is_causal_lm(config):
        raise HoraError(f"--objective sft needs a decoder, and {name} is no causal LM (its config.json names no "
                        "...ForCausalLM architecture)")
    qlora.check_model(vars(cfg), name, config)
    return BaseModel(name, ref, cfg.revision, config)


def encode_splits(cfg: TrainConfig, data: tasks.TaskData, indices: tuple, base: BaseModel, sft=None,
                  test_sets: dict[str, tasks.TaskData] | None = None) -> Encoded:
    """The train / validation / test examples at ``indices`` (and every example of each further test set),
    encoded for the model: tokenised texts (pairs as pairs), images through the model's image processor (the
    built-in tasks' digits as they are), or prompts and answers for TRL (``sft``); one warning when texts were
    cut to ``--max-length``."""
    tokenizer, max_length = None, 0
    if data.kind == "image":
        transform = loaders.load_image_transform(base.ref, base.revision) if cfg.image_column else None

        def encode(d, idx):
            return tasks.encode(d, idx, image_transform=transform)
    else:
        tokenizer = loaders.load_tokenizer(base.ref, base.revision)
        max_length = catalogue.cap_max_length(cfg.max_length, base.config, tokenizer)
        encode_text = sft.prepare if sft is not None else tasks.encode  # sft: prompts and answers, cut to fit

        def encode(d, idx):
            return encode_text(d, idx, tokenizer, max_length)
    train_ds, val_ds, test_ds = (encode(data, idx) for idx in indices)
    tests = {name: encode(d, np.arange(len(d))) for name, d in (test_sets or {}).items()}
    evaluated = [val_ds, test_ds, *tests.values()]
    if sft is not None:
        sft.warn_cut([train_ds, *evaluated], max_length, data.name)
    elif data.kind == "text":
        tasks.warn_truncated([train_ds, *evaluated], max_length, data.name)
        for ds in evaluated:  # evaluate in length order: less padding, same accuracy
            ds.items.sort(key=lambda item: len(item["input_ids"]))
    return Encoded(train_ds, val_ds, test_ds, tokenizer, max_length, tests)


def load_test_sets(cfg: TrainConfig, data: tasks.TaskData) -> dict[str, tasks.TaskData]:
    """The further test sets of ``--test-sets`` (name -> examples), read with the run's columns; a classification
    test set must have the run's classes."""
    if cfg.test_sets is None:
        return {}
    source = cfg.data_source()
    loaded = {name: datasource.load_test_set(source, where)
              for name, where in datasource.parse_test_sets(cfg.test_sets).items()}
    for name, tested in loaded.items():
        if cfg.objective != "sft" and not data.regression and tested.label_names != data.label_names:
            raise HoraError(f"test set {name} has the classes {', '.join(tested.label_names)}, not the run's "
                            f"{', '.join(data.label_names)}")
    return loaded


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
    trainable, total = build.count_parameters(model)
    warn_if_many_epochs(cfg, len(encoded.train))
    # Trainer needs an output_dir: the checkpoints folder when saving, else a scratch folder removed at the end
    # (none with --save-every, so a run killed hard leaves nothing in the temp dir)
    from hora.experiments.training.checkpoints import CHECKPOINTS

    scratch = None if save_every else Path(tempfile.mkdtemp(prefix="hora-trainer-"))
    try:
        arguments = training_arguments(cfg, scratch or Path(cfg.output) / CHECKPOINTS, len(encoded.train),
                                       save_every, data.kind)
        trainer = make_trainer(cfg, model, encoded, arguments, [*callbacks, *info["callbacks"]], sft)
        train_seconds = run_training(cfg, trainer, resume_from, save_every)
        train_loss = trainer.mean_train_loss()
        t1 = time.perf_counter()
        scores = evaluate(cfg, trainer, data, encoded, sft)
        eval_seconds = time.perf_counter() - t1
        steps_done = int(trainer.state.global_step)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    metrics = {
        **cfg.settings(RECORDED),  # every setting that fixes the run or its scores, as given (lr resolved)
        **scores,
        "method": build.method_label(cfg.method),  # a PEFT config path: its folder's name
        "trainable_params": int(trainable),
        "total_params": int(total),
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "train_loss": float(train_loss),
        "fraction": float(cfg.fraction),
        "model": base.name,  # the resolved name, e.g. the default for the task
        "model_path": str(base.ref),
        "task": data.name,
        "kind": data.kind,
        "regression": data.regression,
        "label_names": list(data.label_names) if sft is None else [],  # sft: answers, not classes
        "dropped_rows": dict(data.dropped),  # rows left out of the source: empty text or label, by reason
        "steps": steps_done,  # the steps taken (set by --epochs when given)
        "n_train": len(encoded.train),
        "n_val": len(encoded.val),
        "n_test": len(encoded.test),
        "targets": info["targets"],  # the adapted modules' names
        "device": str(next(model.parameters()).device),
        "accelerator_memory_max": torch.cuda.max_memory_reserved() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "base_method": named_variants.resolve(cfg.method).method,  # a named variant counts as its base method
    }
    writer = trainer.is_world_process_zero()  # under torchrun / accelerate launch only one process writes
    steps = {"parameter report": lambda: _parameter_report(model, metrics["base_method"]),
             "diagnostics": lambda: _adapter_diagnostics(model, metrics["base_method"])}
    if writer and cfg.save:
        steps["model card"] = lambda: portable.write_card(model, cfg.output, metrics, cfg.output)
    if writer:  # what the run trained is safe before any optional step runs; "pending" until they have run
        save_run(cfg, model, {**metrics, PENDING: list(steps)})
    missing = run_optional_steps(steps, metrics)
    if missing:
        metrics["missing"] = missing
    if writer:
        write_metrics(cfg, metrics)
    return metrics


def _parameter_report(model, base_method: str) -> dict:
    """HoRA's LoRA-equivalent parameter count (:func:`hora.parameter_report`); nothing for other methods."""
    if base_method != "hora":
        return {}
    import hora

    return {"lora_equivalent_params": int(hora.parameter_report(model)["lora_equivalent"])}


def run_optional_steps(steps: dict[str, Any], metrics: dict) -> dict[str, str]:
    """Run each optional step (name -> a function returning metrics to add) after the run is saved, adding what
    it returns to ``metrics``. A step that fails costs the run nothing: one line on stderr, and the step's name
    with its error in the returned dict (recorded in metrics.json as ``missing``)."""
    missing = {}
    for name, step in steps.items():
        try:
            metrics.update(step() or {})
        except Exception as exc:  # noqa: BLE001 - by design: an optional step must never lose a trained run
            missing[name] = f"{type(exc).__name__}: {exc}"
            print(f"hora: warning: the run's {name} failed ({missing[name]}); the adapter and metrics.json are "
                  f"saved, and metrics.json records the {name} as missing", file=sys.stderr, flush=True)
    return missing


def save_run(cfg: TrainConfig, model, metrics: dict) -> None:
    """The adapter (``--save``) and metrics.json, with the run's whole config, into ``cfg.output``, atomically."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.save:  # the adapter names its base model portably (hora.experiments.methods.portable)
        atomic_save_files(out, lambda tmp: portable.save_adapter(model, tmp, metrics))
    write_metrics(cfg, metrics)


def write_metrics(cfg: TrainConfig, metrics: dict) -> None:
    """metrics.json of the run, with its whole config, written atomically."""
    atomic_write_json(Path(cfg.output) / "metrics.json", {**metrics, "config": asdict(cfg)})
