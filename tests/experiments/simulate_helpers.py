"""Shared by the simulation tests (test_simulate*.py): a small layer, and a problem drawn on it (frozen base
weights, a true rank-1 HoRA update, two replications of 200 inputs), and random starts at the simulation's
per-kind scales."""

from __future__ import annotations

import torch

from hora.experiments.simulate.attention_model import Base, Data, Dims, flatten, make_base, make_data, param_shapes
from hora.experiments.simulate.simulation import Regime, init_stds, make_truth

DIMS = Dims(d=6, L=3, H=2, d_h=3, r=1, p=4)
DTYPE = torch.float64


def make_problem() -> tuple[Base, torch.Tensor, Data]:
    """(base weights, true update (1, P, H, d_h, d), data of 2 replications x 200 inputs) on DIMS, seed 0."""
    gen = torch.Generator().manual_seed(0)
    base = make_base(DIMS, gen, DTYPE)
    truth = make_truth(Regime("R", "test", true_rank=1), DIMS, 2.0, gen, DTYPE)
    data = make_data(base, 2, 200, DIMS, gen)
    return base, truth, data


def random_start(kind: str, dims: Dims, fits: int, seed: int) -> torch.Tensor:
    """Random start (fits, n_params) with the simulation's per-kind scales."""
    gen, shapes = torch.Generator().manual_seed(seed), param_shapes(kind, dims)
    return flatten({name: std * torch.randn(fits, *shapes[name], generator=gen, dtype=DTYPE)
                    for name, std in init_stds(kind, dims, 0.1).items()}, kind, dims)
