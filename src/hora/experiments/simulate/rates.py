"""Rates from replicated errors: log-log slope of the mean error against n, with a bootstrap interval."""

from __future__ import annotations

import numpy as np


def ols_slopes(log_n: np.ndarray, log_err: np.ndarray) -> np.ndarray:
    """Least-squares slopes of log_err (..., S) on log_n (S,), vectorised over leading dimensions."""
    centred = log_n - log_n.mean()
    return ((log_err - log_err.mean(axis=-1, keepdims=True)) * centred).sum(-1) / (centred**2).sum()


def fit_slope(sizes: np.ndarray, errors: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """Slope of log(mean error) on log(n) and a percentile-bootstrap 95% interval.

    sizes (S,), errors (S, reps) with independent replications per size.  Each bootstrap draw
    resamples the replications of every size with replacement and refits the slope of the means.
    """
    log_n = np.log(sizes)
    slope = float(ols_slopes(log_n, np.log(errors.mean(axis=1))))
    n_sizes, reps = errors.shape
    picks = rng.integers(0, reps, size=(n_boot, n_sizes, reps))
    boot_means = np.take_along_axis(errors[None], picks, axis=2).mean(axis=2)
    low, high = np.percentile(ols_slopes(log_n, np.log(boot_means)), [2.5, 97.5])
    return {"slope": slope, "ci_low": float(low), "ci_high": float(high)}
