"""Parameter accounting and update diagnostics of HoRA adapters.

Diagnostics (DESIGN.md, "Pitfall"): a generated head factor must stay head-specific. Report beside
accuracy, per adapted module:

* stable rank of dW:          ||dW||_F^2 / ||dW||_2^2  (1 for a rank-1 update, up to r)
* head-shared energy:         H ||mean_h F^h||_F^2 / sum_h ||F^h||_F^2 over the head blocks F^h (d_h x r)
                              of the head factor: 1 when all heads are identical, about 1/H when unrelated
* generator share:            ||F - S||_F^2 / ||F||_F^2, the part of the head factor the generator adds to
                              the (head-mixed) seeds (residual form; 1 for non-residual and embedding
                              forms, 0 for identity)
"""

from __future__ import annotations

import torch
from peft import PeftModel
from torch import nn

from .model import HoraModel, iter_hora_layers


def _tuner(model: nn.Module) -> HoraModel:
    tuner = model.base_model if isinstance(model, PeftModel) else model
    if not isinstance(tuner, HoraModel):
        raise TypeError(f"Expected a HoRA PeftModel, got {type(tuner).__name__}.")
    return tuner


def parameter_report(model: nn.Module, adapter_name: str = "default") -> dict[str, int | float]:
    """Exact parameter counts of one HoRA adapter.

    Returns a dict with ``seeds`` (sum_P n_P H_P d_h r), ``free_factors`` (LoRA-like factors and joint
    maps in the layers), ``shared_free`` (joint free-factor seeds), ``generator`` (W1 and W2: per layer
    p d_h (1 + |P|) for scope="layer"), ``hora`` (their sum), ``lora_equivalent`` (a LoRA of the same rank
    on the same modules: sum r (d_in + d_out)), ``overhead_vs_lora`` (hora / lora_equivalent - 1),
    ``other_trainable`` (e.g. modules_to_save), ``trainable`` (every parameter with requires_grad) and
    ``total`` (all parameters of the model).
    """
    tuner = _tuner(model)
    if adapter_name not in tuner.hora_bank:
        raise ValueError(f"No HoRA adapter named '{adapter_name}'; available: {sorted(tuner.hora_bank)}.")
    bank = tuner.hora_bank[adapter_name]
    r = tuner.peft_config[adapter_name].r
    free = lora = 0
    for _, layer in iter_hora_layers(tuner.model):
        if adapter_name not in layer.hora_plans:
            continue
        free += sum(getattr(layer, attr)[adapter_name].numel() for attr in layer.adapter_layer_names
                    if adapter_name in getattr(layer, attr))
        lora += r * (layer.in_features + layer.out_features)
    seeds = sum(s.numel() for s in bank.seeds.values())
    shared_free = bank.shared_free.numel() if bank.shared_free is not None else 0
    generator = bank.generated_parameters()
    hora = seeds + free + shared_free + generator
    hora_ids = {id(p) for p in bank.parameters()}
    for _, layer in iter_hora_layers(tuner.model):
        for attr in layer.adapter_layer_names:
            hora_ids.update(id(p) for p in getattr(layer, attr).parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    return {
        "seeds": seeds,
        "free_factors": free,
        "shared_free": shared_free,
        "generator": generator,
        "hora": hora,
        "lora_equivalent": lora,
        "overhead_vs_lora": hora / lora - 1.0,
        "other_trainable": sum(p.numel() for p in trainable if id(p) not in hora_ids),
        "trainable": sum(p.numel() for p in trainable),
        "total": sum(p.numel() for p in model.parameters()),
    }


def stable_rank(delta: torch.Tensor) -> float:
    """||dW||_F^2 / ||dW||_2^2 (0 for a zero update)."""
    delta = delta.detach().float()
    spectral = torch.linalg.matrix_norm(delta, ord=2)
    if spectral == 0:
        return 0.0
    return float(torch.linalg.matrix_norm(delta) ** 2 / spectral**2)


def head_shared_energy(blocks: torch.Tensor) -> float:
    """H ||mean_h F^h||^2 / sum_h ||F^h||^2 for head blocks ``blocks`` of shape (H, d_h, r)."""
    blocks = blocks.detach().float()
    total = blocks.pow(2).sum()
    if total == 0:
        return 0.0
    return float(blocks.shape[0] * blocks.mean(dim=0).pow(2).sum() / total)


def _residual_seeds(bank, projection: str, index: int) -> torch.Tensor:
    """The seeds the residual path carries: S, or the head-mixed M S."""
    seeds = bank.seeds[projection][index]
    if projection in bank.mixing:
        return torch.einsum("hk,kdr->hdr", bank.mixing[projection][index], seeds)
    return seeds


def generator_share(factor: torch.Tensor, seeds: torch.Tensor, bank) -> float:
    """||F - S||^2 / ||F||^2 (residual forms), 1 when the factor is all generated, 0 for identity."""
    if not bank.uses_generator:
        return 0.0
    if not bank.residual:
        return 1.0
    return float((factor - seeds).pow(2).sum() / factor.pow(2).sum())


@torch.no_grad()
def adapter_diagnostics(model: nn.Module, adapter_name: str = "default") -> dict[str, float]:
    """Means over adapted modules of stable rank, head-shared energy (per head-split section) and
    generator share, plus the per-module values under ``modules``."""
    tuner = _tuner(model)
    bank = tuner.hora_bank[adapter_name]
    generated = bank.generate()
    modules = {}
    for name, layer in iter_hora_layers(tuner.model):
        plan = layer.hora_plans.get(adapter_name)
        if plan is None:
            continue
        factor = torch.cat([generated[s.projection][s.index] for s in plan.slots]) / bank.scaling
        seeds = torch.cat([_residual_seeds(bank, s.projection, s.index) for s in plan.slots])
        energy = factor.pow(2).sum()
        modules[name] = {
            "stable_rank": stable_rank(layer.get_delta_weight(adapter_name)),
            "head_shared_energy": sum(
                head_shared_energy(generated[s.projection][s.index]) for s in plan.slots
            ) / len(plan.slots),
            "generator_share": generator_share(factor, seeds, bank) if energy > 0 else 0.0,
        }
    keys = ("stable_rank", "head_shared_energy", "generator_share")
    summary = {k: sum(m[k] for m in modules.values()) / len(modules) for k in keys}
    summary["modules"] = modules
    return summary
