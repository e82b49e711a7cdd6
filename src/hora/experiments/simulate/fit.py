"""Batched least-squares fitting: many independent problems optimised at once by L-BFGS.

torch.optim.LBFGS would treat R independent fits as one problem of R * n_params unknowns with one
shared line search; here every fit has its own curvature history and its own backtracking step, while
all arithmetic stays batched over the leading dimension R.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Objective = Callable[[torch.Tensor], torch.Tensor]  # theta (R, n_params) -> per-fit loss (R,)


def _loss_and_grad(fun: Objective, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-fit losses (R,) and gradients (R, n_params); fits are independent, so grad of the sum works."""
    theta = theta.detach().requires_grad_(True)
    loss = fun(theta)
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    return loss.detach(), grad


def _two_loop(grad: torch.Tensor, s_hist: list, y_hist: list, rho_hist: list, gamma: torch.Tensor) -> torch.Tensor:
    """L-BFGS direction -H g per fit (two-loop recursion); pairs with rho = 0 are skipped exactly."""
    q = grad.clone()
    alphas = []
    for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist), strict=True):
        alpha = rho * (s * q).sum(-1)
        q -= alpha[:, None] * y
        alphas.append(alpha)
    r = gamma[:, None] * q
    for s, y, rho, alpha in zip(s_hist, y_hist, rho_hist, reversed(alphas), strict=True):
        beta = rho * (y * r).sum(-1)
        r += (alpha - beta)[:, None] * s
    return -r


def _backtrack(
    fun: Objective, theta: torch.Tensor, loss: torch.Tensor, direction: torch.Tensor, slope: torch.Tensor,
    step: torch.Tensor, max_halvings: int,
) -> torch.Tensor:
    """Per-fit Armijo backtracking: largest step * 2^-k with f(theta + t d) <= f + 1e-4 t g.d; 0 if none."""
    accepted = torch.zeros_like(loss, dtype=torch.bool)
    for _ in range(max_halvings):
        with torch.no_grad():
            trial = fun(theta + step[:, None] * direction)
        accepted |= trial <= loss + 1e-4 * step * slope
        if bool(accepted.all()):
            break
        step = torch.where(accepted, step, step / 2)
    return torch.where(accepted, step, torch.zeros_like(step))


def lbfgs(fun: Objective, theta: torch.Tensor, max_iter: int, history: int = 10, tol: float = 1e-10) -> torch.Tensor:
    """Minimise each fit's loss from theta (R, n_params) for at most max_iter iterations.

    Stops early once every fit has converged: gradient max-norm below tol, or no step along the
    L-BFGS (or, failing that, steepest-descent) direction decreases the loss.  Returns the final theta.
    """
    loss, grad = _loss_and_grad(fun, theta)
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    rho_hist: list[torch.Tensor] = []
    gamma = 1.0 / grad.norm(dim=-1).clamp_min(1.0)
    for _ in range(max_iter):
        direction = _two_loop(grad, s_hist, y_hist, rho_hist, gamma)
        slope = (grad * direction).sum(-1)
        uphill = slope >= 0
        direction = torch.where(uphill[:, None], -grad, direction)
        slope = torch.where(uphill, -(grad * grad).sum(-1), slope)
        step = _backtrack(fun, theta, loss, direction, slope, torch.ones_like(loss), max_halvings=12)
        if bool(((step == 0) | (grad.abs().amax(-1) < tol)).all()):
            break
        new_theta = theta + step[:, None] * direction
        new_loss, new_grad = _loss_and_grad(fun, new_theta)
        s, y = new_theta - theta, new_grad - grad
        sy = (s * y).sum(-1)
        valid = sy > 1e-12 * s.norm(dim=-1) * y.norm(dim=-1)
        rho = torch.where(valid, 1.0 / torch.where(valid, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        gamma = torch.where(valid, sy / (y * y).sum(-1).clamp_min(1e-300), gamma)
        s_hist, y_hist, rho_hist = [*s_hist, s][-history:], [*y_hist, y][-history:], [*rho_hist, rho][-history:]
        theta, loss, grad = new_theta, new_loss, new_grad
    return theta.detach()
