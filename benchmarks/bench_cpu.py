"""CPU benchmark of HoRA against PEFT's LoRA and a minimal LoRA (MiniLM-L6 shape), as ratios.

    python benchmarks/bench_cpu.py                      # a few minutes on 2 cores
    python benchmarks/bench_cpu.py --tiny --output /tmp/bench.json   # seconds (smoke test)

Prints the ratios and writes everything measured to JSON (atomically). Same as ``hora bench``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hora.experiments.bench.suite import run_cpu_suite  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="benchmarks/results/bench_cpu.json", help="JSON file to write")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--tiny", action="store_true", help="a tiny BERT instead of the MiniLM-L6 shape")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per variant and round")
    parser.add_argument("--eval-steps", type=int, default=4, help="timed eval forwards per variant and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile graph-break check")
    args = parser.parse_args(argv)
    return run_cpu_suite(output=args.output, threads=args.threads, tiny=args.tiny, repeats=args.repeats,
                         steps=args.steps, warmup=args.warmup, eval_steps=args.eval_steps,
                         compile_check=not args.no_compile)


if __name__ == "__main__":
    main()
