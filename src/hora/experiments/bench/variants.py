"""The compared variants on one workload: PEFT's LoRA, a minimal LoRA, HoRA (MLP and joint generator).

Nothing is measured here. :func:`build_variant` gives every variant the same base model, rank, alpha and
targets, with its adapters in the model's dtype; :class:`Trainer` is one variant's model, AdamW and a
training step, the unit that :mod:`~hora.experiments.bench.timing` and
:mod:`~hora.experiments.bench.memory` measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import peft
import torch
from torch import nn

from hora import HoraConfig, find_attention_targets

from .workloads import Workload

VARIANTS = ("peft_lora", "minimal_lora", "hora", "hora_joint")


class MinimalLoRA(nn.Module):
    """``y = base(x) + (x A^T) B^T * s``: LoRA with nothing else on the hot path (the cost floor)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        weight = base.weight
        self.A = nn.Parameter(torch.empty(r, base.in_features, device=weight.device, dtype=weight.dtype))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, device=weight.device, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scaling = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling


def apply_minimal_lora(model: nn.Module, targets: list[str], r: int, alpha: float) -> nn.Module:
    """Freeze ``model`` and wrap every module named in ``targets`` with :class:`MinimalLoRA`."""
    model.requires_grad_(False)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, MinimalLoRA(getattr(parent, child), r, alpha))
    return model


@dataclass
class Settings:
    """What every variant shares."""

    r: int = 16
    alpha: float = 32.0
    projections: tuple[str, ...] = ("q", "k", "v")


def build_variant(workload: Workload, variant: str, settings: Settings, device: torch.device) -> nn.Module:
    """A fresh model of ``workload`` with the adapters of ``variant`` (or none for ``base``), on ``device``."""
    model = workload.build()
    targets = find_attention_targets(model, list(settings.projections))
    if variant == "base":
        model.requires_grad_(False)
    elif variant == "peft_lora":
        config = peft.LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=0.0, target_modules=targets)
        model = peft.get_peft_model(model, config)
    elif variant == "minimal_lora":
        model = apply_minimal_lora(model, targets, settings.r, settings.alpha)
    elif variant in ("hora", "hora_joint"):
        config = HoraConfig(r=settings.r, alpha=settings.alpha, projections=list(settings.projections),
                            generator="joint" if variant == "hora_joint" else "mlp")
        model = peft.get_peft_model(model, config)
    else:
        raise ValueError(f"Unknown variant {variant!r}; expected base or one of {VARIANTS}.")
    # adapters in the model's dtype for every variant, so that no variant pays casts the others do not
    return model.to(device=device, dtype=workload.dtype)


class Trainer:
    """One variant's model, optimizer and a callable training step."""

    def __init__(self, workload: Workload, variant: str, settings: Settings, device: torch.device) -> None:
        self.model = build_variant(workload, variant, settings, device)
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4)
        self.batch = workload.inputs(device)
        self.loss = workload.loss

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(**self.batch))
        loss.backward()
        self.optimizer.step()
