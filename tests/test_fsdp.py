"""FSDP2 on CPU: ``torchrun --nproc-per-node 2`` trains a HoRA model sharded with :func:`hora.fsdp.fully_shard_blocks`.

A worker script trains the tiny BERT (sequence classification, PEFT's ``modules_to_save`` head in the root
unit) and the tiny Llama (GQA) of ``tests/tiny_models.py`` for a few SGD steps, once alone on the full batch
and once under FSDP2 (gloo, loopback only) with half the batch per process, and saves the gathered
(``full_tensor``) trainable parameters and the no-grad logits after every step. FSDP must reproduce the
single-process update of every parameter (HoRA's bank included) and the evaluation outputs, which also
shows that the bank's no-grad factor cache is not stale after a sharded optimiser step.

SGD, not AdamW: Adam's first steps divide a gradient by its own magnitude, so entries whose gradient is
rounding noise (summation order differs between one process and a reduce-scatter) move by a whole
learning rate either way: in a trial with AdamW the two runs agreed only to ~8e-4 of the change; with SGD
every difference is within 1e-5 of the change or below one float32 ulp of the tensor.
The models run in eval mode (no dropout), so both runs draw no random numbers while training.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hora.fsdp import block_classes, fully_shard_blocks
from tiny_models import make_model

TESTS_DIR = Path(__file__).resolve().parent
KINDS = ("bert", "llama_gqa", "llama_gqa:joint")  # model kind, optionally ":generator"
STEPS = 3
RTOL = 1e-5

WORKER = """
import os, sys
import torch
sys.path.insert(0, os.environ["HORA_TESTS_DIR"])
from safetensors.torch import save_file
from tiny_models import make_inputs, make_model, task_type
import hora, peft
from hora.fsdp import fully_shard_blocks
from hora.tuner.generator import FactorBank

STEPS, BATCH = int(os.environ["HORA_TEST_STEPS"]), 4
world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def gathered(param):
    return param.full_tensor() if hasattr(param, "full_tensor") else param


def check_bank_in_root(model):
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor
    assert isinstance(model, FSDPModule)
    units = [m for m in model.modules() if isinstance(m, FSDPModule) and m is not model]
    assert units and not any(isinstance(x, FactorBank) for unit in units for x in unit.modules())
    banks = [m for m in model.modules() if isinstance(m, FactorBank)]
    assert banks and all(isinstance(p, DTensor) for bank in banks for p in bank.parameters())


def run(name, out):
    kind, _, generator = name.partition(":")
    config = hora.HoraConfig(r=4, init_weights=False, task_type=task_type(kind), generator=generator or "mlp")
    model = peft.get_peft_model(make_model(kind), config)
    if world > 1:
        fully_shard_blocks(model)
        check_bank_in_root(model)
    init = {n: gathered(p).detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD(hora.param_groups(model, 0.5, 0.0))
    mine = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    saved = {}
    for step in range(STEPS):
        inputs = make_inputs(kind, batch=BATCH, length=6, seed=step)
        labels = torch.arange(BATCH) % 2 if task_type(kind) else inputs["input_ids"]
        model(**{k: v[mine] for k, v in inputs.items()}, labels=labels[mine]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            saved[f"logits.{step}"] = model(**make_inputs(kind, batch=2, seed=99)).logits
    saved.update({f"init.{n}": p for n, p in init.items()})
    saved.update({f"param.{n}": gathered(p).detach() for n, p in model.named_parameters() if n in init})
    if rank == 0:
        save_file({k: v.contiguous() for k, v in saved.items()}, os.path.join(out, f"{name}.safetensors"))


if world > 1:
    torch.distributed.init_process_group("gloo")
for kind in sys.argv[2:]:
    run(kind, sys.argv[1])
if world > 1:
    torch.distributed.barrier()  # without it, a rank that tears gloo down while rank 0 still writes may abort
    torch.distributed.destroy_process_group()
    # everything is saved: leave without interpreter teardown, where gloo's threads have aborted a loaded
    # machine's process once ("terminate called without an active exception")
    sys.stdout.flush()
    os._exit(0)
"""


def _env(tmp: Path) -> dict[str, str]:
    """``tmp``: the processes' temp dir, inside the test's own (torchrun leaves torchelastic_* folders)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "HORA_TESTS_DIR": str(TESTS_DIR), "HORA_TEST_STEPS": str(STEPS), "GLOO_SOCKET_IFNAME": "lo",
            "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp)}


def _run(launcher: list[str], worker: Path, out: Path) -> None:
    out.mkdir()
    tmp = out.parent / f"{out.name}-tmp"
    tmp.mkdir()
    done = subprocess.run([*launcher, str(worker), str(out), *KINDS], env=_env(tmp), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH (torch's launcher)")
def test_fsdp2_two_processes_match_one_process(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    worker = tmp_path / "fsdp_worker.py"
    worker.write_text(WORKER)
    _run([sys.executable], worker, tmp_path / "single")
    _run(["torchrun", "--standalone", "--nproc-per-node", "2"], worker, tmp_path / "fsdp")

    for kind in KINDS:
        single = load_file(tmp_path / "single" / f"{kind}.safetensors")
        sharded = load_file(tmp_path / "fsdp" / f"{kind}.safetensors")
        assert single.keys() == sharded.keys()
        names = [key.removeprefix("param.") for key in single if key.startswith("param.")]
        assert any(".hora_bank." in name for name in names), "the bank's parameters were not compared"
        for name in names:
            assert torch.equal(single[f"init.{name}"], sharded[f"init.{name}"]), f"{kind} {name}: other init"
            _check_update(f"{kind} {name}", single[f"init.{name}"], single[f"param.{name}"], sharded[f"param.{name}"])
        for step in range(1, STEPS):
            before, after = single[f"logits.{step - 1}"], single[f"logits.{step}"]
            _check_update(f"{kind} logits after step {step}", before, after, sharded[f"logits.{step}"])


def _check_update(what: str, start: torch.Tensor, single: torch.Tensor, sharded: torch.Tensor) -> None:
    """``sharded`` equals ``single`` up to RTOL of the change ``single - start``, plus 4 float32 ulps of the
    tensor's scale (a small change of a large tensor is below RTOL of float32 resolution); and that change
    spans many ulps, so the comparison is not empty."""
    moved = (single - start).abs().max()
    ulp = torch.finfo(torch.float32).eps * single.abs().max()
    assert moved > 25 * ulp, f"{what} barely moved ({moved:.3g}): the comparison would be empty"
    error = (sharded - single).abs().max()
    assert error <= RTOL * moved + 4 * ulp, f"{what}: max |FSDP - single| = {error:.3g}, change {moved:.3g}"


@pytest.fixture
def hora_bert() -> torch.nn.Module:
    import peft

    import hora

    return peft.get_peft_model(make_model("bert"), hora.HoraConfig(r=2))


def test_block_classes_are_the_transformer_blocks(hora_bert):
    from transformers.models.bert.modeling_bert import BertEmbeddings, BertLayer

    assert block_classes(hora_bert) == {BertEmbeddings, BertLayer}


def test_fully_shard_blocks_refuses_to_shard_the_bank_away_from_the_root(hora_bert):
    from hora import HoraModel

    with pytest.raises(ValueError, match="holds a HoRA bank"):
        fully_shard_blocks(hora_bert, {HoraModel})
    with pytest.raises(ValueError, match="no transformer block"):
        fully_shard_blocks(hora_bert, set())
