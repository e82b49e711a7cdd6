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
import shutil

import pytest
from launch_helpers import (
    assert_ranks_agree_with_saved_adapter,
    gloo_run_dirs,
    launch,
    tiny_train_args,
    write_wrapper,
)
from safetensors import safe_open


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
def test_accelerate_launch_multi_gpu_flag_runs_two_cpu_processes(tiny_bert, tiny_csv, tmp_path):
    out, ranks = gloo_run_dirs(tmp_path)
    launcher = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0"]
    launch(launcher, write_wrapper(tmp_path), tiny_train_args(tiny_bert, tiny_csv, out), ranks)

    assert sorted(p.name for p in ranks.iterdir()) == ["rank0.safetensors", "rank1.safetensors"]
    for rank in (0, 1):
        with safe_open(ranks / f"rank{rank}.safetensors", "pt") as stream:
            assert stream.metadata() == {"num_processes": "2", "distributed_type": "DistributedType.MULTI_CPU"}
    assert_ranks_agree_with_saved_adapter(ranks, out)
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
