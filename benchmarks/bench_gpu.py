"""GPU benchmark: HoRA vs PEFT's LoRA vs a minimal LoRA at Llama-3.2-1B and ViT-B/16 shapes.

Random-init models with the real shapes (LlamaForCausalLM: hidden 2048, 16 layers, 32 heads, 8 kv heads,
intermediate 8192, vocab 128256, batch 8 x 1024; ViTForImageClassification: hidden 768, 12 layers, 12 heads,
224x224, batch 128), bf16 weights and adapters, q/k/v adapted at r=16, AdamW, median of 10 training steps
per variant after warm-up (interleaved: 2 rounds x 5 steps, the variant order rotating), peak memory from
torch.cuda.max_memory_allocated. Needs only torch, transformers, peft and hora.

    python benchmarks/bench_gpu.py                                   # on a CUDA GPU
    python benchmarks/bench_gpu.py --device cpu --tiny --output /tmp/gpu_smoke.json   # smoke test on CPU
"""

from __future__ import annotations

import argparse
import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hora.experiments.bench.suite import run_gpu_suite  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny, a smoke test)")
    parser.add_argument("--tiny", action="store_true", help="tiny versions of the two models")
    parser.add_argument("--workloads", default="llama,vit", help="comma-separated subset of llama, vit")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default on cuda) or float32 (default on cpu)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant and round (2 x 5 = 10)")
    parser.add_argument("--eval-steps", type=int, default=5, help="timed eval forwards per variant and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    parser.add_argument("--output", default="benchmarks/results/bench_gpu.json", help="JSON file to write")
    args = parser.parse_args(argv)

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device; use --device cpu --tiny for a smoke test")
    return run_gpu_suite(args.workloads.split(","), args.device, tiny=args.tiny, dtype=args.dtype,
                         repeats=args.repeats, steps=args.steps, eval_steps=args.eval_steps, warmup=args.warmup,
                         output=args.output, log=functools.partial(print, flush=True))


if __name__ == "__main__":
    main()
