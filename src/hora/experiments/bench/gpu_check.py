"""The GPU acceptance check: one command that runs every GPU-relevant check of the project and writes one JSON
report (``benchmarks/gpu_check.py``, ``make gpu-check``).

Each check is named and ends ``passed``, ``failed`` or ``skipped`` (with the reason: no CUDA, a missing optional
dependency, a test that skipped itself); nothing is dropped silently. The checks:

* ``gpu tests``: the ``gpu``-marked tests (``tests/test_gpu.py``: CUDA against CPU outputs on every head layout
  and generator, devices, gradients, autocast then merge/export, save on CUDA and load on CPU, torch.compile,
  device maps, DataParallel);
* ``autocast exactness``: ``tests/test_autocast.py`` (an autocast evaluation leaves merge and export exact);
* ``quantized bases``: ``tests/tuner/test_quantized.py`` (bitsandbytes nf4/int8: training, merge error against LoRA's on
  the same base, export), on the GPU when there is one;
* ``harness matrix``: ``tests/experiments/test_matrix.py`` (every method under every training flag, SFT and
  4-/8-bit decoders, ``hora export``; each run's metrics.json must name the device);
* ``presets``: ``tests/experiments/grid/test_study_benchmarks.py`` (the GLUE, commonsense and VTAB-1k presets on tiny
  slices);
* ``benchmark``: :func:`~hora.experiments.bench.suite.run_gpu_suite` (HoRA / PEFT LoRA training step and peak
  memory, both generators, Llama-3.2-1B and ViT-B/16 shapes in bf16; tiny shapes with ``quick`` or on a CPU).

Tests run in a pytest subprocess each (``--junitxml`` gives the counts); with ``device="cpu"`` the subprocesses
see no GPU (``CUDA_VISIBLE_DEVICES=""``), so the script itself is tested on CPU-only machines.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hora.io import atomic_write_json

REPORT = "gpu_check.json"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class Check:
    """One named check's outcome: ``status`` and what it found (``detail``), its time and its log file."""

    name: str
    status: str
    detail: str
    seconds: float = 0.0
    log: str | None = None


@dataclass(frozen=True)
class PytestCheck:
    """A check that is a pytest selection: test files, a ``-k`` expression for ``quick`` runs (None: all of
    them), and the modules it cannot run without."""

    name: str
    targets: tuple[str, ...]
    quick: str | None = None
    marker: str | None = None
    needs: tuple[str, ...] = ()


# quick runs: a handful of cells that still touch every generator form, both precisions and a decoder
TEST_CHECKS = (
    PytestCheck("gpu tests", ("tests/test_gpu.py",), marker="gpu"),
    PytestCheck("autocast exactness", ("tests/test_autocast.py",), quick="residual or joint"),
    PytestCheck("quantized bases", ("tests/tuner/test_quantized.py",), quick="nf4", needs=("bitsandbytes",)),
    PytestCheck("harness matrix", ("tests/experiments/test_matrix.py",),
              quick="hora-bf16- or hora-jointgen-bf16+checkpointing or hora-nores-fp16 or lora-accumulation "
                    "or hora-sft or hora-4bit",
              needs=("datasets", "pandas", "sklearn")),
    PytestCheck("presets", ("tests/experiments/grid/test_study_benchmarks.py",), quick="glue",
              needs=("datasets", "pandas", "sklearn")),
)


