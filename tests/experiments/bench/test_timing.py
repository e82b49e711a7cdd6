"""Interleaved timing: every fn gets its warm-up and its timed calls, in rounds of rotating order."""

from __future__ import annotations

import torch

from hora.experiments.bench.timing import interleaved_medians


def test_interleaved_medians_rotates_the_order_and_counts_the_calls():
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    stats = interleaved_medians(fns, torch.device("cpu"), warmup=1, repeats=3, steps=2)
    assert order[:3] == ["a", "b", "c"]  # warm-up
    rounds = order[3:]
    assert rounds == ["a", "a", "b", "b", "c", "c", "b", "b", "c", "c", "a", "a", "c", "c", "a", "a", "b", "b"]
    assert all(s["n"] == 6 and 0 <= s["min_s"] <= s["median_s"] <= s["max_s"] for s in stats.values())
