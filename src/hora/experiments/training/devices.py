"""The devices and CPUs of one training process, where no launcher decides them.

- One GPU per process. transformers' ``Trainer`` replicates the model over every visible GPU with
  ``nn.DataParallel`` when one process sees several (``hora train`` on a multi-GPU machine without a launcher).
  The harness trains on ``cuda:0`` only, with a one-line notice: DataParallel would also multiply the batch by the
  GPU count (``TrainingArguments.train_batch_size``), so the run would not be the experiment its ``--batch-size``
  names, and PyTorch recommends DistributedDataParallel over it. ``torchrun`` / ``accelerate launch`` start one
  process per GPU (docs/operations.md).
- DataLoader workers (``--dataloader-workers``): the processes that read and decode the examples while the model
  computes, for training and evaluation alike. The default (:func:`dataloader_workers`) uses them where they
  pay: images decoded on the fly for a GPU.
"""

from __future__ import annotations

import os
import warnings

from hora.experiments.errors import HoraWarning
from hora.experiments.training.train_config import world_size

MAX_WORKERS = 8  # beyond this, more workers rarely feed one GPU faster; each holds a copy of the dataset's state


def one_gpu_per_process(args) -> None:
    """Make ``args`` (``TrainingArguments``, or TRL's subclass) train on one GPU: with several GPUs visible to this
    one process, Trainer's GPU count is set to 1 (as Trainer itself does for a model spread over devices), so no
    ``nn.DataParallel`` wraps the model, and a HoraWarning says how to train on all of them."""
    if args.n_gpu <= 1:
        return
    warnings.warn(f"{args.n_gpu} GPUs are visible to this process and no launcher started it: this run trains on "
                  f"{args.device} only; to train on all of them start it with `torchrun --nproc-per-node "
                  f"{args.n_gpu} -m hora train ...` or `accelerate launch` (docs/operations.md, 'Several GPUs')",
                  HoraWarning, stacklevel=2)
    args._n_gpu = 1


def run_cpus() -> int:
    """The CPUs this process may use: under a launcher, the machine's share of each of its processes on this node
    (``LOCAL_WORLD_SIZE``; torchrun gives each process 1 torch thread unless OMP_NUM_THREADS is set); otherwise
    torch's threads (what ``--cpus-per-run`` or Ray gave the run, else torch's default, the cores)."""
    import torch

    if world_size() > 1:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, usable // int(os.environ.get("LOCAL_WORLD_SIZE", world_size())))
    return torch.get_num_threads()


def dataloader_workers(requested: int | None, kind: str) -> int:
    """The DataLoader workers of a run: ``requested`` (``--dataloader-workers``) when given; else, for an image
    task on CUDA, the run's CPUs but one (the training loop's), at most :data:`MAX_WORKERS`; else 0. Texts are
    tokenised once before training, and on a CPU-only run the workers would take the cores that compute."""
    import torch

    if requested is not None:
        return requested
    if kind != "image" or not torch.cuda.is_available():
        return 0
    return max(0, min(MAX_WORKERS, run_cpus() - 1))
