"""Shared by the multi-process tests (torchrun, accelerate launch): a wrapper around ``hora``'s entry point
that makes every rank write its trainable parameters (and what Accelerate set up) to a rank-suffixed file,
the loopback-only environment, and the check that all ranks and the saved adapter agree exactly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from safetensors.torch import load_file

WRAPPER = """
import os, sys
from peft import get_peft_model_state_dict
from safetensors.torch import save_file
from hora.experiments.training import checkpoints
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


def gloo_run_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(output folder, rank folder) for a 2-process run; skips the test without torch.distributed + gloo."""
    import pytest
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    out, ranks = tmp_path / "run", tmp_path / "ranks"
    ranks.mkdir()
    return out, ranks


def write_wrapper(folder: Path) -> Path:
    path = folder / "hora_wrapper.py"
    path.write_text(WRAPPER)
    return path


def loopback_env(rank_dir: Path) -> dict[str, str]:
    """Environment for 2 CPU processes on gloo over loopback, one thread each, no CUDA; their temp dir is
    inside the test's own (torchrun leaves its torchelastic_* log folders behind)."""
    tmp = rank_dir.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "HORA_TEST_RANK_DIR": str(rank_dir), "GLOO_SOCKET_IFNAME": "lo",
            "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp)}


def launch(launcher: list[str], wrapper: Path, args: list[str], rank_dir: Path) -> None:
    """Run ``hora`` through the test wrapper under ``launcher`` (torchrun, accelerate launch, python)."""
    done = subprocess.run([*launcher, str(wrapper), *args], env=loopback_env(rank_dir), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


def tiny_train_args(tiny_bert: Path, tiny_csv: Path, out: Path) -> list[str]:
    """``hora train`` arguments: 4 steps on the tiny BERT and CSV."""
    return ["train", "--model", str(tiny_bert), "--data", str(tiny_csv), "--text-column", "review",
            "--label-column", "sentiment", "--batch-size", "4", "--max-length", "16", "--no-progress", "--steps", "4",
            "--lr", "0.01", "--max-eval-samples", "8", "--output", str(out)]


def assert_ranks_agree_with_saved_adapter(rank_dir: Path, out: Path) -> dict:
    """Both ranks' trainable parameters are identical and equal the adapter the main process saved."""
    r0, r1 = load_file(rank_dir / "rank0.safetensors"), load_file(rank_dir / "rank1.safetensors")
    assert r0.keys() == r1.keys() and r0
    for key in r0:
        assert (r0[key] == r1[key]).all(), f"{key} differs across ranks"
    saved = load_file(out / "adapter_model.safetensors")  # written by the main process only
    assert saved.keys() == r0.keys()
    for key in saved:
        assert (saved[key] == r0[key]).all(), key
    return saved
