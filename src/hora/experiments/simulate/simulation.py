"""Simulation of the theory: shared generators (HoRA, joint) vs independent per-head (LoRA) low-rank updates.

A ground-truth update of W_Q and W_V of one multi-head attention layer is drawn from a HoRA or joint generator;
data y = f_{dW*}(X) + sigma * eps are drawn for growing n; LoRA, HoRA and joint are fitted by least squares
(same batched L-BFGS, same budget, same restarts); errors are recorded against n and their log-log
slopes fitted.  See docs/theory.md for the set-up, the choices and what the measured slopes say.

    from pathlib import Path
    from hora.experiments.simulate.simulation import run_simulation
    run_simulation(Path("runs/simulate"), quick=True)
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hora.experiments import paths
from hora.experiments.console.grid_progress import format_seconds
from hora.experiments.console.quiet import interactive
from hora.experiments.simulate.attention_model import (
    KINDS,
    Base,
    Data,
    Dims,
    attention,
    flatten,
    joint_factors,
    local_dimension,
    make_base,
    make_data,
    n_params,
    param_shapes,
    updates,
)
from hora.experiments.simulate.fit import lbfgs
from hora.experiments.simulate.rates import fit_slope
from hora.io import atomic_write

ESTIMATORS = KINDS
METRICS = ("update_error", "excess_test_mse", "factor_error")


@dataclass(frozen=True)
class Regime:
    """A ground truth: its generator ("hora" or "joint"), its rank r0 (<= fitted rank), the heads whose
    update is exactly zero, and the generator width p of the truth and of the fitted generators
    (None: dims.p)."""

    name: str
    description: str
    true_rank: int
    zero_heads: tuple[int, ...] = ()
    truth: str = "hora"
    width: int | None = None

    def dims(self, dims: Dims) -> Dims:
        """The layer sizes of this regime: `dims` with p replaced by `width` if it is set."""
        return dims if self.width is None else replace(dims, p=self.width)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a run; stored verbatim in simulation.json."""

    dims: Dims = field(default_factory=Dims)
    regimes: tuple[Regime, ...] = (
        Regime("R1", "generic truth: every head updated, true rank = fitted rank", true_rank=2),
        Regime("R2", "degenerate truth: head 1 not updated, true rank 1 < fitted rank 2", 1, (1,)),
        Regime("R3", "joint truth: one generator shared by the heads, seeds shared by q and v, A generated from "
               "one shared seed; every head updated, true rank = fitted rank", 2, truth="joint"),
        Regime("R4", "joint truth as R3 from a narrow generator (p = 2), where the joint form reaches fewer "
               "updates than LoRA", 2, truth="joint", width=2),
        Regime("R5", "generic truth as R1 with narrow generators (p = 2): no shared structure, the joint form "
               "is misspecified", 2, width=2),
    )
    sample_sizes: tuple[int, ...] = tuple(2**k for k in range(7, 17))
    replications: int = 10
    restarts: int = 2
    max_iter: int = 150
    noise_std: float = 0.5
    n_test: int = 8192
    init_std: float = 0.1
    generator_gain: float = 2.0
    fit_from: int = 2**10
    n_boot: int = 2000
    dtype: str = "float32"


QUICK = SimulationConfig(sample_sizes=tuple(2**k for k in range(7, 13)), replications=5, max_iter=100, fit_from=2**9)


