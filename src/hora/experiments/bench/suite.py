"""One workload measured end to end (:func:`run_workload`), and the two suites built on it.

Measured for each workload, every variant in the same process: the training step (interleaved medians),
the peak memory of a training step, how often HoRA generates and how many products that takes (also for
a model twice as deep where the workload allows), and eval forwards (base model, merged HoRA, unmerged
HoRA with cached factors, unmerged PEFT LoRA). The headline numbers are ratios of two variants.

* :func:`run_cpu_suite`: the MiniLM-L6 shape (or a tiny BERT), plus the torch.compile graph-break report.
* :func:`run_gpu_suite`: the Llama-3.2-1B and ViT-B/16 shapes in bf16 (or tiny versions, e.g. on CPU).
"""

from __future__ import annotations

import datetime
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import peft
import torch
from torch import nn

from hora.experiments import paths
from hora.io import atomic_write_json

from .compile_report import compile_report
from .generation import generation_counts
from .memory import training_peak_bytes
from .result import BenchResult, format_result
from .timing import interleaved_medians
from .variants import VARIANTS, Settings, Trainer, build_variant
from .workloads import GPU_WORKLOADS, Workload, bert_workload, deeper_workload


def cpu_model_name() -> str:
    """The CPU's model name as ``lscpu`` prints it (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# The headline ratios: (name, what was measured, numerator variant, denominator variant, statistic). "best": the
# fastest step of each variant, less sensitive to other processes on a shared machine than the median.
RATIOS = [
    ("train_hora_over_peft_lora", "train", "hora", "peft_lora", "median_s"),
    ("train_hora_over_minimal_lora", "train", "hora", "minimal_lora", "median_s"),
    ("train_hora_over_peft_lora_best", "train", "hora", "peft_lora", "min_s"),
    ("train_hora_over_minimal_lora_best", "train", "hora", "minimal_lora", "min_s"),
    ("train_hora_joint_over_peft_lora", "train", "hora_joint", "peft_lora", "median_s"),
    ("train_hora_joint_over_minimal_lora", "train", "hora_joint", "minimal_lora", "median_s"),
    ("peak_memory_hora_over_peft_lora", "memory", "hora", "peft_lora", "peak_bytes"),
    ("step_memory_hora_over_peft_lora", "memory", "hora", "peft_lora", "step_bytes"),
    ("peak_memory_hora_joint_over_peft_lora", "memory", "hora_joint", "peft_lora", "peak_bytes"),
    ("merged_hora_over_base", "eval", "hora_merged", "base", "median_s"),
    ("eval_unmerged_hora_over_peft_lora", "eval", "hora_unmerged", "peft_lora_unmerged", "median_s"),
    ("merged_hora_over_base_best", "eval", "hora_merged", "base", "min_s"),
    ("eval_unmerged_hora_over_peft_lora_best", "eval", "hora_unmerged", "peft_lora_unmerged", "min_s"),
]


def add_ratios(result: BenchResult, measured: str, values: dict[str, dict]) -> None:
    """The rows of :data:`RATIOS` for what was ``measured`` ("train", "memory", "eval"), from ``values`` (variant ->
    its statistics), into ``result.ratios``: numerator's statistic / denominator's."""
    for name, section, numerator, denominator, statistic in RATIOS:
        if section == measured:
            result.ratios[name] = values[numerator][statistic] / values[denominator][statistic]


def run_workload(workload: Workload, device: torch.device | str = "cpu", settings: Settings | None = None,
                 warmup: int = 2, repeats: int = 3, steps: int = 4, eval_steps: int = 8,
                 memory: bool = True, log: Callable[[str], None] = print) -> BenchResult:
    """Measure one workload: training step, eval forwards, memory and generation counts, as ratios."""
    device = torch.device(device)
    settings = settings or Settings()
    meta = {"workload": workload.name, "description": workload.description, "device": str(device),
            "dtype": str(workload.dtype).replace("torch.", ""), "r": settings.r, "alpha": settings.alpha,
            "projections": list(settings.projections), "threads": torch.get_num_threads(),
            "warmup": warmup, "repeats": repeats, "steps_per_repeat": steps, "eval_steps_per_repeat": eval_steps,
            "torch": torch.__version__, "peft": peft.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name()}
    result = BenchResult(meta)

    log(f"[{workload.name}] building {', '.join(VARIANTS)} ...")
    trainers = {variant: Trainer(workload, variant, settings, device) for variant in VARIANTS}
    log(f"[{workload.name}] training steps: {warmup} warm-up + {repeats} x {steps} interleaved per variant")
    train = interleaved_medians({v: t.step for v, t in trainers.items()}, device, warmup, repeats, steps)
    result.train = train
    add_ratios(result, "train", train)

    if memory:
        log(f"[{workload.name}] peak memory of a training step ...")
        result.memory = {v: training_peak_bytes(t, device) for v, t in trainers.items()}
        add_ratios(result, "memory", result.memory)

    hora_model = trainers["hora"].model
    result.generation = generation_counts(hora_model, trainers["hora"].batch, workload.loss)
    deeper = deeper_workload(workload)
    if deeper is not None:
        deep_model = build_variant(deeper, "hora", settings, device)
        deep = generation_counts(deep_model, deeper.inputs(device), deeper.loss)
        result.generation["deeper_model"] = {k: deep[k] for k in ("adapted_layers", "generator_matmuls_per_step")}
        del deep_model

    log(f"[{workload.name}] eval forwards: base, merged HoRA, unmerged HoRA, unmerged PEFT LoRA ...")
    for trainer in trainers.values():
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.model.eval()
    trainers["minimal_lora"] = None  # free it
    base = build_variant(workload, "base", settings, device).eval()
    merged = build_variant(workload, "hora", settings, device).eval()
    with torch.no_grad():
        for p in merged.parameters():  # a non-zero update, so merging really changes the weights
            p.add_(torch.randn_like(p) * 1e-3) if p.requires_grad else None
    merged.merge_adapter()
    batch = trainers["hora"].batch

    def forward(model: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                model(**batch)
        return run

    fns = {"base": forward(base), "hora_merged": forward(merged), "hora_unmerged": forward(hora_model),
           "peft_lora_unmerged": forward(trainers["peft_lora"].model)}
    result.eval = interleaved_medians(fns, device, warmup, repeats, eval_steps)
    add_ratios(result, "eval", result.eval)
    return result


def _write(output: str | Path | None, data: dict[str, Any], log: Callable[[str], None]) -> None:
    if output is not None:
        atomic_write_json(output, data)
        log(f"wrote {output}")


def run_cpu_suite(output: str | Path | None = "benchmarks/results/bench_cpu.json", threads: int = 2,
                  tiny: bool = False, repeats: int = 4, steps: int = 2, warmup: int = 1, eval_steps: int = 4,
                  compile_check: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The CPU benchmark: MiniLM-L6 shape (or a tiny BERT with ``tiny``), ratios printed and saved as JSON."""
    if output is not None:
        paths.check_output_file(output)  # before minutes of work
    torch.set_num_threads(threads)
    workload = bert_workload(tiny=tiny)
    result = run_workload(workload, "cpu", warmup=warmup, repeats=repeats, steps=steps, eval_steps=eval_steps,
                          log=log)
    if compile_check:
        log("[compile] torch._dynamo.explain of a HoRA training and eval forward (tiny BERT) ...")
        result.compile = compile_report(bert_workload(tiny=True), Settings())
    log(format_result(result))
    data = {"results": [result.as_dict()]}
    _write(output, data, log)
    return data


def run_gpu_suite(workloads: Sequence[str] = ("llama", "vit"), device: torch.device | str = "cuda",
                  tiny: bool = False, dtype: str | None = None, repeats: int = 2, steps: int = 5,
                  eval_steps: int = 5, warmup: int = 3,
                  output: str | Path | None = "benchmarks/results/bench_gpu.json",
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """The GPU benchmark: each of ``workloads`` (keys of ``GPU_WORKLOADS``) in ``dtype`` (bfloat16 on CUDA,
    float32 elsewhere by default), TF32 matmuls allowed on CUDA; ratios printed and saved as JSON."""
    if output is not None:
        paths.check_output_file(output)  # before minutes of work
    device = torch.device(device)
    torch_dtype = getattr(torch, dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    results = []
    for key in workloads:
        workload = GPU_WORKLOADS[key.strip()](tiny=tiny, dtype=torch_dtype)
        result = run_workload(workload, device, warmup=warmup, repeats=repeats, steps=steps, eval_steps=eval_steps,
                              log=log)
        log(format_result(result))
        results.append(result.as_dict())
        if device.type == "cuda":
            torch.cuda.empty_cache()
    data = {"results": results}
    _write(output, data, log)
    return data
