"""The workloads: deterministic builds, and the deeper twin used for the generation count."""

from __future__ import annotations

import torch

from hora.experiments.bench.workloads import bert_workload, deeper_workload, llama_workload


def test_build_is_the_same_model_every_call():
    workload = bert_workload(tiny=True)
    first, second = workload.build(), workload.build()
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters(), strict=True))


def test_deeper_workload_doubles_the_layers_of_bert_only():
    deeper = deeper_workload(bert_workload(tiny=True))
    assert deeper is not None and deeper.build().config.num_hidden_layers == 4
    assert deeper_workload(llama_workload(tiny=True, dtype=torch.float32)) is None