def _generator(*key: int) -> torch.Generator:
    """A torch generator seeded deterministically from a tuple of non-negative integers."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1)[0]))


def _truth_stds(kind: str, dims: Dims, gain: float) -> dict[str, float]:
    """Standard deviations of the true parameters of `kind`, in the order they are drawn.

    Seeds ~ N(0, 1); generator bodies ~ N(0, gain^2 / fan_in), so GELU works in its non-linear range;
    output layers ~ N(0, 1 / p); LoRA's free factor A ~ N(0, 1 / d).
    """
    body = {"S": 1.0, "W1": gain / dims.d_h**0.5, "W2": 1.0 / dims.p**0.5}
    if kind == "hora":
        return {**body, "A": 1.0 / dims.d**0.5}
    if kind == "joint":
        return {**body, "Abar": 1.0, "W1A": gain / dims.r**0.5, "W2A": 1.0 / dims.p**0.5}
    raise ValueError(f"no random truth of kind {kind!r}; expected 'hora' or 'joint'")


def make_truth(regime: Regime, dims: Dims, gain: float, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """True update blocks dW* (1, P, H, d_h, d) from a random bias-free generator of rank r0 = regime.true_rank.

    regime.truth = "hora": a residual HoRA generator (per-projection seeds, free A); "joint": the joint
    form (seeds shared by q and v, both factors generated), whose W2A is then rescaled so that the
    generated A has the root mean square 1 / sqrt(d) of the HoRA truth's A.  Stds: `_truth_stds`.
    The seeds of `zero_heads` are zeroed, so those heads get dW = 0 (phi(0) = 0 and there are no biases).
    """
    tdims = replace(dims, r=regime.true_rank)
    shapes = param_shapes(regime.truth, tdims)
    prm = {name: torch.randn(1, *shapes[name], generator=gen, dtype=dtype) * std
           for name, std in _truth_stds(regime.truth, tdims, gain).items()}
    prm["S"][..., list(regime.zero_heads), :, :] = 0.0
    if regime.truth == "joint":
        a = joint_factors(prm)[1]
        prm["W2A"] = prm["W2A"] / (a.pow(2).mean().sqrt() * dims.d**0.5)
    return updates(flatten(prm, regime.truth, tdims), regime.truth, tdims)


def factor_error(dw: torch.Tensor, dw_true: torch.Tensor, rank: int) -> torch.Tensor:
    """Distance of balanced factors: sqrt(sum_P sum_{i<=r} (sqrt(sigma_i(dW_P)) - sqrt(sigma_i(dW*_P)))^2).

    Invariant to the GL(r) ambiguity B A = (B G)(G^-1 A).  The balanced factors U sqrt(Sigma),
    sqrt(Sigma) V^T have these root singular values as column norms, so a direction present in the fit
    but absent from the truth costs sqrt(sigma) ~ n^(-1/4) here while it costs sigma ~ n^(-1/2) in
    `update_error`: the factor-level slowdown of over-specified fits.  dw (R, P, H, d_h, d).
    """
    def root_sv(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svdvals(x.flatten(2, 3))[..., :rank].clamp_min(0).sqrt()

    return ((root_sv(dw) - root_sv(dw_true)) ** 2).sum(dim=(1, 2)).sqrt()


def init_stds(kind: str, dims: Dims, init_std: float) -> dict[str, float]:
    """Standard deviations of the random starting parameters of `kind`, by name.

    LoRA and HoRA: every parameter ~ N(0, init_std^2).  The joint form is a product of four small
    factors at such a start (dW ~ init_std^4 and a saddle at 0 that L-BFGS does not leave), so it starts
    as the library initialises it: seeds ~ N(0, 1), bodies ~ N(0, 1 / fan_in), output layers
    ~ N(0, init_std^2).
    """
    if kind != "joint":
        return dict.fromkeys(param_shapes(kind, dims), init_std)
    return {"Abar": 1.0, "W1A": 1.0 / dims.r**0.5, "W2A": init_std,
            "S": 1.0, "W1": 1.0 / dims.d_h**0.5, "W2": init_std}


def _fit(kind: str, cfg: SimulationConfig, dims: Dims, base: Base, data: Data, y: torch.Tensor,
         gen: torch.Generator):
    """Least-squares fits with `restarts` random starts per replication; returns the best per replication.

    y (reps, n, 1, H * d_h).  Returns (dW of the best restart (reps, P, H, d_h, d), its train loss (reps,)).
    """
    reps, k = y.shape[0], cfg.restarts
    shapes = param_shapes(kind, dims)
    stds = flatten({name: torch.full((1, *shapes[name]), std, dtype=y.dtype)
                    for name, std in init_stds(kind, dims, cfg.init_std).items()}, kind, dims)
    theta0 = stds * torch.randn(reps * k, n_params(kind, dims), generator=gen, dtype=y.dtype)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return ((attention(updates(theta, kind, dims), base, data) - y) ** 2).mean(dim=(1, 3)).reshape(-1)

    theta = lbfgs(loss, theta0, cfg.max_iter)
    with torch.no_grad():
        losses = loss(theta).reshape(reps, k)
        best = losses.argmin(dim=1)
        dw = updates(theta, kind, dims).reshape(reps, k, *updates(theta[:1], kind, dims).shape[1:])
    return dw[torch.arange(reps), best], losses[torch.arange(reps), best]


def _metrics(dw: torch.Tensor, dw_true: torch.Tensor, base: Base, test: Data, cfg: SimulationConfig) -> dict:
    """Per-replication update error ||dW - dW*||_F, excess test MSE and factor error, as numpy arrays."""
    with torch.no_grad():
        pred = attention(dw, base, test)[0]  # (n_test, reps, H * d_h)
        target = attention(dw_true, base, test)[0]
        return {
            "update_error": (dw - dw_true).pow(2).sum(dim=(1, 2, 3, 4)).sqrt().double().numpy(),
            "excess_test_mse": (pred - target).pow(2).mean(dim=(0, 2)).double().numpy(),
            "factor_error": factor_error(dw, dw_true, cfg.dims.r).double().numpy(),
        }


def _simulate_regime(ri: int, regime: Regime, cfg: SimulationConfig, seed: int, bar: tqdm) -> dict:
    """Errors (sizes, reps) per estimator and metric for one regime, plus the optimisation check."""
    dtype, dims = getattr(torch, cfg.dtype), regime.dims(cfg.dims)
    base = make_base(dims, _generator(seed, ri, 0), dtype)
    dw_true = make_truth(regime, dims, cfg.generator_gain, _generator(seed, ri, 1), dtype)
    test = make_data(base, 1, cfg.n_test, dims, _generator(seed, ri, 2))
    errors = {e: {m: [] for m in METRICS} for e in ESTIMATORS}
    above_truth = {e: [] for e in ESTIMATORS}
    for si, n in enumerate(cfg.sample_sizes):
        gen = _generator(seed, ri, 3, si)
        data = make_data(base, cfg.replications, n, dims, gen)
        with torch.no_grad():
            clean = attention(dw_true.expand(cfg.replications, -1, -1, -1, -1), base, data)
            y = clean + cfg.noise_std * torch.randn(clean.shape, generator=gen, dtype=dtype)
            truth_loss = ((clean - y) ** 2).mean(dim=(1, 2, 3))
        for kind in ESTIMATORS:
            bar.set_postfix_str(f"{regime.name} n={n} {kind}")
            dw, train_loss = _fit(kind, cfg, dims, base, data, y, _generator(seed, ri, 4, si))
            for name, values in _metrics(dw, dw_true, base, test, cfg).items():
                errors[kind][name].append(values)
            above_truth[kind].append(float((train_loss > truth_loss * (1 + 1e-5)).float().mean()))
            bar.update()
    return {"errors": errors, "above_truth": above_truth}


def _summarise(raw: dict, cfg: SimulationConfig, dims: Dims, seed: int) -> dict:
    """Mean, standard error and fitted slope (bootstrap 95% interval) of every metric; per estimator its
    parameter count and local dimension (`local_dimension`) at the regime's sizes `dims`."""
    sizes = np.asarray(cfg.sample_sizes, dtype=float)
    use = sizes >= cfg.fit_from
    rng = np.random.default_rng(seed)
    out = {}
    for kind, per_metric in raw["errors"].items():
        metrics = {}
        for name, rows in per_metric.items():
            err = np.stack(rows)  # (sizes, reps)
            metrics[name] = {
                "mean": err.mean(axis=1).tolist(),
                "sem": (err.std(axis=1, ddof=1) / np.sqrt(err.shape[1])).tolist(),
                **fit_slope(sizes[use], err[use], cfg.n_boot, rng),
            }
        out[kind] = {
            "n_params": n_params(kind, dims),
            "local_dimension": local_dimension(kind, dims, _generator(seed, 5)),
            "frac_fits_above_truth_loss": raw["above_truth"][kind],
            "metrics": metrics,
        }
    return out


