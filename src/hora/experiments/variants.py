"""Named method variants for ``--methods``: HoRA's switches and LoRA baselines, each a base method plus
options, so studies and ablations are plain command lines (``hora compare --methods hora,hora-embed,lora``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hora.experiments.errors import HoraError


@dataclass(frozen=True)
class Variant:
    """``method`` (hora, lora, dora, vera, full) with HoraConfig ``options``; ``match_hora`` gives LoRA the
    smallest rank whose parameter count reaches HoRA's default at the run's rank."""

    method: str
    description: str
    options: dict = field(default_factory=dict)
    match_hora: bool = False


VARIANTS: dict[str, Variant] = {
    "hora": Variant("hora", "HoRA default: residual bias-free MLP generator per layer"),
    "lora": Variant("lora", "PEFT LoRA at the same rank"),
    "dora": Variant("dora", "PEFT DoRA at the same rank"),
    "vera": Variant("vera", "PEFT VeRA at the same rank"),
    "full": Variant("full", "full fine-tuning"),
    "lora-matched": Variant("lora", "PEFT LoRA at the rank matching HoRA's parameter count", match_hora=True),
    "hora-identity": Variant("hora", "control: head factor = seed (exactly LoRA)", {"generator": "identity"}),
    "hora-p32": Variant("hora", "generator width p = 32", {"hidden": 32}),
    "hora-embed": Variant("hora", "embedding hypernetwork (k = d_h / 8)", {"generator": "embedding"}),
    "hora-mix": Variant("hora", "head-mixing generator (H x H, init I)", {"head_mixing": True}),
    "hora-lr16": Variant("hora", "generator learning rate x16 (LoRA+-style)", {"generator_lr_ratio": 16.0}),
    "hora-gain4": Variant("hora", "generator gain 4: phi(4 W1 s)", {"generator_gain": 4.0}),
    "hora-boost": Variant("hora", "generator learning rate x16 and gain 4",
                          {"generator_lr_ratio": 16.0, "generator_gain": 4.0}),
    "hora-joint": Variant("hora", "joint free factor across q/k/v", {"joint_free_factor": True}),
    "hora-module": Variant("hora", "one generator per module (scope=module)", {"scope": "module"}),
    "hora-nores": Variant("hora", "non-residual generator", {"residual": False}),
    "hora-tanh": Variant("hora", "tanh activation", {"activation": "tanh"}),
}


def resolve(name: str) -> Variant:
    """The variant called ``name``, or a one-line error listing the known names."""
    if name not in VARIANTS:
        raise HoraError(f"unknown method '{name}'; choose from: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def matched_rank(r: int, hora_params: int, lora_params_at_r: int) -> int:
    """Smallest LoRA rank r' with r' * (params per rank) >= HoRA's parameter count."""
    per_rank = lora_params_at_r / r
    return max(1, math.ceil(hora_params / per_rank))
