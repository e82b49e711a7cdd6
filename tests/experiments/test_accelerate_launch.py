"""``accelerate launch`` on CPU: ``--multi_gpu --num_processes 2`` starts two processes of ``hora train``.

In Accelerate 1.15, ``accelerate launch`` starts several processes only through torch's launcher, which
it uses for ``--multi_gpu`` (and FSDP / DeepSpeed / Megatron); ``--cpu``, a ``MULTI_CPU`` config file or no
flag start one process on a machine without CUDA (unless an ``mpirun`` hostfile is given). Despite its
name, ``--multi_gpu`` works without a GPU: ``hora train`` then sees ``WORLD_SIZE=2`` and no CUDA and asks
Accelerate for multi-CPU DDP (gloo). A test wrapper records, on every rank, the trainable parameters and
what Accelerate set up (number of processes, distributed type); the ranks must agree exactly, and the
adapter the main process saves must be those tensors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from safetensors import safe_open
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
    setup = {"num_processes": str(self.accelerator.num_processes),
             "distributed_type": str(self.accelerator.distributed_type)}
    rank = os.environ.get("RANK", "none")
    save_file(state, os.path.join(os.environ["HORA_TEST_RANK_DIR"], f"rank{rank}.safetensors"), metadata=setup)
    return result
checkpoints.HoraTrainer.train = train
from hora.cli import app
sys.argv = ["hora", *sys.argv[1:]]
app()
"""


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
def test_accelerate_launch_multi_gpu_flag_runs_two_cpu_processes(tiny_bert, tiny_csv, tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    wrapper = tmp_path / "hora_wrapper.py"
    wrapper.write_text(WRAPPER)
    out, ranks = tmp_path / "run", tmp_path / "ranks"
    ranks.mkdir()
    env = {**os.environ, "HORA_TEST_RANK_DIR": str(ranks), "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1",
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0", str(wrapper),
           "train", "--model", str(tiny_bert), "--data", str(tiny_csv), "--text-column", "review",
           "--label-column", "sentiment", "--batch-size", "4", "--max-length", "16", "--no-progress", "--steps", "4",
           "--lr", "0.01", "--max-eval-samples", "8", "--output", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    assert sorted(p.name for p in ranks.iterdir()) == ["rank0.safetensors", "rank1.safetensors"]
    for rank in (0, 1):
        with safe_open(ranks / f"rank{rank}.safetensors", "pt") as stream:
            assert stream.metadata() == {"num_processes": "2", "distributed_type": "DistributedType.MULTI_CPU"}
    r0, r1 = load_file(ranks / "rank0.safetensors"), load_file(ranks / "rank1.safetensors")
    assert r0.keys() == r1.keys() and r0
    for key in r0:
        assert (r0[key] == r1[key]).all(), f"{key} differs across ranks"
    saved = load_file(out / "adapter_model.safetensors")  # written by the main process only
    assert saved.keys() == r0.keys()
    for key in saved:
        assert (saved[key] == r0[key]).all(), key
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
