"""Parameter accounting and update diagnostics of HoRA adapters.

Diagnostics (DESIGN.md, "Pitfall"): a generated head factor must stay head-specific. Report beside
accuracy, per adapted module:

* stable rank of dW:          ||dW||_F^2 / ||dW||_2^2  (1 for a rank-1 update, up to r)
* head-shared energy:         H ||mean_h F^h||_F^2 / sum_h ||F^h||_F^2 over the head blocks F^h (d_h x r)
                              of the head factor: 1 when all heads are identical, about 1/H when unrelated
* generator share:            ||F - S||_F^2 / ||F||_F^2, the part of the head factor the generator adds to
                              the (head-mixed) seeds (residual form; 1 for non-residual and embedding
                              forms, 0 for identity)
* cross-head influence:       how far a gradient step taken for one head moves the other heads' factors.
                              With u a random direction on head h's block of one module's head factor
                              F (H, d_h, r) and J the Jacobian of F with respect to all bank parameters,
                              a step along -J^T u moves the factors by dF = -J J^T u (first order);
                              influence = (||dF_{h' != h}|| / sqrt(H - 1)) / ||dF_h||, averaged over heads
                              and modules: 0 for independent heads (LoRA, identity), 1 when every other head
                              moves as much as h itself

Stable rank and head-shared energy are defined for any low-rank update: :func:`lora_diagnostics` gives them
for PEFT LoRA/DoRA adapters, splitting the same factor by heads (B for q/k/v, A^T for o).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from peft.tuners.lora import LoraLayer
from torch import nn
from torch.func import functional_call, jvp, vjp

from .tuner.heads import HeadLayout, discover_layout
from .tuner.model import hora_tuner, iter_hora_layers


def parameter_report(model: nn.Module, adapter_name: str = "default") -> dict[str, int | float]:
    """Exact parameter counts of one HoRA adapter.

    Returns a dict with ``seeds`` (sum_P n_P H_P d_h r), ``free_factors`` (LoRA-like factors and joint
    maps in the layers), ``shared_free`` (joint free-factor seeds), ``generator`` (W1 and W2: per layer
    p d_h (1 + |P|) for scope="layer"), ``hora`` (their sum), ``lora_equivalent`` (a LoRA of the same rank
    on the same modules: sum r (d_in + d_out)), ``overhead_vs_lora`` (hora / lora_equivalent - 1),
    ``other_trainable`` (e.g. modules_to_save), ``trainable`` (every parameter with requires_grad) and
    ``total`` (all parameters of the model).
    """
    tuner = hora_tuner(model)
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
    counts = bank.parameter_counts()
    seeds, shared_free, generator = counts["seeds"], counts["shared_free"], counts["generator"]
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


def head_blocks(factor: torch.Tensor, layout: HeadLayout) -> list[torch.Tensor]:
    """A module's head factor (heads x d_h, r), split by the sections of its layout into (H, d_h, r) blocks."""
    sizes = [section.num_heads * layout.head_dim for section in layout.sections]
    return [block.reshape(section.num_heads, layout.head_dim, -1)
            for section, block in zip(layout.sections, factor.split(sizes), strict=True)]


def _mean_shared_energy(blocks: Sequence[torch.Tensor]) -> float:
    """Head-shared energy of one module: the mean over its head-split blocks (one per projection section)."""
    return sum(head_shared_energy(block) for block in blocks) / len(blocks)


