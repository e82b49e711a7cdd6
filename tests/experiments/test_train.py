"""One training run end to end on a tiny random BERT, and once on the real MiniLM + Rotten Tomatoes."""

from __future__ import annotations

import json
import warnings

import pytest

from hora.experiments import train as train_mod
from hora.experiments.train_config import TrainConfig
from hora.io import atomic_write_json

KEYS = {"accuracy", "val_accuracy", "trainable_params", "train_seconds", "method", "fraction", "seed", "model",
        "task", "lr", "r", "steps"}


def _cfg(tiny_bert, tiny_csv, tmp_path, **kw):
    base = dict(model=str(tiny_bert), data=str(tiny_csv), text_column="review", label_column="sentiment",
                steps=4, batch_size=8, max_length=16, output=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_metrics_and_adapter(tiny_bert, tiny_csv, tmp_path):
    m = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, method="hora", fraction=0.5))
    out = tmp_path / "run"
    saved = json.loads((out / "metrics.json").read_text())
    assert KEYS <= set(saved)
    assert saved["accuracy"] == m["accuracy"] and 0 <= m["accuracy"] <= 1 and 0 <= m["val_accuracy"] <= 1
    assert m["steps"] == 4 and m["method"] == "hora" and m["fraction"] == 0.5 and m["r"] == 8
    # 60 per class: 12 test, 5 val, 43 train; half of the train split: 22 per class
    assert m["n_test"] == 24 and m["n_val"] == 10 and m["n_train"] == 44
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert m["trainable_params"] > 0 and m["lora_equivalent_params"] > 0
    assert {"diag_stable_rank", "diag_head_shared_energy"} <= set(m)
    assert not list(out.glob(".metrics.json.*"))  # atomic write leaves no temp file


def test_train_is_deterministic_given_seed(tiny_bert, tiny_csv, tmp_path):
    a = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "a", method="lora", seed=1, save=False))
    b = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "b", method="lora", seed=1, save=False))
    c = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "c", method="lora", seed=2, save=False))
    assert a["train_loss"] == b["train_loss"] and a["accuracy"] == b["accuracy"]
    assert a["diag_stable_rank"] == b["diag_stable_rank"]
    assert c["train_loss"] != a["train_loss"]


def test_lr_scheduler_option_reaches_the_trainer(tiny_bert, tiny_csv, tmp_path):
    linear = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "a", method="lora", save=False))
    constant = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "b", method="lora", save=False,
                                    lr_scheduler="constant"))
    assert linear["lr_scheduler"] == "linear" and constant["lr_scheduler"] == "constant"
    assert constant["train_loss"] != linear["train_loss"]  # same seed and data: only the schedule differs


