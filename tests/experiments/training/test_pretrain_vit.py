"""The small ViT pre-trained on (fake) Fashion-MNIST, cached, then adapted to the real MNIST-5k."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from hora.experiments import assets
from hora.experiments.errors import HoraError
from hora.experiments.models import catalogue
from hora.experiments.training.pretrain_vit import pretrain_vit
from hora.experiments.training.train import TrainConfig, train


def _fake_fashion_mnist(root, n: int = 64):
    """Small files in the Fashion-MNIST idx format (the real set is 60k images; this keeps the test fast)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = (rng.random((n, 28, 28)) * 64 + labels[:, None, None] * 19).astype(np.uint8)
    for stem in ("train", "t10k"):
        with gzip.open(root / f"{stem}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(b"\0" * 16 + images.tobytes())
        with gzip.open(root / f"{stem}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(b"\0" * 8 + labels.tobytes())


def test_pretrain_vit_then_adapt_to_mnist(monkeypatch, tmp_path):
    """The vision path: pre-train the small ViT (here on a few fake Fashion-MNIST images), cache it,
    then adapt it with HoRA to the real MNIST-5k with a fresh head."""
    _fake_fashion_mnist(tmp_path / "fm")
    monkeypatch.setattr(assets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "fm")
    pre = pretrain_vit(epochs=1, batch_size=32, progress=False)
    assert (catalogue.vit_dir() / "config.json").is_file() and 0 <= pre["fashion_mnist_test_accuracy"] <= 1
    again = pretrain_vit(epochs=1, batch_size=32, progress=False)  # cached: not retrained
    assert again["train_seconds"] == pre["train_seconds"]
    m = train(TrainConfig(task="mnist", method="hora", steps=2, batch_size=16, max_eval_samples=32,
                          output=str(tmp_path / "mnist"), progress=False))
    assert m["model"] == "vit" and m["kind"] == "image" and m["n_train"] == 3600
    assert len(m["targets"]) == 8 and 0 <= m["accuracy"] <= 1
    assert (tmp_path / "mnist" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("epochs", [0, -1.0])
def test_no_epochs_is_refused_before_anything_is_cached(epochs):
    with pytest.raises(HoraError, match="epochs must be > 0"):
        pretrain_vit(epochs=epochs, progress=False)
    assert not catalogue.vit_dir(must_exist=False).exists()
