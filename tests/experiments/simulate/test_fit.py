"""Batched L-BFGS: many independent least-squares fits at once (hora.experiments.simulate.fit)."""

from __future__ import annotations

import pytest
import torch
from simulate_helpers import DIMS, DTYPE, random_start

from hora.experiments.simulate.attention_model import attention, updates
from hora.experiments.simulate.fit import lbfgs

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


@pytest.mark.parametrize("kind", ["lora", "hora"])
def test_estimators_recover_truth_noiseless(problem, kind):
    base, truth, data = problem
    y = attention(truth.expand(2, -1, -1, -1, -1), base, data)
    theta0 = random_start(kind, DIMS, 2, 2)

    def loss(theta):
        return ((attention(updates(theta, kind, DIMS), base, data) - y) ** 2).mean(dim=(1, 3)).reshape(-1)

    theta = lbfgs(loss, theta0, max_iter=300)
    err = (updates(theta, kind, DIMS) - truth).pow(2).sum(dim=(1, 2, 3, 4)).sqrt()
    assert float(err.max()) < 1e-3 * float(truth.norm())


def test_each_fit_has_its_own_line_search():
    """Three quadratics whose curvatures differ by 10^4 each reach their own minimum (one shared step
    would overshoot the stiff one or crawl on the flat one); a fit that starts at its minimum stays there."""
    curvature = torch.tensor([[1e-2, 1.0], [1.0, 1e2], [3.0, 3.0]], dtype=DTYPE)
    minimum = torch.tensor([[1.0, -2.0], [0.5, 4.0], [-1.0, 0.25]], dtype=DTYPE)

    def loss(theta):
        return 0.5 * (curvature * (theta - minimum) ** 2).sum(-1)

    start = torch.zeros(3, 2, dtype=DTYPE)
    start[2] = minimum[2]
    theta = lbfgs(loss, start, max_iter=100)
    torch.testing.assert_close(theta, minimum, atol=1e-6, rtol=0)
    assert torch.equal(theta[2], minimum[2])
    assert not theta.requires_grad
