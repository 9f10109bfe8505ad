"""Fitted time grids: choose the N-step grid that minimises an estimate of a solver's sampling error.

``fit_grid(denoiser, solver, steps, x_start)`` returns the (steps + 1,) decreasing times that minimise the
*global* error of ``solver`` on a calibration batch: the mean L2 distance between the solver's final samples and
an accurate solution of the same probability-flow ODE from the same starting states,

    J(grid) = mean_b || solver(x_b, grid) - x_ref,b ||_2,

where x_ref is either given (``target=``, e.g. a high-accuracy ODE solve) or computed by the same solver on a
fine log-SNR grid (``reference_steps``). Optimising the time steps against the true solution follows Xue et
al. (2024, "Accelerating Diffusion Sampling with Optimized Time Steps"), and differentiating through the sampler
follows Watson et al. (2021, "Learning Fast Samplers for Diffusion Models by Differentiating Through Sample
Quality"), here with the final-sample L2 error as the loss.
Align Your Steps (Sabour et al., 2024) minimises a KL upper bound instead; it is not implemented here.

Parameterisation: the interior points live in log-SNR, lambda_i = lambda_start + (lambda_end - lambda_start) *
cumsum(softmax(8 tanh(theta / 8)))_i (the bound keeps every increment above e^-16 of the others, so no two
points merge), so every theta gives a strictly increasing lambda (a strictly decreasing time grid) with
both end points fixed; theta = 0 is the uniform log-SNR grid (``make_grid(..., "logsnr")``). With
``final_zero`` the last point is t = 0 and the N - 1 interior points lie between lambda_start and lambda(t_end)
(the last softmax increment is the slack), which again reproduces ``make_grid(..., final_zero=True)`` at theta = 0.

The solvers are differentiable end-to-end in float64 torch, so theta is fitted by L-BFGS with autograd; a solver
that is not differentiable (a gradient that is missing or not finite) falls back to Nelder-Mead on the same
parameters. With ``final_zero`` some solvers' step to t = 0 has a NaN gradient (0 * inf in the backward pass),
which sends them to that fallback.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .denoiser import Denoiser
from .grids import check_grid, make_grid
from .sampling import get_solver

__all__ = ["fit_grid", "grid_from_logits", "FIT_METHODS"]

FIT_METHODS = ("global",)


def _solver_function(solver) -> Callable[..., Tensor]:
    return solver if callable(solver) else get_solver(solver)


def grid_from_logits(schedule, logits: Tensor, t_start: float, t_end: float, final_zero: bool = False) -> Tensor:
    """The time grid (N + 1,) of free log-SNR increments ``logits`` (N,), differentiable in ``logits``.

    lambda_i = lambda(t_start) + (lambda(t_end) - lambda(t_start)) * cumsum(softmax(8 tanh(logits / 8)))_i for
    i = 1..N - 1 (the module docstring's bounded parameterisation);
    the end points are set to t_start and t_end (or 0 with ``final_zero``) exactly."""
    f64 = dict(dtype=torch.float64, device=logits.device)
    lam_start, lam_end = schedule.log_snr(torch.tensor([t_start, t_end], **f64))
    # logits are bounded to +-8 (smooth) so no increment underflows and grid points stay distinct in t
    bounded = 8.0 * torch.tanh(logits.to(torch.float64) / 8.0)
    fractions = torch.cumsum(torch.softmax(bounded, dim=0), dim=0)
    interior = schedule.t_from_log_snr(lam_start + (lam_end - lam_start) * fractions[:-1])
    last = torch.zeros(1, **f64) if final_zero else torch.tensor([t_end], **f64)
    return torch.cat([torch.tensor([t_start], **f64), interior, last])


def _logits_from_grid(schedule, grid: Tensor, t_end: float, final_zero: bool) -> Tensor:
    lam = schedule.log_snr(grid.to(torch.float64))
    if final_zero:
        lam = torch.cat([lam[:-1], schedule.log_snr(torch.tensor([t_end], dtype=torch.float64))])
    increments = lam[1:] - lam[:-1]
    if not bool((increments > 0).all()):
        raise ValueError("init: the initial grid must have strictly increasing log-SNR before its end point")
    logits = increments.log() - increments.log().mean()
    return 8.0 * torch.atanh((logits / 8.0).clamp(-0.999, 0.999))


def fit_grid(denoiser: Denoiser, solver, steps: int, x_start: Tensor | None = None, *, data: Tensor | None = None,
             target: Tensor | None = None, method: str = "global", init="logsnr", iterations: int = 40,
             final_zero: bool = False, t_start: float | None = None, t_end: float | None = None,
             reference_steps: int = 512, solver_options: dict | None = None,
             generator: torch.Generator | None = None, optimizer: str = "lbfgs") -> Tensor:
    """Fit an N-step time grid for ``solver`` that minimises its global error on a calibration batch.

    Args:
        denoiser: the model, wrapped in a :class:`~polydiff.core.denoiser.Denoiser`.
        solver: a registered solver name (``polydiff.core.list_solvers()``) or a solver function.
        steps: N, the number of grid intervals (the solver's NFE follows from its order).
        x_start: (batch, ...) calibration states at t_start (noise scaled to the prior), or give ``data``.
        data: (batch, ...) data samples instead of x_start: they are noised to t_start with ``generator``.
        target: (batch, ...) accurate end states for x_start (e.g. a high-accuracy ODE solve). Default: the same
            solver on a ``reference_steps``-step log-SNR grid.
        method: "global" (the mean final-sample L2 error; see the module docstring).
        init: the starting grid: a kind accepted by ``make_grid`` or explicit times.
        iterations: optimiser iterations (L-BFGS); the Nelder-Mead fallback gets 30 evaluations per iteration.
        final_zero: end the grid at t = 0 (the last step returns the denoised prediction).
        t_start, t_end: the fixed end points (default: the schedule's t_max and t_min).
        solver_options: keyword options for the solver (e.g. ``{"lower_order_final": True}``).
        optimizer: "lbfgs" (autograd, falls back to Nelder-Mead if the solver is not differentiable) or
            "nelder-mead".
    Returns:
        the fitted grid, a float64 tensor (steps + 1,), strictly decreasing, with the fixed end points.
    """
    if method not in FIT_METHODS:
        raise ValueError(f"method: unknown fitting objective {method!r}; choices: {list(FIT_METHODS)}")
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps: expected an integer >= 2 (a 1-step grid has no free point), got {steps!r}")
    if optimizer not in ("lbfgs", "nelder-mead"):
        raise ValueError(f"optimizer: expected 'lbfgs' or 'nelder-mead', got {optimizer!r}")
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations: expected a positive integer, got {iterations!r}")
    if (x_start is None) == (data is None):
        raise ValueError("x_start / data: give exactly one of them")
    for name, value in (("x_start", x_start), ("data", data), ("target", target)):
        if value is None:
            continue
        if not isinstance(value, Tensor) or not value.is_floating_point() or value.ndim < 1:
            raise ValueError(f"{name}: expected a floating-point tensor of shape (batch, ...)")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}: contains NaN or inf")
    schedule = denoiser.schedule
    t_start = schedule.t_max if t_start is None else float(t_start)
    t_end = schedule.t_min if t_end is None else float(t_end)
    if not 0 < t_end < t_start:
        raise ValueError(f"t_start, t_end: expected 0 < t_end < t_start, got {t_start}, {t_end}")
    if data is not None:
        alpha, sigma = (float(v) for v in schedule.alpha_sigma(torch.tensor(t_start, dtype=torch.float64)))
        data = data.to(torch.float64)
        noise = torch.randn(data.shape, generator=generator, dtype=torch.float64, device=data.device)
        x_start = alpha * data + sigma * noise
    x_start = x_start.detach().to(torch.float64)
    run_solver = _solver_function(solver)
    options = dict(solver_options or {})

    if target is None:
        fine = make_grid(schedule, reference_steps, "logsnr", t_start=t_start, t_end=t_end, final_zero=final_zero,
                         device=x_start.device)
        with torch.no_grad():
            target = run_solver(denoiser, x_start.clone(), fine, **options)
    target = target.detach().to(x_start)
    if target.shape != x_start.shape:
        raise ValueError(f"target: expected shape {tuple(x_start.shape)}, got {tuple(target.shape)}")

    init_grid = make_grid(schedule, steps, init, t_start=t_start, t_end=t_end, final_zero=final_zero)
    if init_grid.shape[0] != steps + 1:
        raise ValueError(f"init: expected {steps + 1} times, got {init_grid.shape[0]}")
    logits = _logits_from_grid(schedule, init_grid, t_end, final_zero).to(x_start.device)

    def objective(theta: Tensor) -> Tensor:
        grid = grid_from_logits(schedule, theta, t_start, t_end, final_zero)
        out = run_solver(denoiser, x_start, grid, **options)
        return (out - target).flatten(1).norm(dim=1).mean()

    best = _fit_lbfgs(objective, logits, iterations) if optimizer == "lbfgs" else None
    if best is None:
        best = _fit_nelder_mead(objective, logits, iterations)
    grid = grid_from_logits(schedule, best, t_start, t_end, final_zero).detach()
    return check_grid(grid, "fitted grid")


def _fit_lbfgs(objective, logits: Tensor, iterations: int) -> Tensor | None:
    """L-BFGS with a strong-Wolfe line search; returns the best logits seen, or None if the objective has no
    usable gradient (the caller then falls back to a derivative-free search)."""
    theta = logits.clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            value = objective(theta)
            if not value.requires_grad:
                return None
            (grad,) = torch.autograd.grad(value, theta, allow_unused=True)
    except RuntimeError:  # e.g. a solver updating a saved tensor in place: not differentiable as written
        return None
    if grad is None or not bool(torch.isfinite(grad).all()) or not bool((grad != 0).any()):
        return None
    best = lbfgs_restarts(objective, theta, [float(value.detach()), logits.clone()], iterations)
    return best[1]


def lbfgs_restarts(objective, theta: Tensor, best: list, iterations: int, *, deadline: float = math.inf,
                   max_iter: int | None = None, history_size: int = 20, tolerance_grad: float = 1e-9,
                   tolerance_change: float = 1e-12, clock=None) -> list:
    """L-BFGS (strong-Wolfe line search) on ``objective(theta)``, restarted from the best point with a fresh
    curvature history until ``iterations`` are spent, ``deadline`` (seconds of ``clock``, default
    time.perf_counter; time.thread_time budgets the thread's CPU time instead) passes, or a
    restart no longer improves the loss; ``best`` = [loss, parameters] of the start, updated in place and
    returned. A non-finite trial loss is reported as 1e30 with zero gradient so the line search backs off."""
    import time

    clock = time.perf_counter if clock is None else clock

    def closure():
        opt.zero_grad()
        with torch.enable_grad():
            loss = objective(theta)
            if not torch.isfinite(loss):
                theta.grad = torch.zeros_like(theta)
                return torch.tensor(1e30, dtype=torch.float64)
            loss.backward()
        if float(loss.detach()) < best[0]:
            best[0], best[1] = float(loss.detach()), theta.detach().clone()
        if clock() > deadline:  # a zero gradient ends L-BFGS
            theta.grad.zero_()
        return loss

    # L-BFGS stops early when its line search stalls on the (piecewise smooth) objective; restarting from the
    # best point with a fresh curvature history recovers.
    remaining = iterations
    while remaining > 0 and clock() < deadline:
        before = best[0]
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=min(remaining, max_iter or remaining),
                                history_size=history_size, line_search_fn="strong_wolfe",
                                tolerance_grad=tolerance_grad, tolerance_change=tolerance_change)
        opt.step(closure)
        remaining -= max(opt.state[opt._params[0]]["n_iter"], 1)
        if best[0] > before * (1 - 1e-4):
            break
        with torch.no_grad():
            theta.copy_(best[1])
    return best


def _fit_nelder_mead(objective, logits: Tensor, iterations: int) -> Tensor:
    from scipy.optimize import minimize

    def value(theta: np.ndarray) -> float:
        with torch.no_grad():
            loss = float(objective(torch.as_tensor(theta, dtype=torch.float64, device=logits.device)))
        return loss if np.isfinite(loss) else 1e30

    start = logits.detach().cpu().numpy()
    # the budget grows with the iterations, not with the dimension: the derivative-free search is a fallback and
    # must stay within seconds on a CPU
    result = minimize(value, start, method="Nelder-Mead",
                      options={"maxfev": 30 * iterations, "xatol": 1e-4, "fatol": 1e-10,
                               "initial_simplex": np.vstack([start] + [start + 0.5 * e for e in np.eye(len(start))])})
    best = result.x if result.fun <= value(start) else start
    return torch.as_tensor(best, dtype=torch.float64, device=logits.device)
