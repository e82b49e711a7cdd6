"""Speed and memory of HoRA against PEFT's LoRA and a minimal reference LoRA, measured side by side.

Every number is a ratio of two variants measured in one process, in interleaved repeats (the order of the
variants rotates every repeat), as the median of many steps after warm-up, with a fixed thread count. The
variants share one architecture, rank, alpha and target modules (q/k/v by default):

* ``peft_lora``: ``peft.get_peft_model(model, LoraConfig(...))``, PEFT's own LoRA.
* ``minimal_lora``: :class:`MinimalLoRA`, ~20 lines, ``base(x) + x A^T B^T s``: the cost floor of a LoRA.
* ``hora``: ``peft.get_peft_model(model, HoraConfig(...))`` with its default generator.

Measured: training step time (forward + backward + AdamW step), peak memory of a training step, the
number of generator products per step (and how often the factors are generated), eval forward time
(unmerged with cached factors, merged against the bare base model) and, optionally, graph breaks of
``torch.compile`` inside HoRA code. ``python benchmarks/bench_cpu.py`` (or ``hora bench``) runs the CPU
suite; ``benchmarks/bench_gpu.py`` the GPU one.
"""

from __future__ import annotations

import datetime
import math
import platform
import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peft
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .config import HoraConfig
from .generator import FactorBank
from .heads import find_attention_targets
from .io import atomic_write_json

VARIANTS = ("peft_lora", "minimal_lora", "hora", "hora_joint")


# ----------------------------------------------------------------------------------------------------------
# The minimal reference LoRA (no framework)


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


# ----------------------------------------------------------------------------------------------------------
# Workloads


@dataclass
class Workload:
    """A model shape, its inputs and its loss. ``build`` returns a fresh base model (same seed each call)."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.device], dict[str, torch.Tensor]]
    loss: Callable[[Any], torch.Tensor]
    description: str
    dtype: torch.dtype = torch.float32


def _mean_square(output: Any) -> torch.Tensor:
    return output[0].float().pow(2).mean()


def _output_loss(output: Any) -> torch.Tensor:
    return output.loss


def bert_workload(tiny: bool = False, layers: int | None = None) -> Workload:
    """MiniLM-L6 shape (BertModel: 6 layers, hidden 384, 12 heads, intermediate 1536), batch 32 x 64."""
    from transformers import BertConfig, BertModel

    if tiny:
        shape = dict(hidden_size=64, num_hidden_layers=layers or 2, num_attention_heads=4, intermediate_size=128,
                     vocab_size=128)
        batch, length = 4, 16
    else:
        shape = dict(hidden_size=384, num_hidden_layers=layers or 6, num_attention_heads=12, intermediate_size=1536,
                     vocab_size=30522)
        batch, length = 32, 64
    config = BertConfig(**shape)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return BertModel(config)

    def inputs(device: torch.device) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(1)
        ids = torch.randint(0, config.vocab_size, (batch, length), generator=generator)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids, device=device)}

    name = "tiny_bert" if tiny else "minilm_l6"
    return Workload(name, build, inputs, _mean_square,
                    f"BertModel {shape['num_hidden_layers']}x{shape['hidden_size']}, "
                    f"{shape['num_attention_heads']} heads, batch {batch}x{length}")


def llama_workload(tiny: bool = False, dtype: torch.dtype = torch.bfloat16) -> Workload:
    """Llama-3.2-1B shape (random init): hidden 2048, 16 layers, 32 heads, 8 kv heads, batch 8 x 1024."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if tiny:
        shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=128, vocab_size=256)
        batch, length = 2, 32
    else:
        shape = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=8192, vocab_size=128256, head_dim=64, tie_word_embeddings=True,
                     rope_theta=500000.0, max_position_embeddings=131072)
        batch, length = 8, 1024
    config = LlamaConfig(**shape)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return LlamaForCausalLM(config).to(dtype)

    def inputs(device: torch.device) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(1)
        ids = torch.randint(0, config.vocab_size, (batch, length), generator=generator).to(device)
        return {"input_ids": ids, "labels": ids}

    return Workload("tiny_llama" if tiny else "llama_3.2_1b", build, inputs, _output_loss,
                    f"LlamaForCausalLM {shape['num_hidden_layers']}x{shape['hidden_size']}, "
                    f"{shape['num_attention_heads']}/{shape['num_key_value_heads']} heads, batch {batch}x{length}",
                    dtype)


def vit_workload(tiny: bool = False, dtype: torch.dtype = torch.bfloat16) -> Workload:
    """ViT-B/16 shape (random init): hidden 768, 12 layers, 12 heads, 224x224, batch 128."""
    from transformers import ViTConfig, ViTForImageClassification

    if tiny:
        shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     image_size=32, patch_size=16, num_labels=10)
        batch = 4
    else:
        shape = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                     image_size=224, patch_size=16, num_labels=1000)
        batch = 128
    config = ViTConfig(**shape)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return ViTForImageClassification(config).to(dtype)

    def inputs(device: torch.device) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(1)
        pixels = torch.randn(batch, 3, config.image_size, config.image_size, generator=generator)
        labels = torch.randint(0, config.num_labels, (batch,), generator=generator)
        return {"pixel_values": pixels.to(device, dtype), "labels": labels.to(device)}

    return Workload("tiny_vit" if tiny else "vit_b16", build, inputs, _output_loss,
                    f"ViTForImageClassification {shape['num_hidden_layers']}x{shape['hidden_size']}, "
                    f"{shape['num_attention_heads']} heads, {shape['image_size']}px, batch {batch}", dtype)


