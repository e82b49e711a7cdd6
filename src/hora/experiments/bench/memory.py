"""Peak memory of one training step: the model's and optimizer's state plus the step's allocations.

On CUDA the step's allocations come from the caching allocator's peak (``torch.cuda.max_memory_allocated``
minus what was allocated before the step). On CPU, which has no such counter, :class:`PeakMemory`, a
``TorchDispatchMode``, sees every op's output storages and tracks the peak of those alive at once.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .timing import synchronize
from .variants import Trainer


class PeakMemory(TorchDispatchMode):
    """Peak bytes of tensor storages allocated while the mode is active (any device, CPU included).

    Every op output whose storage is new (not an input's storage, so views and in-place updates are not
    counted twice) is counted until Python frees the storage. Storages that existed before the mode (weights,
    optimizer states) are not counted: add them separately (:func:`state_bytes`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[int, weakref.ref]] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int, _ref: weakref.ref) -> None:
        entry = self.live.pop(key, None)
        if entry is not None:
            self.current -= entry[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        outputs = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in _tensors((args, kwargs))}
        for tensor in _tensors(outputs):
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in inputs or key in self.live:
                continue
            size = storage.nbytes()
            self.live[key] = (size, weakref.ref(storage, lambda ref, key=key: self._free(key, ref)))
            self.current += size
            self.peak = max(self.peak, self.current)
        return outputs


def _tensors(tree: Any) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [t for item in tree for t in _tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in _tensors(item)]
    return []


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Bytes of the distinct storages of the model's parameters and buffers and the optimizer's state."""
    tensors = list(model.parameters()) + list(model.buffers())
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    storages = {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def training_peak_bytes(trainer: Trainer, device: torch.device) -> dict[str, int]:
    """Peak memory of one training step (after a warm-up step created the optimizer state)."""
    trainer.step()
    static = state_bytes(trainer.model, trainer.optimizer)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)  # includes the other variants' models
        trainer.step()
        synchronize(device)
        step = torch.cuda.max_memory_allocated(device) - before
        return {"peak_bytes": static + step, "step_bytes": step, "state_bytes": static}
    tracker = PeakMemory()
    with tracker:
        trainer.step()
    return {"peak_bytes": static + tracker.peak, "step_bytes": tracker.peak, "state_bytes": static}
