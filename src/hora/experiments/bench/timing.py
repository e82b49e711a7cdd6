"""Wall-clock time of callables, measured side by side.

Each call is timed alone between two device synchronisations (CUDA work is finished before the clock
stops); the variants run in interleaved rounds whose order rotates, so drift of the machine (other
processes, clocks, caches) spreads over all variants rather than landing on one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work on ``device`` (nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_medians(fns: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int,
                        steps: int) -> dict[str, dict[str, float]]:
    """Median/min/max seconds of each fn: ``warmup`` untimed calls each, then ``repeats`` rounds of
    ``steps`` timed calls each, the order of the fns rotating every round."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            for _ in range(steps):
                times[name].append(_timed(fns[name], device))
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "n": len(t)}
            for name, t in times.items()}
