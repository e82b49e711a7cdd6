"""DDP on CPU: ``torchrun --nproc-per-node 2`` runs ``hora train`` (gloo, loopback only) on the tiny BERT.

After training every rank writes its trainable parameters to a rank-suffixed file (through a small test
wrapper around ``hora``'s entry point); DDP must leave them identical across ranks, and the adapter the
main process saves must be exactly those tensors. The run also checkpoints, so the per-rank RNG and loss
files of a distributed checkpoint are checked too.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from launch_helpers import (
    assert_ranks_agree_with_saved_adapter,
    gloo_run_dirs,
    loopback_env,
    tiny_train_args,
    write_wrapper,
)
from safetensors.torch import load_file


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH (torch's launcher)")
def test_torchrun_two_processes_keep_identical_adapters(tiny_bert, tiny_csv, tmp_path):
    out, ranks = gloo_run_dirs(tmp_path)
    cmd = ["torchrun", "--standalone", "--nproc-per-node", "2", str(write_wrapper(tmp_path)),
           *tiny_train_args(tiny_bert, tiny_csv, out), "--save-every", "2"]
    done = subprocess.run(cmd, env=loopback_env(ranks), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    saved = assert_ranks_agree_with_saved_adapter(ranks, out)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4
    ckpt = out / "checkpoints" / "checkpoint-4"
    names = {p.name for p in ckpt.iterdir()}
    halfway = load_file(out / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert any((halfway[k] != saved[k]).any() for k in saved)  # steps 3-4 moved the adapter
    assert {"rng_state_0.pth", "rng_state_1.pth", "hora_state_0.json", "hora_state_1.json"} <= names, names
