"""A run's inputs, read before the model trains: the resolved base model (:func:`resolve_base_model`, checked
before any data is read), its examples encoded for the model (:func:`encode_splits`), the further test sets of
``--test-sets``, and a warning when the step budget makes many epochs over a small data set."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hora.experiments.data import datasource, tasks
from hora.experiments.errors import HoraError, HoraWarning
from hora.experiments.models import catalogue, loaders, qlora
from hora.experiments.training.train_config import TrainConfig

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
