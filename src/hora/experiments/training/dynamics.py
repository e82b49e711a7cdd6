"""Training dynamics of the first steps: which parameters move, and how fast the factors they make move.

For each method, a normal training run (:func:`hora.experiments.training.train.train`) records, at every optimiser
step t, the update norm ||theta_{t+1} - theta_t||_F of every parameter group (summed in quadrature over the
group's tensors), and the update norms of the effective factors of every adapted module, A (r x d_in) and
B (d_out x r) with the scaling folded into B, summed in quadrature over modules:

    group update     u_g(t) = sqrt(sum_{theta in g} ||theta_{t+1} - theta_t||_F^2)
    factor update    u_B(t) = sqrt(sum_modules ||s B_{t+1} - s B_t||_F^2)    (likewise u_A(t))

Groups are found by parameter name: LoRA's A and B; the residual HoRA's seeds, generator body W1 and output
heads W2 and free factors; the joint form's per-head seeds B_h, free seed Abar, bodies W1B, W1A and output
layers W2B, W2A. A generator that is idle shows as a group whose update norm stays orders of magnitude below
the seeds' while the factor it makes moves like LoRA's. For HoRA the generator share of the head factor
(``hora.diagnostics``: the part of the factor the generator makes, 1 for the joint form by construction) is
logged after every step too: Adam moves every parameter by about the learning rate whatever its gradient,
so an idle generator shows in its share, not in its update norm.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from hora.experiments.training.train import train
from hora.experiments.training.train_config import TrainConfig
from hora.io import atomic_write_json

GROUPS: tuple[tuple[str, str], ...] = (
    (r"lora_A\.", "LoRA A"),
    (r"lora_B\.", "LoRA B"),
    (r"hora_bank\.[^.]+\.head_seeds$", "seeds B_h"),
    (r"hora_bank\.[^.]+\.free_seeds$", "free seed Abar"),
    (r"hora_bank\.[^.]+\.head_body$", "body W1B"),
    (r"hora_bank\.[^.]+\.head_out\.", "output W2B"),
    (r"hora_bank\.[^.]+\.free_body$", "body W1A"),
    (r"hora_bank\.[^.]+\.free_out$", "output W2A"),
    (r"hora_bank\.[^.]+\.seeds\.", "seeds S"),
    (r"hora_bank\.[^.]+\.body$", "body W1"),
    (r"hora_bank\.[^.]+\.output_heads\.", "output W2"),
    (r"hora_bank\.[^.]+\.(mixing|shared_free)", "other generator"),
    (r"\.hora_(A|B|mix)\.", "free factor"),
)
SHARE = "generator share"


def group_of(name: str) -> str | None:
    """The diagnostic group of a parameter name, or None (e.g. the classifier head)."""
    for pattern, group in GROUPS:
        if re.search(pattern, name):
            return group
    return None


def effective_factors(model) -> dict[str, tuple]:
    """(A, s B) of every adapted module of a HoRA or PEFT LoRA model, detached copies."""
    from peft.tuners.lora import LoraLayer

    from hora import HoraLayer

    factors = {}
    for name, module in model.named_modules():
        if isinstance(module, HoraLayer) and "default" in module.hora_plans:
            A, B = module.factors("default")
        elif isinstance(module, LoraLayer) and "default" in module.lora_A:
            A = module.lora_A["default"].weight
            B = module.lora_B["default"].weight * module.scaling["default"]
        else:
            continue
        factors[name] = (A.detach().clone(), B.detach().clone())
    return factors


def _update_recorder(log: dict[str, list[float]]):
    """A TrainerCallback that appends each step's update norms (and HoRA's generator share, key ``SHARE``)
    to ``log`` (group -> list)."""
    import torch
    from transformers import TrainerCallback

    from hora.diagnostics import mean_generator_share
    from hora.tuner.model import find_hora_tuner

    class UpdateNorms(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            self.before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            with torch.no_grad():
                self.factors = effective_factors(model)

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            squares: dict[str, float] = {}
            for name, parameter in model.named_parameters():
                group = group_of(name) if name in self.before else None
                if group is not None:
                    delta = (parameter.detach() - self.before[name]).float()
                    squares[group] = squares.get(group, 0.0) + float(delta.pow(2).sum())
            with torch.no_grad():
                after = effective_factors(model)
            for side, index in (("factor A", 0), ("factor B", 1)):
                squares[side] = sum(float((after[m][index] - f[index]).float().pow(2).sum())
                                    for m, f in self.factors.items())
            for group, square in squares.items():
                log.setdefault(group, []).append(square**0.5)
            if find_hora_tuner(model) is not None:
                log.setdefault(SHARE, []).append(mean_generator_share(model))

    return UpdateNorms()


def record(methods: list[str], base: TrainConfig, lrs: dict[str, float] | None = None) -> dict[str, dict]:
    """Train every method for ``base.steps`` steps and return method -> {"lr", "norms": group -> list}."""
    results = {}
    for method in methods:
        log: dict[str, list[float]] = {}
        cfg = replace(base, method=method, lr=(lrs or {}).get(method, base.lr), save=False,
                      output=str(Path(base.output) / method))
        metrics = train(cfg, callbacks=[_update_recorder(log)])
        results[method] = {"lr": metrics["lr"], "val_accuracy": metrics["val_accuracy"], "norms": log}
    return results


def plot(results: dict[str, dict], path: Path) -> None:
    """Top: one panel per method, update norm per step of each group (log scale; factors dashed; steps
    with a zero update, such as warm-up's first, are left out). Bottom: HoRA's generator share per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(5.2 * len(results), 7.0), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1]}, sharex=True)
    for column, (method, result) in enumerate(results.items()):
        norms, share = dict(result["norms"]), result["norms"].get(SHARE)
        norms.pop(SHARE, None)
        ax = axes[0][column]
        for group, values in sorted(norms.items()):
            shown = [v if v > 0 else float("nan") for v in values]
            ax.plot(range(1, len(values) + 1), shown, "--" if group.startswith("factor") else "-", label=group)
        ax.set_yscale("log")
        ax.set_title(f"{method} (lr {result['lr']:g})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        below = axes[1][column]
        if share:
            below.plot(range(1, len(share) + 1), share, color="black")
        else:
            below.text(0.5, 0.5, "no generator", ha="center", va="center", transform=below.transAxes)
        below.set_ylim(-0.05, 1.05)
        below.set_xlabel("optimiser step")
        below.grid(alpha=0.3)
    axes[0][0].set_ylabel("update norm ||delta||_F")
    axes[1][0].set_ylabel("generator share of B")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def run(methods: list[str], base: TrainConfig, output: Path, lrs: dict[str, float] | None = None) -> Path:
    """Record, then write ``dynamics.json`` and ``dynamics.png`` into ``output``; returns the plot path."""
    output.mkdir(parents=True, exist_ok=True)
    results = record(methods, replace(base, output=str(output)), lrs)
    atomic_write_json(output / "dynamics.json", results)
    plot(results, output / "dynamics.png")
    return output / "dynamics.png"


def summary(path: Path) -> dict[str, dict[str, float]]:
    """Mean update norm per group over the recorded steps, method -> group -> mean, from dynamics.json."""
    results = json.loads(Path(path).read_text())
    return {method: {group: sum(v) / len(v) for group, v in result["norms"].items()}
            for method, result in results.items()}
