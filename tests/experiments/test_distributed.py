"""DDP on CPU: ``torchrun --nproc-per-node 2`` runs ``hora train`` (gloo, loopback only) on the tiny BERT.

After training every rank writes its trainable parameters to a rank-suffixed file (through a small test
wrapper around ``hora``'s entry point); DDP must leave them identical across ranks, and the adapter the
main process saves must be exactly those tensors. The run also checkpoints, so the per-rank RNG and loss
files of a distributed checkpoint are checked too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from safetensors.torch import load_file

WRAPPER = """
import os, sys
from peft import get_peft_model_state_dict
from safetensors.torch import save_file
from hora.experiments import checkpoints
original = checkpoints.HoraTrainer.train
def train(self, *args, **kwargs):
    result = original(self, *args, **kwargs)
    model = self.accelerator.unwrap_model(self.model)
    state = {k: v.detach().contiguous().clone() for k, v in get_peft_model_state_dict(model).items()}
    save_file(state, os.path.join(os.environ["HORA_TEST_RANK_DIR"], f"rank{os.environ['RANK']}.safetensors"))
    return result
checkpoints.HoraTrainer.train = train
from hora.cli import app
sys.argv = ["hora", *sys.argv[1:]]
app()
"""


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH (torch's launcher)")
def test_torchrun_two_processes_keep_identical_adapters(tiny_bert, tiny_csv, tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    wrapper = tmp_path / "hora_wrapper.py"
    wrapper.write_text(WRAPPER)
    out, ranks = tmp_path / "run", tmp_path / "ranks"
    ranks.mkdir()
    env = {**os.environ, "HORA_TEST_RANK_DIR": str(ranks), "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1",
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = ["torchrun", "--standalone", "--nproc-per-node", "2", str(wrapper), "train", "--model", str(tiny_bert),
           "--data", str(tiny_csv), "--text-column", "review", "--label-column", "sentiment", "--batch-size", "4",
           "--max-length", "16", "--no-progress", "--steps", "4", "--save-every", "2", "--lr", "0.01",
           "--max-eval-samples", "8", "--output", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    r0, r1 = load_file(ranks / "rank0.safetensors"), load_file(ranks / "rank1.safetensors")
    assert r0.keys() == r1.keys() and r0
    for key in r0:
        assert (r0[key] == r1[key]).all(), f"{key} differs across ranks"

    saved = load_file(out / "adapter_model.safetensors")  # written by the main process only
    assert saved.keys() == r0.keys()
    for key in saved:
        assert (saved[key] == r0[key]).all(), key

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4
    ckpt = out / "checkpoints" / "checkpoint-4"
    names = {p.name for p in ckpt.iterdir()}
    halfway = load_file(out / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert any((halfway[k] != saved[k]).any() for k in saved)  # steps 3-4 moved the adapter
    assert {"rng_state_0.pth", "rng_state_1.pth", "hora_state_0.json", "hora_state_1.json"} <= names, names