def missing(modules: Sequence[str]) -> list[str]:
    """The modules of ``modules`` that this Python cannot import."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def junit_counts(path: Path) -> dict[str, Any]:
    """Counts of a pytest ``--junitxml`` report: tests, failures, errors, skipped, and the skip reasons."""
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    reasons = sorted({s.get("message", "") for s in suite.iter("skipped")})
    return {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")} | {
        "skip_reasons": reasons}


def run_tests(check: PytestCheck, root: Path, out: Path, device: str, quick: bool, timeout: float) -> Check:
    """Run one pytest selection in a subprocess; its outcome from the junit counts and the exit status."""
    absent = missing(("pytest", *check.needs))
    if absent:
        return Check(check.name, SKIPPED, f"not installed here: {', '.join(absent)} (pip install them to run it)")
    slug = check.name.replace(" ", "_")
    xml, log = out / f"{slug}.xml", out / f"{slug}.log"
    command = [sys.executable, "-m", "pytest", *check.targets, "-q", "-rs", "-p", "no:cacheprovider",
               f"--junitxml={xml}", "--rootdir", str(root)]
    if check.marker:
        command += ["-m", check.marker]
    if quick and check.quick:
        command += ["-k", check.quick]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the subprocess sees no GPU, as on a CPU-only machine
    start = time.perf_counter()
    try:
        with log.open("w") as handle:
            code = subprocess.run(command, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return Check(check.name, FAILED, f"timed out after {timeout:.0f} s", time.perf_counter() - start, str(log))
    seconds = time.perf_counter() - start
    if not xml.is_file():
        return Check(check.name, FAILED, f"pytest exited {code} without a report (see the log)", seconds, str(log))
    counts = junit_counts(xml)
    ran = counts["tests"] - counts["skipped"]
    summary = (f"{ran - counts['failures'] - counts['errors']} passed, {counts['failures'] + counts['errors']} "
               f"failed, {counts['skipped']} skipped of {counts['tests']}")
    if counts["skip_reasons"]:
        summary += f" (skipped: {'; '.join(counts['skip_reasons'])})"
    if code not in (0, 5) or counts["failures"] or counts["errors"]:
        return Check(check.name, FAILED, summary, seconds, str(log))
    return Check(check.name, PASSED if ran else SKIPPED, summary, seconds, str(log))


def run_benchmark(out: Path, device: str, quick: bool) -> Check:
    """The GPU benchmark's ratios (tiny shapes when ``quick`` or on a CPU), saved as ``bench_gpu.json``."""
    from .suite import run_gpu_suite

    tiny = quick or device == "cpu"
    start = time.perf_counter()
    log: list[str] = []
    try:
        data = run_gpu_suite(("llama", "vit"), device, tiny=tiny, repeats=1 if tiny else 2, steps=2 if tiny else 5,
                             eval_steps=2 if tiny else 5, warmup=1 if tiny else 3, output=out / "bench_gpu.json",
                             log=log.append)
    except Exception as exc:  # noqa: BLE001 - a check reports its failure and the others still run
        (out / "benchmark.log").write_text("\n".join(log))
        return Check("benchmark", FAILED, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    (out / "benchmark.log").write_text("\n".join(log))
    ratios = "; ".join(f"{r['meta']['workload']}: " + ", ".join(f"{k} {v:.3f}" for k, v in r["ratios"].items())
                       for r in data["results"])
    shapes = "tiny shapes" if tiny else "real shapes"
    return Check("benchmark", PASSED, f"{shapes}: {ratios}", time.perf_counter() - start,
                 str(out / "benchmark.log"))


def environment(device: str) -> dict[str, Any]:
    """Versions and the device the report was made on."""
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("transformers", "peft", "accelerate", "trl", "bitsandbytes", "datasets", "pytest"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except ImportError:
            versions[name] = None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if device == "cuda" else []
    return {"device": device, "gpus": gpus, "machine": platform.node(), "versions": versions,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


CHECK_NAMES = (*(check.name for check in TEST_CHECKS), "benchmark")


def run_gpu_check(root: str | Path, output: str | Path, device: str = "cuda", quick: bool = False,
                  only: Sequence[str] | None = None, timeout: float = 600.0,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every check (or those named in ``only``) in order, each reported as it ends; the report (environment and
    checks) written atomically to ``output``/gpu_check.json and returned. ``device="cuda"`` without CUDA is
    refused."""
    import torch

    if device not in ("cuda", "cpu"):
        raise ValueError(f"--device must be cuda or cpu, got '{device}'")
    unknown = sorted(set(only or ()) - set(CHECK_NAMES))
    if unknown:
        raise ValueError(f"no check named {', '.join(unknown)}; the checks: {', '.join(CHECK_NAMES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False); run "
                         "with --device cpu --quick for the checks that make sense without one")
    root, out = Path(root), Path(output)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"environment": environment(device), "quick": quick, "checks": []}
    runs = {check.name: (lambda check=check: run_tests(check, root, out, device, quick, timeout))
            for check in TEST_CHECKS}
    runs["benchmark"] = lambda: run_benchmark(out, device, quick)
    for name, run in runs.items():
        if only and name not in only:
            continue
        result = run()
        log(f"{result.status:>7}  {result.name}: {result.detail} ({result.seconds:.0f} s)")
        report["checks"].append(asdict(result))
    report["failed"] = [c["name"] for c in report["checks"] if c["status"] == FAILED]
    atomic_write_json(out / REPORT, report)
    return report
