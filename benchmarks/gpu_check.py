"""The GPU acceptance check: every GPU-relevant check of the project in one command, one JSON report.

    python benchmarks/gpu_check.py --output runs/gpu_check                      # on a CUDA GPU (under 8 minutes
                                                                                 # on one H100 is the target)
    python benchmarks/gpu_check.py --device cpu --quick --output runs/gpu_check  # what makes sense without one

Writes OUTPUT/gpu_check.json (the environment and each named check: passed, failed or skipped with its reason),
a log per check and bench_gpu.json; exits 1 when a check failed. The checks are listed in
``hora.experiments.bench.gpu_check``. A GPU machine without the optional dependencies (pytest, trl,
bitsandbytes, datasets) reports the checks that need them as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hora.experiments.bench.gpu_check import CHECK_NAMES, run_gpu_check  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="a few cells of each test selection, tiny shapes")
    parser.add_argument("--output", default="runs/gpu_check", help="folder for gpu_check.json and the logs")
    parser.add_argument("--checks", default=None, help=f"a comma list of checks to run: {', '.join(CHECK_NAMES)}")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one test selection may take")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.checks.split(",")] if args.checks else None
    try:
        report = run_gpu_check(ROOT, args.output, args.device, args.quick, only, args.timeout)
    except ValueError as error:
        parser.error(str(error))
    print(f"report: {Path(args.output) / 'gpu_check.json'}" + (f"; failed: {', '.join(report['failed'])}"
                                                                if report["failed"] else "; no check failed"))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