# ----------------------------------------------------------------------------------------------------------
# Building the variants


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


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Trainer:
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


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - start


def interleaved_medians(fns: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int,
                        steps: int) -> dict[str, dict[str, float]]:
    """Median/min/max seconds of each fn: ``warmup`` untimed calls each, then ``repeats`` rounds of
    ``steps`` timed calls each, the order of the fns rotating every round."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    _synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            for _ in range(steps):
                times[name].append(_timed(fns[name], device))
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "n": len(t)}
            for name, t in times.items()}


# ----------------------------------------------------------------------------------------------------------
# Memory


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


def training_peak_bytes(trainer: _Trainer, device: torch.device) -> dict[str, int]:
    """Peak memory of one training step (after a warm-up step created the optimizer state)."""
    trainer.step()
    static = state_bytes(trainer.model, trainer.optimizer)
    if device.type == "cuda":
        _synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)  # includes the other variants' models
        trainer.step()
        _synchronize(device)
        step = torch.cuda.max_memory_allocated(device) - before
        return {"peak_bytes": static + step, "step_bytes": step, "state_bytes": static}
    tracker = PeakMemory()
    with tracker:
        trainer.step()
    return {"peak_bytes": static + tracker.peak, "step_bytes": tracker.peak, "state_bytes": static}


# ----------------------------------------------------------------------------------------------------------
# Counting the generator's work


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops[name] = self.ops.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


MATMUL_OPS = ("mm", "bmm", "addmm", "baddbmm", "matmul", "einsum", "dot", "mv")


def generation_counts(model: nn.Module, batch: dict[str, torch.Tensor], loss: Callable[[Any], torch.Tensor],
                      eval_forwards: int = 3) -> dict[str, Any]:
    """How often a HoRA model's banks generate and how many products one generation dispatches.

    Returns the number of generations in one training step (forward + backward) and in ``eval_forwards``
    no-grad forwards, the aten ops of one generation (all layers' head factors), and the number of
    adapted layers they serve.
    """
    banks = [m for m in model.modules() if isinstance(m, FactorBank)]
    calls = {"n": 0}
    counter = _OpCounter()
    originals = {}
    for bank in banks:
        originals[bank] = bank.generate

        def counted(bank=bank):
            calls["n"] += 1
            with counter:
                return originals[bank]()

        bank.generate = counted
    try:
        model.train()
        model.zero_grad(set_to_none=True)
        loss(model(**batch)).backward()
        train_calls, ops_per_step = calls["n"], dict(counter.ops)
        model.eval()
        calls["n"] = 0
        with torch.no_grad():
            for _ in range(eval_forwards):
                model(**batch)
        eval_calls = calls["n"]
    finally:
        for bank in banks:
            del bank.generate
        model.train()
    layers = sum(1 for name, m in model.named_modules() if type(m).__name__ == "HoraLayer")
    matmuls = sum(n for op, n in ops_per_step.items() if op in MATMUL_OPS)
    return {"generations_per_training_step": train_calls, "generations_in_eval_forwards": eval_calls,
            "eval_forwards": eval_forwards, "generator_matmuls_per_step": matmuls,
            "generator_ops_per_step": ops_per_step, "adapted_layers": layers}


# ----------------------------------------------------------------------------------------------------------
# torch.compile


def compile_report(workload: Workload, settings: Settings) -> dict[str, Any]:
    """Graph breaks of a HoRA forward under ``torch._dynamo.explain``, in training and in evaluation
    (no grad, unmerged), split by whether they occur in HoRA's code."""
    model = build_variant(workload, "hora", settings, torch.device("cpu"))
    batch = workload.inputs(torch.device("cpu"))

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return workload.loss(model(**batch))

    def evaluate(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return workload.loss(model(**batch))

    report: dict[str, Any] = {"workload": workload.name}
    for mode, fn in (("train", forward), ("eval", evaluate)):
        model.train(mode == "train")
        report[mode] = _explain(fn, batch)
    # headline figures (training), as before
    report.update({k: report["train"][k] for k in ("graph_count", "graph_break_count", "graph_breaks_in_hora_code")})
    return report


def _explain(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], batch: dict[str, torch.Tensor]) -> dict:
    import torch._dynamo

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(batch)
    reasons = []
    in_hora = 0
    for reason in explanation.break_reasons:
        frames = [f"{frame.filename}:{frame.lineno} {frame.name}" for frame in reason.user_stack]
        hora_frame = any(("/hora/" in frame.filename and "/hora/bench" not in frame.filename)
                         for frame in reason.user_stack[-1:])
        in_hora += hora_frame
        reasons.append({"reason": str(reason.reason).splitlines()[0][:300], "in_hora_code": hora_frame,
                        "where": frames[-3:]})
    torch._dynamo.reset()
    return {"graph_count": explanation.graph_count, "graph_break_count": explanation.graph_break_count,
            "graph_breaks_in_hora_code": in_hora, "break_reasons": reasons}


# ----------------------------------------------------------------------------------------------------------
# The suite


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


def cpu_model_name() -> str:
    """The CPU's model name as ``lscpu`` prints it (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    trainers = {variant: _Trainer(workload, variant, settings, device) for variant in VARIANTS}
    log(f"[{workload.name}] training steps: {warmup} warm-up + {repeats} x {steps} interleaved per variant")
    train = interleaved_medians({v: t.step for v, t in trainers.items()}, device, warmup, repeats, steps)
    result.train = train
    hora_train = train["hora"]["median_s"]
    result.ratios["train_hora_over_peft_lora"] = hora_train / train["peft_lora"]["median_s"]
    result.ratios["train_hora_over_minimal_lora"] = hora_train / train["minimal_lora"]["median_s"]
    # the same from the fastest step of each variant: less sensitive to other processes on a shared machine
    result.ratios["train_hora_over_peft_lora_best"] = train["hora"]["min_s"] / train["peft_lora"]["min_s"]
    result.ratios["train_hora_over_minimal_lora_best"] = train["hora"]["min_s"] / train["minimal_lora"]["min_s"]
    result.ratios["train_hora_joint_over_peft_lora"] = train["hora_joint"]["median_s"] / train["peft_lora"]["median_s"]
    result.ratios["train_hora_joint_over_minimal_lora"] = (
        train["hora_joint"]["median_s"] / train["minimal_lora"]["median_s"])

    if memory:
        log(f"[{workload.name}] peak memory of a training step ...")
        result.memory = {v: training_peak_bytes(t, device) for v, t in trainers.items()}
        result.ratios["peak_memory_hora_over_peft_lora"] = (
            result.memory["hora"]["peak_bytes"] / result.memory["peft_lora"]["peak_bytes"])
        result.ratios["step_memory_hora_over_peft_lora"] = (
            result.memory["hora"]["step_bytes"] / result.memory["peft_lora"]["step_bytes"])
        result.ratios["peak_memory_hora_joint_over_peft_lora"] = (
            result.memory["hora_joint"]["peak_bytes"] / result.memory["peft_lora"]["peak_bytes"])

    hora_model = trainers["hora"].model
    result.generation = generation_counts(hora_model, trainers["hora"].batch, workload.loss)
    deeper = _deeper(workload)
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
    result.ratios["merged_hora_over_base"] = result.eval["hora_merged"]["median_s"] / result.eval["base"]["median_s"]
    result.ratios["eval_unmerged_hora_over_peft_lora"] = (
        result.eval["hora_unmerged"]["median_s"] / result.eval["peft_lora_unmerged"]["median_s"])
    result.ratios["merged_hora_over_base_best"] = result.eval["hora_merged"]["min_s"] / result.eval["base"]["min_s"]
    result.ratios["eval_unmerged_hora_over_peft_lora_best"] = (
        result.eval["hora_unmerged"]["min_s"] / result.eval["peft_lora_unmerged"]["min_s"])
    return result


def _deeper(workload: Workload) -> Workload | None:
    """The same workload with twice the layers (for the generation count), where we know how to build it."""
    if workload.name in ("tiny_bert", "minilm_l6"):
        depth = 2 if workload.name == "tiny_bert" else 6
        return bert_workload(tiny=True, layers=2 * depth)  # generation count does not depend on width
    return None


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


def run_cpu_suite(output: str | Path | None = "benchmarks/results/bench_cpu.json", threads: int = 2,
                  tiny: bool = False, repeats: int = 4, steps: int = 2, warmup: int = 1, eval_steps: int = 4,
                  compile_check: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The CPU benchmark: MiniLM-L6 shape (or a tiny BERT with ``tiny``), ratios printed and saved as JSON."""
    torch.set_num_threads(threads)
    workload = bert_workload(tiny=tiny)
    result = run_workload(workload, "cpu", warmup=warmup, repeats=repeats, steps=steps, eval_steps=eval_steps,
                          log=log)
    if compile_check:
        log("[compile] torch._dynamo.explain of a HoRA training and eval forward (tiny BERT) ...")
        result.compile = compile_report(bert_workload(tiny=True), Settings())
    log(format_result(result))
    data = {"results": [result.as_dict()]}
    if output is not None:
        atomic_write_json(output, data)
        log(f"wrote {output}")
    return data


__all__ = ["MinimalLoRA", "PeakMemory", "Settings", "Workload", "bert_workload", "build_variant",
           "compile_report", "format_result", "generation_counts", "interleaved_medians", "llama_workload",
           "run_cpu_suite", "run_workload", "vit_workload"]