def _module_means(modules: dict[str, dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """Each of ``keys`` averaged over the per-module values ``modules``."""
    return {k: sum(m[k] for m in modules.values()) / len(modules) for k in keys}


def _residual_seeds(bank, projection: str, index: int) -> torch.Tensor:
    """The seeds the residual path carries: S, or the head-mixed M S."""
    seeds = bank.seeds[projection][index]
    if projection in bank.mixing:
        return torch.einsum("hk,kdr->hdr", bank.mixing[projection][index], seeds)
    return seeds


def generator_share(factor: torch.Tensor, bank, plan) -> float:
    """||F - S||^2 / ||F||^2 (residual forms; 0 while F = 0), 1 when the factor is all generated
    (non-residual, embedding and joint forms, by construction), 0 for identity."""
    if not bank.uses_generator:
        return 0.0
    if not bank.residual:
        return 1.0
    if factor.pow(2).sum() == 0:
        return 0.0
    seeds = torch.cat([_residual_seeds(bank, s.projection, s.index) for s in plan.slots])
    return float((factor - seeds).pow(2).sum() / factor.pow(2).sum())


@torch.no_grad()
def mean_generator_share(model: nn.Module, adapter_name: str = "default") -> float:
    """The generator share (module docstring) averaged over the adapted modules, without the costlier
    diagnostics of :func:`adapter_diagnostics` (cheap enough to log every step)."""
    tuner = hora_tuner(model)
    bank = tuner.hora_bank[adapter_name]
    generated = bank.generate()
    shares = []
    for _, layer in iter_hora_layers(tuner.model):
        plan = layer.hora_plans.get(adapter_name)
        if plan is not None:
            factor = torch.cat([generated[s.projection][s.index] for s in plan.slots]) / bank.scaling
            shares.append(generator_share(factor, bank, plan))
    return sum(shares) / len(shares)


def cross_head_influence(bank: nn.Module, seed: int = 0) -> float:
    """Mean cross-head influence of a bank's head factors (module docstring), over every head of every
    head-split block with at least two heads; 0.0 when there is none. Directions u are N(0, 1), seeded."""
    params = {name: p.detach() for name, p in bank.named_parameters()}

    def heads_only(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in functional_call(bank, values, ()).items() if k != "free"}

    factors, pullback = vjp(heads_only, params)
    generator = torch.Generator().manual_seed(seed)
    ratios = []
    for projection, stacked in factors.items():
        n, heads = stacked.shape[:2]
        if heads < 2:
            continue
        for index in range(n):
            for head in range(heads):
                direction = {k: torch.zeros_like(v) for k, v in factors.items()}
                direction[projection][index, head] = torch.randn(stacked.shape[2:], generator=generator)
                (step,) = pullback(direction)
                moved = jvp(heads_only, (params,), (step,))[1][projection][index]  # (H, d_h, r)
                own = moved[head].norm()
                if own == 0:
                    continue
                others = torch.cat([moved[:head], moved[head + 1:]]).norm() / (heads - 1) ** 0.5
                ratios.append(float(others / own))
    return sum(ratios) / len(ratios) if ratios else 0.0


@torch.no_grad()
def adapter_diagnostics(model: nn.Module, adapter_name: str = "default") -> dict[str, float]:
    """Means over adapted modules of stable rank, head-shared energy (per head-split section) and
    generator share, the bank's cross-head influence, and the per-module values under ``modules``."""
    tuner = hora_tuner(model)
    bank = tuner.hora_bank[adapter_name]
    generated = bank.generate()
    modules = {}
    for name, layer in iter_hora_layers(tuner.model):
        plan = layer.hora_plans.get(adapter_name)
        if plan is None:
            continue
        factor = torch.cat([generated[s.projection][s.index] for s in plan.slots]) / bank.scaling
        modules[name] = {
            "stable_rank": stable_rank(layer.get_delta_weight(adapter_name)),
            "head_shared_energy": _mean_shared_energy([generated[s.projection][s.index] for s in plan.slots]),
            "generator_share": generator_share(factor, bank, plan),
        }
    summary = _module_means(modules, ("stable_rank", "head_shared_energy", "generator_share"))
    with torch.enable_grad():
        summary["cross_head_influence"] = cross_head_influence(bank)
    summary["modules"] = modules
    return summary


@torch.no_grad()
def lora_diagnostics(model: nn.Module, adapter_name: str = "default") -> dict:
    """Means over the modules of a PEFT LoRA or DoRA adapter of the stable rank of dW and the head-shared energy
    of its head factor (B for modules split by output rows, A^T for o, split by the head layout HoRA would
    read), and the per-module values under ``modules``; {} when no module carries the adapter. The same
    quantities as :func:`adapter_diagnostics`, so the methods are compared on equal terms."""
    inner = model.get_base_model()
    modules = {}
    for name, module in inner.named_modules():
        if not isinstance(module, LoraLayer) or adapter_name not in module.lora_A:
            continue
        layout = discover_layout(name, module.get_base_layer(), inner.config)
        factor = (module.lora_B[adapter_name].weight if layout.side == "out"
                  else module.lora_A[adapter_name].weight.T)  # (heads x d_h, r)
        modules[name] = {
            "stable_rank": stable_rank(module.get_delta_weight(adapter_name)),
            "head_shared_energy": _mean_shared_energy(head_blocks(factor, layout)),
        }
    if not modules:
        return {}
    return {**_module_means(modules, ("stable_rank", "head_shared_energy")), "modules": modules}
