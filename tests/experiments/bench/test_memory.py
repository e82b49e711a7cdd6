"""The CPU peak-memory tracker and the state count that the training-step peak adds to it."""

from __future__ import annotations

import torch

from hora.experiments.bench.memory import PeakMemory, state_bytes


def test_peak_memory_tracker_counts_live_storages_and_frees_them():
    with PeakMemory() as tracker:
        a = torch.empty(1000)  # 4000 bytes
        b = torch.empty(500)
        del a
        c = torch.empty(10)
        del b, c
    assert tracker.peak >= 6000 and tracker.current == 0


def test_state_bytes_counts_each_storage_once():
    model = torch.nn.Linear(4, 3)  # 12 + 3 floats
    model.register_buffer("row", model.weight.detach()[0])  # a view: the weight's storage a second time
    assert state_bytes(model) == 15 * 4
