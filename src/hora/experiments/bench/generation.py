"""How often HoRA's banks generate their factors, and how many products one generation dispatches.

Observed through public hooks only: a bank generates by being called as a module (``bank()``, see
:class:`hora.tuner.generator.FactorBank`), so a forward pre-hook on every bank counts the generations and, with
a forward hook, brackets each one in a ``TorchDispatchMode`` that counts the aten ops it dispatches. No
method of a live object is replaced, and adapted layers are recognised by ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from hora import HoraLayer
from hora.tuner.generator import FactorBank

MATMUL_OPS = ("mm", "bmm", "addmm", "baddbmm", "matmul", "einsum", "dot", "mv")


class OpCounter(TorchDispatchMode):
    """Counts the aten ops (by overload packet name, e.g. ``bmm``) dispatched while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops[name] = self.ops.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


class GenerationCounter:
    """Forward hooks on every :class:`~hora.tuner.generator.FactorBank` of ``model``: ``calls`` counts the
    generations, ``counter.ops`` the aten ops dispatched inside them. A context manager; leaving it
    removes the hooks."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self.counter = OpCounter()
        self._handles = []
        for bank in (m for m in model.modules() if isinstance(m, FactorBank)):
            self._handles.append(bank.register_forward_pre_hook(self._enter))
            # always_call: the mode is left even if a generation raises
            self._handles.append(bank.register_forward_hook(self._exit, always_call=True))

    def _enter(self, bank: nn.Module, args: Any) -> None:
        self.calls += 1
        self.counter.__enter__()

    def _exit(self, bank: nn.Module, args: Any, output: Any) -> None:
        self.counter.__exit__(None, None, None)

    def __enter__(self) -> GenerationCounter:
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def generation_counts(model: nn.Module, batch: dict[str, torch.Tensor], loss: Callable[[Any], torch.Tensor],
                      eval_forwards: int = 3) -> dict[str, Any]:
    """How often a HoRA model's banks generate and how many products one generation dispatches.

    Returns the number of generations in one training step (forward + backward) and in ``eval_forwards``
    no-grad forwards, the aten ops of one generation (all layers' head factors), and the number of
    adapted layers they serve.
    """
    try:
        with GenerationCounter(model) as generations:
            model.train()
            model.zero_grad(set_to_none=True)
            loss(model(**batch)).backward()
            train_calls, ops_per_step = generations.calls, dict(generations.counter.ops)
            model.eval()
            generations.calls = 0
            with torch.no_grad():
                for _ in range(eval_forwards):
                    model(**batch)
            eval_calls = generations.calls
    finally:
        model.train()
    layers = sum(1 for m in model.modules() if isinstance(m, HoraLayer))
    matmuls = sum(n for op, n in ops_per_step.items() if op in MATMUL_OPS)
    return {"generations_per_training_step": train_calls, "generations_in_eval_forwards": eval_calls,
            "eval_forwards": eval_forwards, "generator_matmuls_per_step": matmuls,
            "generator_ops_per_step": ops_per_step, "adapted_layers": layers}