def test_write_json_atomic(tmp_path):
    atomic_write_json(tmp_path / "x" / "m.json", {"a": 1})
    assert json.loads((tmp_path / "x" / "m.json").read_text()) == {"a": 1}
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x" / "m.json", {"a": object()})
    assert json.loads((tmp_path / "x" / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["m.json"]


def test_real_minilm_on_rotten_tomatoes(tmp_path):
    """The embedded default (real weights, real data) for a handful of steps."""
    m = train_mod.train(TrainConfig(method="hora", steps=3, batch_size=8, max_eval_samples=32,
                                    output=str(tmp_path / "rt"), progress=False))
    assert m["model"] == "minilm" and m["task"] == "rotten_tomatoes"
    assert m["n_train"] == 9222 and m["n_val"] == 32 and m["n_test"] == 32
    assert len(m["targets"]) == 12 and all(t.endswith(("query", "value")) for t in m["targets"])
    assert 0 <= m["accuracy"] <= 1 and m["steps"] == 3
    assert 0 < m["trainable_params"] < 0.02 * m["total_params"]


def _fake_fashion_mnist(root, n: int = 64):
    """Small files in the Fashion-MNIST idx format (the real set is 60k images; this keeps the test fast)."""
    import gzip

    import numpy as np

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
    from hora.experiments import assets, tasks

    _fake_fashion_mnist(tmp_path / "fm")
    monkeypatch.setattr(assets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "fm")
    pre = train_mod.pretrain_vit(epochs=1, batch_size=32, progress=False)
    assert (tasks.vit_dir() / "config.json").is_file() and 0 <= pre["fashion_mnist_test_accuracy"] <= 1
    again = train_mod.pretrain_vit(epochs=1, batch_size=32, progress=False)  # cached: not retrained
    assert again["train_seconds"] == pre["train_seconds"]
    m = train_mod.train(TrainConfig(task="mnist", method="hora", steps=2, batch_size=16, max_eval_samples=32,
                                    output=str(tmp_path / "mnist"), progress=False))
    assert m["model"] == "vit" and m["kind"] == "image" and m["n_train"] == 3600
    assert len(m["targets"]) == 8 and 0 <= m["accuracy"] <= 1
    assert (tmp_path / "mnist" / "adapter_model.safetensors").is_file()


def test_fsdp_request_without_cuda_warns_that_it_runs_as_ddp(monkeypatch):
    from hora.experiments.errors import HoraWarning
    from hora.experiments.train import warn_if_fsdp_falls_back

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.warns(HoraWarning, match="plain DDP"):
        warn_if_fsdp_falls_back(cuda=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_fsdp_falls_back(cuda=True)
        monkeypatch.delenv("ACCELERATE_USE_FSDP")
        warn_if_fsdp_falls_back(cuda=False)


def test_trainer_builds_adamw_over_hora_param_groups(tiny_bert, tmp_path):
    import peft
    import torch
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from hora import HoraConfig
    from hora.experiments.checkpoints import HoraTrainer

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    model = peft.get_peft_model(base, HoraConfig(r=2, generator_lr_ratio=16.0, task_type="SEQ_CLS"))
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.1, report_to="none",
                             use_cpu=True)
    optimizer = HoraTrainer(model=model, args=args).create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    lrs = sorted(g["lr"] for g in optimizer.param_groups)
    assert lrs == pytest.approx([1e-3, 1.6e-2]) and all(g["weight_decay"] == 0.1 for g in optimizer.param_groups)
    bank = model.base_model.hora_bank["default"]
    boosted = next(g for g in optimizer.param_groups if g["lr"] > 1e-2)
    assert {id(p) for p in boosted["params"]} == {id(p) for p in bank.generator_parameters()}


def test_many_epochs_over_small_data_warns_once_and_keeps_the_settings(tiny_bert, tiny_csv, tmp_path):
    from hora.experiments.errors import HoraWarning

    # fraction 0.05: 2 training examples per class, so 4 steps of batch 32 are 32 epochs over them
    cfg = _cfg(tiny_bert, tiny_csv, tmp_path, fraction=0.05, batch_size=32, save=False)
    with pytest.warns(HoraWarning) as record:
        m = train_mod.train(cfg)
    many = [w for w in record if "epochs over them" in str(w.message)]
    assert len(many) == 1
    text = str(many[0].message)
    assert "4 training examples" in text and "32 epochs" in text and "--epochs" in text and "--steps" in text
    assert m["steps"] == 4 and m["n_train"] == 4  # warned, not changed


def test_many_epochs_warning_only_for_data_files_with_a_step_budget(tiny_csv):
    from hora.experiments.errors import HoraWarning

    with pytest.warns(HoraWarning, match="28 training examples: 300 steps of batch 32 are about 343 epochs"):
        train_mod.warn_if_many_epochs(TrainConfig(data=str(tiny_csv)), 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_mod.warn_if_many_epochs(TrainConfig(data=str(tiny_csv)), 480)  # exactly 20 epochs
        train_mod.warn_if_many_epochs(TrainConfig(data=str(tiny_csv), epochs=300), 28)  # the user chose epochs
        train_mod.warn_if_many_epochs(TrainConfig(), 28)  # a built-in task's subsample


def test_training_leaves_nothing_in_the_temp_dir(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the temp dir; read TMPDIR again
    assert tempfile.gettempdir() == str(scratch)
    train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, steps=2))
    train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, steps=2, output=str(tmp_path / "ckpt"), save_every=1))
    assert list(scratch.iterdir()) == []