def plot(result: dict, path: Path) -> None:
    """Log-log error vs n: one panel per regime (rows) x metric (columns), slopes in the legends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.asarray(result["config"]["sample_sizes"], dtype=float)
    regimes = result["regimes"]
    fig, axes = plt.subplots(len(regimes), len(METRICS), figsize=(4.6 * len(METRICS), 3.8 * len(regimes)),
                             squeeze=False)
    for row, (rname, reg) in enumerate(regimes.items()):
        for col, metric in enumerate(METRICS):
            ax = axes[row, col]
            for kind, est in reg["estimators"].items():
                m = est["metrics"][metric]
                label = f"{kind}: slope {m['slope']:.2f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]"
                ax.errorbar(sizes, m["mean"], yerr=m["sem"], marker="o", ms=3, capsize=2, label=label)
            ax.set(xscale="log", yscale="log", xlabel="n", title=f"{rname}: {metric}")
            ax.legend(fontsize=8)
    fig.suptitle(f"slopes fitted for n >= {result['config']['fit_from']} (bootstrap 95% intervals)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


def run_simulation(
    output_dir: Path, quick: bool = False, seed: int = 0, *, config: SimulationConfig | None = None,
    progress: bool = True,
) -> dict:
    """Run the simulation; write output_dir/simulation.json and output_dir/simulation.png.

    `config` overrides the preset chosen by `quick` (QUICK, or the default SimulationConfig).
    Deterministic for a given seed and config.  Runs torch on one thread: the work is many small
    batched ops, and on a shared 2-core machine two threads were measured 2-25x slower than one.
    Returns the dict written to simulation.json.
    """
    output_dir = paths.check_output_dir(output_dir)
    cfg = config or (QUICK if quick else SimulationConfig())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(cfg, Path(output_dir), seed, progress)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: SimulationConfig, output_dir: Path, seed: int, progress: bool) -> dict:
    """Body of `run_simulation`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = {"config": {**asdict(cfg), "seed": seed}, "regimes": {}}
    total = len(cfg.regimes) * len(cfg.sample_sizes) * len(ESTIMATORS)
    # a bar on a terminal; elsewhere (a log file) one line per regime instead of the bar's \r redraws
    lines = progress and not interactive()
    with tqdm(total=total, desc="simulate", disable=not progress or lines) as bar:
        for ri, regime in enumerate(cfg.regimes):
            raw = _simulate_regime(ri, regime, cfg, seed, bar)
            result["regimes"][regime.name] = {**asdict(regime), "dims": asdict(regime.dims(cfg.dims)),
                                              "estimators": _summarise(raw, cfg, regime.dims(cfg.dims), seed)}
            if lines:
                print(f"hora: simulate: regime {ri + 1}/{len(cfg.regimes)} ({regime.name}) done "
                      f"({format_seconds(time.perf_counter() - start)})", file=sys.stderr, flush=True)
    result["wall_time_s"] = time.perf_counter() - start
    atomic_write(output_dir / "simulation.json",
                  lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    plot(result, output_dir / "simulation.png")
    return result
