"""DDP on CPU: ``torchrun --nproc-per-node 2`` runs ``hora train`` (gloo, loopback only) on the tiny BERT.

After training every rank writes its trainable parameters to a rank-suffixed file (through a small test
wrapper around ``hora``'s entry point). DDP must leave them identical across ranks; the adapter the main
process saves must be exactly those tensors; and, ``--batch-size`` being the global batch, they must equal
a single process's run with the same arguments up to float rounding (the BERT here has no dropout, whose
masks each process would draw on its own). The run checkpoints, so the per-rank RNG and loss files of a
distributed checkpoint are checked, and resuming from its first checkpoint under torchrun again ends
exactly where the uninterrupted run ended.
"""

from __future__ import annotations

import json
import shutil
import sys

import pandas as pd
import pytest
import torch
from conftest import make_rows
from launch_helpers import (
    assert_ranks_agree_with_saved_adapter,
    gloo_run_dirs,
    launch,
    tiny_train_args,
    write_wrapper,
)
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
TORCHRUN = ["torchrun", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def ddp_run(tiny_bert_without_dropout, tmp_path_factory) -> dict:
    """One 4-step torchrun run with checkpoints every 2 steps, and its arguments."""
    tmp = tmp_path_factory.mktemp("ddp")
    out, ranks = gloo_run_dirs(tmp)
    csv = tmp / "reviews.csv"
    pd.DataFrame(make_rows()).to_csv(csv, index=False)
    wrapper = write_wrapper(tmp)
    args = [*tiny_train_args(tiny_bert_without_dropout, csv, out), "--save-every", "2"]
    launch(TORCHRUN, wrapper, args, ranks)
    return {"out": out, "ranks": ranks, "csv": csv, "wrapper": wrapper, "tmp": tmp}


def test_torchrun_two_processes_keep_identical_adapters_and_checkpoint_every_rank(ddp_run):
    out = ddp_run["out"]
    saved = assert_ranks_agree_with_saved_adapter(ddp_run["ranks"], out)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4
    ckpt = out / "checkpoints" / "checkpoint-4"
    names = {p.name for p in ckpt.iterdir()}
    halfway = load_file(out / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors")
    assert any((halfway[k] != saved[k]).any() for k in saved)  # steps 3-4 moved the adapter
    assert {"rng_state_0.pth", "rng_state_1.pth", "hora_state_0.json", "hora_state_1.json"} <= names, names


def test_two_processes_equal_one_process_with_the_same_global_batch(ddp_run, tiny_bert_without_dropout,
                                                                      tmp_path):
    single_ranks = tmp_path / "ranks"
    single_ranks.mkdir()
    args = [*tiny_train_args(tiny_bert_without_dropout, ddp_run["csv"], tmp_path / "run"), "--save-every", "2"]
    launch([sys.executable], ddp_run["wrapper"], args, single_ranks)

    single = load_file(single_ranks / "ranknone.safetensors")
    ddp = load_file(ddp_run["ranks"] / "rank0.safetensors")
    assert single.keys() == ddp.keys()
    for key in single:  # the two runs differ only in the order of float sums
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-6, msg=key)
    one = json.loads((tmp_path / "run" / "metrics.json").read_text())
    two = json.loads((ddp_run["out"] / "metrics.json").read_text())
    # the loss is the mean over the global batch, not multiplied by the number of processes
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
    assert two["accuracy"] == one["accuracy"] and two["val_accuracy"] == one["val_accuracy"]


def test_torchrun_resumes_from_a_checkpoint_to_the_uninterrupted_result(ddp_run, tiny_bert_without_dropout):
    cut = ddp_run["tmp"] / "cut"
    shutil.copytree(ddp_run["out"], cut)
    shutil.rmtree(cut / "checkpoints" / "checkpoint-4")  # as if killed between step 2's and step 4's saves
    for name in ("adapter_model.safetensors", "adapter_config.json", "metrics.json"):
        (cut / name).unlink()
    ranks = ddp_run["tmp"] / "resumed_ranks"
    ranks.mkdir()
    args = [*tiny_train_args(tiny_bert_without_dropout, ddp_run["csv"], cut), "--resume"]
    launch(TORCHRUN, ddp_run["wrapper"], args, ranks)

    resumed = assert_ranks_agree_with_saved_adapter(ranks, cut)
    uninterrupted = load_file(ddp_run["out"] / "adapter_model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    before = json.loads((ddp_run["out"] / "metrics.json").read_text())
    after = json.loads((cut / "metrics.json").read_text())
    assert after["train_loss"] == before["train_loss"] and after["accuracy"] == before["accuracy"]
