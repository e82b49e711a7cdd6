"""HoraTrainer and resumable training: the trainer's AdamW over HoRA's parameter groups; a run SIGKILLed after a
checkpoint and resumed ends exactly where an uninterrupted run ends (adapter tensors, accuracy, train_loss);
checkpoint folders appear atomically; bad resumes fail with one line. Each run is a real ``hora train``
process on a tiny random BERT."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

# runs `hora` with an optional sleep in every training step, so a run can be killed mid-way
WRAPPER = """
import os, sys, time
import transformers
delay = float(os.environ.get("HORA_TEST_STEP_DELAY", "0"))
original = transformers.Trainer.training_step
def training_step(self, *args, **kwargs):
    time.sleep(delay)
    return original(self, *args, **kwargs)
transformers.Trainer.training_step = training_step
from hora.cli import app
sys.argv = ["hora", *sys.argv[1:]]
app()
"""

STEPS, SAVE_EVERY = 14, 3  # 86 training rows / batch 8 = 11 steps per epoch: the run crosses an epoch


def _args(tiny_bert, tiny_csv, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(tiny_bert), "--data", str(tiny_csv), "--text-column", "review",
            "--label-column", "sentiment", "--batch-size", "8", "--max-length", "16", "--no-progress",
            "--method", "hora", "--dropout", "0.1", "--steps", str(STEPS), "--output", str(out), *extra]


def _env(delay: float = 0.0, tmp: Path | None = None) -> dict:
    env = {**os.environ, "HORA_TEST_STEP_DELAY": str(delay), "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
    return env if tmp is None else {**env, "TMPDIR": str(tmp)}


def _run(wrapper: Path, args: list[str], delay: float = 0.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(wrapper), *args], env=_env(delay), capture_output=True,
                          text=True, timeout=240)


@pytest.fixture
def wrapper(tmp_path) -> Path:
    path = tmp_path / "hora_wrapper.py"
    path.write_text(WRAPPER)
    return path


def test_killed_run_resumes_to_identical_result(tiny_bert, tiny_csv, tmp_path, wrapper):
    full, cut = tmp_path / "full", tmp_path / "cut"
    done = _run(wrapper, _args(tiny_bert, tiny_csv, full, "--save-every", str(SAVE_EVERY)))
    assert done.returncode == 0, done.stderr

    killed_tmp = tmp_path / "killed-tmp"
    killed_tmp.mkdir()
    proc = subprocess.Popen([sys.executable, str(wrapper), *_args(tiny_bert, tiny_csv, cut, "--save-every",
                                                                   str(SAVE_EVERY))],
                            env=_env(delay=0.4, tmp=killed_tmp), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    first = cut / "checkpoints" / f"checkpoint-{SAVE_EVERY}"
    deadline = time.monotonic() + 120
    while not first.is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()}"
    assert first.is_dir(), "no checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert not (cut / "metrics.json").exists()  # it really was cut short
    # with --save-every, Trainer works in OUTPUT/checkpoints: a run killed hard leaves no scratch folder behind
    assert not list(killed_tmp.glob("hora-*")), list(killed_tmp.iterdir())
    ckpts = sorted((cut / "checkpoints").glob("checkpoint-*"))
    assert ckpts and all(int(p.name.split("-")[1]) < STEPS for p in ckpts)
    for ckpt in ckpts:  # only complete checkpoints carry the final name
        assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                "trainer_state.json", "hora_run.json", "hora_state.json"} <= {p.name for p in ckpt.iterdir()}

    with_progress = [a for a in _args(tiny_bert, tiny_csv, cut, "--resume") if a != "--no-progress"]
    resumed = _run(wrapper, with_progress)
    assert resumed.returncode == 0, resumed.stderr

    a, b = load_file(full / "adapter_model.safetensors"), load_file(cut / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for key in a:
        assert (a[key] == b[key]).all(), key
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (full, cut))
    for key in ("accuracy", "val_accuracy", "train_loss", "steps", "diag_stable_rank"):
        assert ma[key] == mb[key], (key, ma[key], mb[key])
    assert mb["steps"] == STEPS
    # off a terminal: one line per logging interval, from the resumed step on, and no raw log dicts; the loss in
    # the table is the whole run's, as in metrics.json (Trainer's own covers the resumed part)
    steps = [int(s) for s in re.findall(rf"^hora: step (\d+)/{STEPS} ", resumed.stderr, re.M)]
    assert steps and steps == sorted(steps) and steps[0] > int(ckpts[-1].name.split("-")[1]), resumed.stderr
    assert "{'" not in resumed.stdout + resumed.stderr
    table = re.search(r"train loss\W+([0-9.]+)", resumed.stdout)
    assert table and float(table.group(1)) == round(mb["train_loss"], 4), resumed.stdout
    # rotation keeps the newest two; no staging folder left behind
    names = sorted(p.name for p in (cut / "checkpoints").iterdir() if not p.name.startswith("."))
    assert names == ["checkpoint-12", f"checkpoint-{STEPS}"]


def test_partial_checkpoint_is_ignored_and_bad_resumes_fail(tiny_bert, tiny_csv, tmp_path, wrapper):
    from typer.testing import CliRunner

    from hora.cli import app

    runner = CliRunner()
    out = tmp_path / "run"
    missing = runner.invoke(app, _args(tiny_bert, tiny_csv, out, "--resume"))
    assert missing.exit_code == 2 and "no checkpoint in" in missing.stderr

    ok = runner.invoke(app, [*_args(tiny_bert, tiny_csv, out, "--save-every", "2"), "--steps", "4"])
    assert ok.exit_code == 0, ok.output
    # a folder left by a run killed while saving: staged under .partial, never under the final name
    partial = out / "checkpoints" / ".partial" / "checkpoint-6"
    partial.mkdir(parents=True)
    (partial / "adapter_model.safetensors").write_bytes(b"truncated")

    again = runner.invoke(app, [*_args(tiny_bert, tiny_csv, out, "--save-every", "2"), "--steps", "4"])
    assert again.exit_code == 2 and "already holds a finished run" in again.stderr and "--overwrite" in again.stderr
    other = runner.invoke(app, [*_args(tiny_bert, tiny_csv, out, "--resume"), "--steps", "4", "--lr", "0.5"])
    assert other.exit_code == 2 and "other settings" in other.stderr and "lr" in other.stderr
    assert "\n" not in other.stderr.strip()
    same = runner.invoke(app, [*_args(tiny_bert, tiny_csv, out, "--resume"), "--steps", "4"])
    assert same.exit_code == 0, same.output  # resumes from checkpoint-4, the latest complete one
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4


def test_trainer_builds_adamw_over_hora_param_groups(tiny_bert, tmp_path):
    import peft
    import torch
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from hora import HoraConfig
    from hora.experiments.training.checkpoints import HoraTrainer

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
