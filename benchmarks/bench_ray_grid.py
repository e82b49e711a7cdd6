"""Wall time of a 12-run grid of real runs, sequential against Ray, measured back to back (docs/performance.md).

The grid: HoRA and LoRA x fractions 0.05, 0.1, 0.25 x seeds 0, 1 on MiniLM-L6 + Rotten Tomatoes (the offline
assets), ``--steps`` optimiser steps of batch 16, evaluation on ``--eval-samples`` validation and as many test
examples (default 512). First ``hora compare --cpus-per-run 2`` (one run at a time, 2 torch threads), then
``hora compare --ray --cpus-per-run 1`` (2 runs at once on 2 cores, 1 thread each), then, unless
``--no-thread-scaling``, ``hora compare --cpus-per-run 1`` (one run at a time, 1 thread), each into a fresh
folder; the wall times include everything the user waits for (Python start, data, Ray start). Prints the
wall times and their ratios; the third gives what torch's second thread is worth and so the most that two
1-thread runs at once can win over one 2-thread run: 2 x (2-thread time) / (1-thread time).

    python benchmarks/bench_ray_grid.py            # about 15 minutes on an idle 2-core machine
    python benchmarks/bench_ray_grid.py --steps 5 --eval-samples 64  # a short trial that it works
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

GRID = ["--methods", "hora,lora", "--fractions", "0.05,0.1,0.25", "--seeds", "0,1", "--batch-size", "16",
        "--no-progress", "--no-resume"]


def timed_compare(output: Path, steps: int, eval_samples: int, execution: list[str]) -> float:
    """Seconds of wall time of one ``hora compare`` of the grid into ``output``."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # threads come from --cpus-per-run
    cmd = [sys.executable, "-m", "hora", "compare", *GRID, "--steps", str(steps), "--max-eval-samples",
           str(eval_samples), "--output", str(output), *execution]
    print("$", " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps per run")
    parser.add_argument("--eval-samples", type=int, default=512, help="validation and test examples per run")
    parser.add_argument("--no-thread-scaling", action="store_true",
                        help="skip the third grid (one run at a time, 1 thread), which bounds the speed-up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hora-bench-ray-") as tmp:
        sequential = timed_compare(Path(tmp) / "sequential", args.steps, args.eval_samples, ["--cpus-per-run", "2"])
        ray = timed_compare(Path(tmp) / "ray", args.steps, args.eval_samples, ["--ray", "--cpus-per-run", "1"])
        one_thread = None if args.no_thread_scaling else \
            timed_compare(Path(tmp) / "one-thread", args.steps, args.eval_samples, ["--cpus-per-run", "1"])
        a, b = (pd.read_csv(Path(tmp) / name / "results.csv") for name in ("sequential", "ray"))
        gap = (a["score"] - b["score"]).abs().max()
    print(f"sequential, 1 run at a time, 2 threads each: {sequential:.1f} s")
    print(f"ray, 2 runs at once, 1 thread each:          {ray:.1f} s")
    print(f"speed-up (sequential / ray): {sequential / ray:.2f}x; largest test-accuracy gap between the two "
          f"(threads differ, so sums are ordered differently): {100 * gap:.2f} points")
    if one_thread is not None:
        print(f"sequential, 1 run at a time, 1 thread each:  {one_thread:.1f} s")
        print(f"torch's second thread is worth {one_thread / sequential:.2f}x, so 2 runs at once on 1 thread each "
              f"can be at most 2 x {sequential:.1f} / {one_thread:.1f} = {2 * sequential / one_thread:.2f}x faster "
              f"than one at a time on 2 threads; Ray reached {sequential / ray:.2f}x "
              f"({one_thread / 2 / ray:.0%} of the 1-thread grid's time halved)")


if __name__ == "__main__":
    main()
