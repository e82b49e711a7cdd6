"""Rates from replicated errors: log-log slopes and their bootstrap interval (hora.experiments.simulate.rates)."""

from __future__ import annotations

import numpy as np

from hora.experiments.simulate.rates import fit_slope, ols_slopes


def test_fit_slope_recovers_known_slope():
    rng = np.random.default_rng(0)
    sizes = 2.0 ** np.arange(7, 15)
    errors = 3.0 * sizes[:, None] ** -0.5 * rng.lognormal(0.0, 0.2, size=(sizes.size, 20))
    fit = fit_slope(sizes, errors, n_boot=500, rng=rng)
    assert fit["ci_low"] < -0.5 < fit["ci_high"]
    assert abs(fit["slope"] + 0.5) < 0.05 and fit["ci_high"] - fit["ci_low"] < 0.2


def test_ols_slopes_is_exact_on_lines_and_vectorised_over_leading_dimensions():
    log_n = np.log(2.0 ** np.arange(5, 10))
    slopes = np.array([[-0.5, -1.0, 0.0], [0.25, 2.0, -0.75]])
    intercepts = np.array([[1.0, -3.0, 0.5], [0.0, 2.0, 7.0]])
    log_err = intercepts[..., None] + slopes[..., None] * log_n  # (2, 3, S)
    got = ols_slopes(log_n, log_err)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, slopes, atol=1e-12)
    # least squares: a deviation symmetric about the middle size moves the intercept, not the slope
    bent = log_err[0, 0] + np.array([0.0, 0.1, -0.3, 0.1, 0.0])
    np.testing.assert_allclose(ols_slopes(log_n, bent), -0.5, atol=1e-12)
