"""The minimal reference LoRA and the variants built on one workload."""

from __future__ import annotations

import pytest
import torch

from hora.experiments.bench.variants import MinimalLoRA, Settings, build_variant
from hora.experiments.bench.workloads import bert_workload


def test_minimal_lora_is_the_base_layer_at_init():
    base = torch.nn.Linear(8, 6)
    layer = MinimalLoRA(base, r=2, alpha=4.0)
    x = torch.randn(3, 8)
    assert torch.allclose(layer(x), base(x))  # B = 0 at init


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="Unknown variant"):
        build_variant(bert_workload(tiny=True), "dora", Settings(), torch.device("cpu"))
