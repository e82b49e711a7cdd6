"""Optimizer parameter groups for HoRA: a larger learning rate for the shared generator (LoRA+-style).

The shared generator's gradient sums over every head's columns and is small at the start (W2 = 0,
seeds = 0), so by default it barely moves; ``HoraConfig.generator_lr_ratio`` scales its learning rate.
"""

from __future__ import annotations

from torch import nn

from .tuner.model import find_hora_tuner


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0) -> list[dict]:
    """AdamW-style groups: the generators of every HoRA adapter at ``lr * generator_lr_ratio``, every other
    trainable parameter (seeds, free factors, modules_to_save) at ``lr``. Frozen parameters are left out."""
    tuner = find_hora_tuner(model)
    boosted: dict[int, float] = {}
    if tuner is not None:
        for name, bank in tuner.hora_bank.items():
            ratio = tuner.peft_config[name].generator_lr_ratio
            boosted.update({id(p): ratio for p in bank.generator_parameters()})
    groups: dict[float, list[nn.Parameter]] = {}
    for parameter in model.parameters():
        if parameter.requires_grad:
            groups.setdefault(boosted.get(id(parameter), 1.0), []).append(parameter)
    return [{"params": params, "lr": lr * ratio, "weight_decay": weight_decay}
            for ratio, params in sorted(groups.items())]
