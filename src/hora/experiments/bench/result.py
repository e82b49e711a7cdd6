"""The record of one benchmark run (:class:`BenchResult`) and its human-readable table.

Nothing is measured here: the record holds what :func:`~hora.experiments.bench.suite.run_workload`
measured, ``ratios`` the headline numbers, and ``as_dict`` is what the suites write as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchResult:
    """Everything one run measured; ``ratios`` holds the headline numbers."""

    meta: dict[str, Any]
    ratios: dict[str, float] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    compile: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "ratios": self.ratios, "train": self.train, "eval": self.eval,
                "memory": self.memory, "generation": self.generation, "compile": self.compile}


def format_result(result: BenchResult) -> str:
    """A short human-readable table of one workload's ratios and medians."""
    lines = [f"== {result.meta['workload']}: {result.meta['description']} ({result.meta['device']}, "
             f"{result.meta['dtype']}, {result.meta['threads']} threads)"]
    for variant, stats in result.train.items():
        lines.append(f"  train step  {variant:<14} {stats['median_s'] * 1e3:9.2f} ms (median of {stats['n']})")
    for variant, stats in result.eval.items():
        lines.append(f"  eval fwd    {variant:<18} {stats['median_s'] * 1e3:9.2f} ms")
    for variant, stats in result.memory.items():
        lines.append(f"  peak memory {variant:<14} {stats['peak_bytes'] / 2**20:9.1f} MiB "
                     f"(step allocations {stats['step_bytes'] / 2**20:.1f} MiB)")
    gen = result.generation
    if gen:
        lines.append(f"  generation: {gen['generations_per_training_step']} per training step, "
                     f"{gen['generations_in_eval_forwards']} in {gen['eval_forwards']} eval forwards, "
                     f"{gen['generator_matmuls_per_step']} generator matmuls for {gen['adapted_layers']} layers"
                     + (f" ({gen['deeper_model']['generator_matmuls_per_step']} for "
                        f"{gen['deeper_model']['adapted_layers']} layers)" if "deeper_model" in gen else ""))
    if result.compile:
        for mode in ("train", "eval"):
            c = result.compile[mode]
            lines.append(f"  torch.compile ({mode}): {c['graph_count']} graph(s), {c['graph_break_count']} graph "
                         f"breaks, {c['graph_breaks_in_hora_code']} in HoRA code")
    for key, value in result.ratios.items():
        lines.append(f"  {key:<38} {value:.3f}")
    return "\n".join(lines)
