"""``hora pretrain-vit``: the small ViT that the vision tasks adapt, pre-trained here on Fashion-MNIST.

No pretrained ViT ships in any offline package, so this builds one (4 layers, 4 heads, hidden 128, 4x4
patches on 28x28 grayscale) and caches it where :func:`hora.experiments.models.catalogue.vit_dir` finds it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hora.experiments import assets
from hora.experiments.console import quiet
from hora.experiments.data import tasks
from hora.experiments.errors import HoraError
from hora.experiments.models import catalogue
from hora.experiments.scoring.evaluation import accuracy
from hora.io import atomic_dir, atomic_write_json


def pretrain_vit(epochs: float = 1.0, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                 force: bool = False, progress: bool = True, max_train: int | None = None) -> dict:
    """Pre-train the small ViT on Fashion-MNIST (train set) and cache it for the ``mnist`` task.

    No pretrained ViT ships in any offline package, so the vision study starts from this one.
    Returns metrics (Fashion-MNIST test accuracy, wall time, folder).
    """
    if not epochs > 0:  # 0 epochs would cache an untrained ViT for every later mnist run
        raise HoraError(f"epochs must be > 0, got {epochs:g}")
    assets.set_offline()
    import torch
    from transformers import Trainer, TrainingArguments, ViTConfig, ViTForImageClassification, set_seed

    quiet.quiet_libraries()
    target = catalogue.vit_dir(must_exist=False)
    if force and target.exists():
        shutil.rmtree(target)
    if (target / "config.json").exists():
        meta = target / "pretrain_metrics.json"
        return json.loads(meta.read_text()) if meta.exists() else {"folder": str(target)}
    x_train, y_train = assets.load_fashion_mnist("train")
    x_test, y_test = assets.load_fashion_mnist("test")
    if max_train is not None:
        x_train, y_train = x_train[:max_train], y_train[:max_train]
    names = list(assets.FASHION_MNIST_CLASSES)
    fm = tasks.TaskData("fashion_mnist", "image", x_train, y_train, names)
    fm_test = tasks.TaskData("fashion_mnist_test", "image", x_test, y_test, names)
    train_ds = tasks.encode(fm, np.arange(len(y_train)))
    test_ds = tasks.encode(fm_test, np.arange(len(y_test)))

    set_seed(seed)
    config = ViTConfig(image_size=28, patch_size=4, num_channels=1, hidden_size=128, num_hidden_layers=4,
                       num_attention_heads=4, intermediate_size=256, num_labels=10,
                       id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = ViTForImageClassification(config)
    scratch = Path(tempfile.mkdtemp(prefix="hora-vit-"))
    metrics: dict = {}

    def build(tmp: Path) -> None:
        args = TrainingArguments(
            output_dir=str(scratch), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=512, learning_rate=lr, weight_decay=0.05, warmup_steps=100,
            lr_scheduler_type="cosine", logging_steps=50, save_strategy="no", eval_strategy="no",
            report_to="none", seed=seed, data_seed=seed, disable_tqdm=not progress,
            remove_unused_columns=False, label_names=["labels"], dataloader_pin_memory=torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=train_ds)
        quiet.configure_progress(trainer, progress)  # a bar on a terminal, else a line per logging interval
        t0 = time.perf_counter()
        trainer.train()
        metrics["train_seconds"] = round(time.perf_counter() - t0, 3)
        metrics["fashion_mnist_test_accuracy"] = accuracy(trainer, test_ds)
        metrics.update(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, n_train=len(train_ds),
                       params=sum(p.numel() for p in model.parameters()), folder=str(target))
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "pretrain_metrics.json", metrics)

    try:
        atomic_dir(target, build, replace=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return metrics
