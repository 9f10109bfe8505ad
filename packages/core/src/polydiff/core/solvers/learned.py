"""A linear multistep solver with fitted coefficients: the few-step sampler fitted to one model.

Every multistep exponential integrator polydiff has (DDIM, DPM-Solver++(2M/3M), UniPC with its corrector) is, on
a fixed grid, the linear recurrence in the data predictions m_i = x0(x_i, t_i)

    x_{i+1} = a_i x_i + sum_{k < K} c_{i,k} m_{i-k},

with a_i = sigma_{i+1} / sigma_i and c fixed by the method's Taylor expansion in lambda = log(alpha / sigma).
``fit_multistep`` keeps that shape, starts from UniPC-bh1's coefficients on the log-SNR grid, and fits (first the
grid alone, then everything together) the grid, corrections to the c table and a log-SNR shift of the time the
model is told at each step, minimising the mean final-sample L2 error against an accurate solution of the same
probability-flow ODE from a calibration batch of x_T (the fitted-grid objective of
:mod:`polydiff.core.fitted_grid`, Xue et al., 2024, applied to the coefficients too). Learning the update
coefficients of a few-step sampler on calibration trajectories follows "Bespoke Solvers" (Shaul et al., 2024)
and "S4S: Solving for a diffusion model solver" (Frankel et al., 2025); shifting the model's time follows the
time-shift samplers for exposure bias (Li et al., 2024, "Alleviating Exposure Bias in Diffusion Models through
Sampling with Shifted Time Steps"). Zero corrections and shifts are UniPC itself.

The fitted solver runs as the registered solver ``"multistep_table"`` with ``coefficients=`` (N, 1 + K) and
``model_times=`` (N,), one model call per step, no host syncs: ``fit.sample(denoiser, noise)``, or
``sample(denoiser, noise, "multistep_table", N, grid=fit.grid, coefficients=fit.coefficients,
model_times=fit.model_times)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..fitted_grid import lbfgs_restarts
from ..grids import GRIDS, check_grid, make_grid
from ..sampling import check_inputs, register_solver, solver_tables, step_range
from .dpm_solver import multistep_orders, step_table
from .unipc import unipc_coefficients

__all__ = ["sample_multistep_table", "unipc_table", "fit_multistep", "FittedMultistep"]

#: model outputs a fitted step may weigh (UniPC order 3 with its corrector uses four)
HISTORY = 4


def unipc_table(lam: Tensor, alpha: Tensor, sigma: Tensor, order: int = 3, variant: str = "bh1") -> Tensor:
    """UniPC's recurrence (corrector folded into the next predictor) as a table (N, 1 + HISTORY):
    column 0 holds a_i, columns 1.. the weights of m_i, m_{i-1}, ... Differentiable in lambda, alpha, sigma."""
    orders = multistep_orders(lam, order, True, final_below=math.inf)
    (ratio, p0, p1, p2), (k_new, k0, k1, k2) = unipc_coefficients(lam, alpha, sigma, orders, variant)
    previous = lambda v: torch.cat([torch.zeros_like(v[:1]), v[:-1]])  # noqa: E731
    c0, c1 = p0 + ratio * previous(k_new), p1 + ratio * previous(k0 - p0)
    c2, c3 = p2 + ratio * previous(k1 - p1), ratio * previous(k2 - p2)
    return torch.stack([ratio, c0, c1, c2, c3], dim=-1)


def _check_coefficients(coefficients, steps: int) -> Tensor:
    if not isinstance(coefficients, Tensor) or coefficients.ndim != 2 or coefficients.shape[0] != steps \
            or not 2 <= coefficients.shape[1] <= 1 + HISTORY:
        shape = tuple(coefficients.shape) if isinstance(coefficients, Tensor) else type(coefficients).__name__
        raise ValueError(f"coefficients: expected a tensor ({steps}, 1 + K) with 1 <= K <= {HISTORY} (one row per "
                         f"grid step), got {shape}")
    if not bool(torch.isfinite(coefficients).all()):
        raise ValueError("coefficients: contains NaN or inf")
    return coefficients


def _run_table(denoiser, x, t, columns, cond, callback, progress, model_times=None):
    """The recurrence x_{i+1} = a_i x_i + sum_k c_{i,k} m_{i-k} over per-step tables ``columns``; the model is
    asked at ``model_times[i]`` (default: t[i])."""
    ratio, weights = columns[0], columns[1:]
    asked = t if model_times is None else model_times
    history: list[Tensor] = []
    for i in step_range(len(t) - 1, progress, "multistep_table"):
        x0, _ = denoiser.predict(x, asked[i], **cond)
        history = [x0, *history[: len(weights) - 1]]
        x_next = ratio[i] * x
        for weight, m in zip(weights, history, strict=False):
            x_next = x_next + weight[i] * m
        x = x_next
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x


@register_solver("multistep_table")
def sample_multistep_table(denoiser, x, grid, *, coefficients: Tensor | None = None,
                           model_times: Tensor | None = None, cond=None, generator=None, callback=None,
                           progress: bool = False):
    """The linear multistep recurrence in the data prediction with given coefficients (see the module
    docstring): ``coefficients`` (N, 1 + K) holds a_i and the weights of m_i, ..., m_{i-K+1} for each of the N
    steps, e.g. :func:`fit_multistep`'s; None: UniPC-bh1 order 3's own table on this grid (:func:`unipc_table`),
    which equals ``unipc`` with ``variant="bh1", order=3``. One model call per step; deterministic
    (``generator`` is unused). ``model_times`` (N,): the time the model is told at each step (default: the grid's
    own times; a fitted solver may shift them, as time-shift samplers correct the mismatch between a state's
    actual noise level and the grid's). x: (batch, ...) at grid[0]; grid: (N + 1,) decreasing times. Returns x at
    grid[-1]."""
    grid, coefficients_ = check_inputs(denoiser, x, grid)
    t = coefficients_.t
    if coefficients is None:
        if t.ndim != 1:
            raise ValueError("grid: multistep_table takes a 1-D grid (one time per step for the whole batch)")
        coefficients = unipc_table(coefficients_.log_snr, coefficients_.alpha, coefficients_.sigma)
    table = _check_coefficients(coefficients, len(t) - 1)
    if table.requires_grad:
        columns = [step_table(column, x) for column in table.unbind(-1)]
    else:
        key = ("multistep_table", tuple(table.shape), table.detach().cpu().double().numpy().tobytes())
        columns = solver_tables(coefficients_, x, key, lambda: [step_table(c, x) for c in table.unbind(-1)])
    if model_times is not None:
        model_times = torch.as_tensor(model_times, dtype=torch.float64)
        if model_times.shape != (len(t) - 1,) or not bool(torch.isfinite(model_times).all()) \
                or not bool(((model_times > 0) & (model_times <= denoiser.schedule.t_max * (1 + 1e-9))).all()):
            raise ValueError(f"model_times: expected ({len(t) - 1},) finite times in (0, t_max], got shape "
                             f"{tuple(model_times.shape)}")
        model_times = model_times.to(x.device)
    return _run_table(denoiser, x, t, columns, cond or {}, callback, progress, model_times)


@dataclass(frozen=True)
class FittedMultistep:
    """A fitted few-step sampler: ``grid`` (N + 1,) float64, ``coefficients`` (N, 1 + HISTORY) float64 and the
    ``model_times`` (N,) the model is told at each step, plus the calibration losses of the starting UniPC and of
    the fit, the fitting seconds and, when a validation batch was given, the fit's error on it."""

    grid: Tensor
    coefficients: Tensor
    model_times: Tensor
    initial_loss: float
    loss: float
    seconds: float
    validation_loss: float | None = None

    def sample(self, denoiser: Denoiser, noise: Tensor, **options) -> Tensor:
        """Samples (batch, ...) from unit noise on a variance-preserving schedule (``polydiff.core.sample``)."""
        from ..sampling import sample

        return sample(denoiser, noise, "multistep_table", self.grid.shape[0] - 1, grid=self.grid,
                      coefficients=self.coefficients, model_times=self.model_times, **options)


def fit_multistep(denoiser: Denoiser, steps: int, x_start: Tensor, target: Tensor, *, final_zero: bool = False,
                  t_start: float | None = None, t_end: float | None = None, order: int = 3,
                  variant: str = "bh1", iterations: int = 200, fit_grid: bool = True,
                  time_limit: float = 60.0, validation: tuple[Tensor, Tensor] | None = None,
                  regularization: float = 0.0,
                  start_grids: tuple[str, ...] = ("logsnr", "quadratic", "uniform", "karras"),
                  start_solvers: tuple[tuple[str, int], ...] | None = None, clock: str = "wall") -> FittedMultistep:
    """Fit an N-step grid and linear multistep coefficients to a calibration batch (module docstring).

    Args:
        denoiser: the model in a :class:`Denoiser`.
        steps: N >= 2, the number of steps (= model calls).
        x_start: (batch, ...) calibration states at t_start (for a VP schedule, unit noise).
        target: (batch, ...) accurate end states of the probability-flow ODE from x_start (e.g. a high-accuracy
            ODE solve, or a many-step solver run).
        final_zero: end at t = 0 (the last step returns alpha x0 at the last model call's x0 estimate).
        t_start, t_end: the grid's ends (default: the schedule's t_max and t_min).
        order, variant: the UniPC the fit starts from (and corrects).
        iterations: L-BFGS iterations in all (restarts included).
        fit_grid: fit the grid too (else the log-SNR grid is kept).
        start_grids: grid kinds (:data:`polydiff.core.GRIDS`) UniPC is tried on before fitting; the fit starts
            from the one with the lowest calibration error (at 5 steps the log-SNR grid can be several times worse
            than a quadratic one, a gap a time-limited fit need not close). Used when ``fit_grid``.
        start_solvers: (variant, order) pairs of UniPC tried as well, each on every starting grid (default: only
            ``(variant, order)``); the fit corrects the best pair's coefficients.
        time_limit: seconds after which the optimiser stops (the best point so far is kept).
        clock: what ``time_limit`` and the returned ``seconds`` count: "wall" (elapsed time) or "cpu" (the
            fitting thread's CPU time, which on a machine shared with other processes is the fit's own cost).
        validation: (x_start, target) of a second calibration batch, not fitted on: of the points the fit
            passes (UniPC itself, the end of the grid-only stage and of each restart of the joint stage), the one
            with the lowest validation error is returned, which guards against fitting the calibration batch's
            own noise when it is small next to the number of parameters.
        regularization: weight of the mean square of the coefficient corrections and log-SNR shifts added to
            the calibration error (a pull toward UniPC's own coefficients; the grid is not penalised).
    Returns:
        a :class:`FittedMultistep`.
    """
    from ..fitted_grid import _logits_from_grid, grid_from_logits

    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps: expected an integer >= 2, got {steps!r}")
    for name, value in (("x_start", x_start), ("target", target)):
        if not isinstance(value, Tensor) or not value.is_floating_point() or value.ndim < 1:
            raise ValueError(f"{name}: expected a floating-point tensor of shape (batch, ...)")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}: contains NaN or inf")
    if target.shape != x_start.shape:
        raise ValueError(f"target: expected shape {tuple(x_start.shape)}, got {tuple(target.shape)}")
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations: expected a positive integer, got {iterations!r}")
    if not time_limit > 0:
        raise ValueError(f"time_limit: expected seconds > 0, got {time_limit!r}")
    if clock not in _CLOCKS:
        raise ValueError(f"clock: expected 'wall' or 'cpu', got {clock!r}")
    if isinstance(start_grids, str) or not start_grids or any(kind not in GRIDS for kind in start_grids):
        raise ValueError(f"start_grids: expected a non-empty tuple of grid kinds from {GRIDS}, got {start_grids!r}")
    bases = [(variant, order)] if start_solvers is None else list(start_solvers)
    if not bases or any(not (isinstance(b, (tuple, list)) and len(b) == 2 and b[0] in ("bh1", "bh2")
                             and b[1] in (1, 2, 3)) for b in bases):
        raise ValueError(f"start_solvers: expected (variant, order) pairs with variant 'bh1' or 'bh2' and order 1, "
                         f"2 or 3, got {start_solvers!r}")
    base_solver = [bases[0]]  # the UniPC whose coefficients the fit corrects (chosen below)
    if not (isinstance(regularization, (int, float)) and math.isfinite(regularization) and regularization >= 0):
        raise ValueError(f"regularization: expected a finite number >= 0, got {regularization!r}")
    if validation is not None:
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2
                and all(isinstance(v, Tensor) and v.is_floating_point() for v in validation)
                and validation[0].shape == validation[1].shape and validation[0].ndim == x_start.ndim
                and validation[0].shape[1:] == x_start.shape[1:] and validation[0].shape[0] >= 1):
            raise ValueError(f"validation: expected (x_start, target), two floating-point tensors of shape "
                             f"(batch, {', '.join(str(n) for n in x_start.shape[1:])})")
        if not all(bool(torch.isfinite(v).all()) for v in validation):
            raise ValueError("validation: contains NaN or inf")
    now = _CLOCKS[clock]
    started = now()
    schedule = denoiser.schedule
    t_start = schedule.t_max if t_start is None else float(t_start)
    t_end = schedule.t_min if t_end is None else float(t_end)
    x_start = x_start.detach().to(torch.float64)
    target = target.detach().to(x_start)
    init_grid = make_grid(schedule, steps, "logsnr", t_start=t_start, t_end=t_end, final_zero=final_zero)
    logits = _logits_from_grid(schedule, init_grid, t_end, final_zero)
    n_grid = logits.numel() if fit_grid else 0

    lam_floor = float(schedule.log_snr(torch.tensor(t_start, dtype=torch.float64)))

    def tables(theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        grid = grid_from_logits(schedule, theta[:n_grid], t_start, t_end, final_zero) if fit_grid else init_grid
        log_alpha, lam = schedule.log_alpha_and_log_snr(grid)
        alpha, sigma = log_alpha.exp(), (log_alpha - lam).exp()
        base = unipc_table(lam, alpha, sigma, base_solver[0][1], base_solver[0][0])
        correction = theta[n_grid:n_grid + steps * HISTORY].reshape(steps, HISTORY)
        # the model's time: a log-SNR shift of each step's own time, kept within [t_min-ish, t_start]
        shift = theta[n_grid + steps * HISTORY:]
        model_times = schedule.t_from_log_snr((lam[:-1] + shift).clamp_min(lam_floor))
        return grid, torch.cat([base[:, :1], base[:, 1:] + correction], dim=1), model_times

    def error(theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean final-sample L2 error of the solver ``theta`` describes, from x against y."""
        grid, table, model_times = tables(theta)
        columns = [step_table(column, x) for column in table.unbind(-1)]
        out = _run_table(denoiser, x, grid.to(x.device), columns, {}, None, False, model_times.to(x.device))
        return (out - y).flatten(1).norm(dim=1).mean()

    trail: list[Tensor] = []  # every point that improved the (regularised) calibration loss, in order

    def objective(theta: Tensor) -> Tensor:
        loss = error(theta, x_start, target)
        if regularization:
            loss = loss + regularization * theta[n_grid:].square().mean()
        if not trail or float(loss.detach()) < objective.lowest:
            objective.lowest = float(loss.detach())
            trail.append(theta.detach().clone())
        return loss

    corrections = torch.zeros(steps * HISTORY + steps, dtype=torch.float64)
    theta = torch.cat([logits, corrections]) if fit_grid else corrections
    with torch.no_grad():
        initial = float(error(theta, x_start, target))
        for kind, solver in ((k, b) for b in bases for k in (start_grids if fit_grid else ("logsnr",))):
            try:  # UniPC (each variant, order) on each starting grid; the fit starts from the best
                candidate = _logits_from_grid(schedule, make_grid(schedule, steps, kind, t_start=t_start, t_end=t_end,
                                                                  final_zero=final_zero), t_end, final_zero)
            except ValueError:  # a grid this schedule or range cannot take
                continue
            previous, base_solver[0] = base_solver[0], solver
            start = torch.cat([candidate, corrections]) if fit_grid else corrections
            loss = float(error(start, x_start, target))
            if loss < initial:
                initial, logits, theta = loss, candidate, start
            else:
                base_solver[0] = previous
        objective(theta)
    best = [objective.lowest, theta.clone()]
    deadline = started + time_limit
    if fit_grid:  # first the grid alone (UniPC on a fitted grid), then grid and coefficients together
        grid_only = lambda logits_: objective(torch.cat([logits_, corrections]))  # noqa: E731
        stage = _lbfgs(grid_only, logits, iterations // 2, started + 0.4 * time_limit, now)
        theta = torch.cat([stage[1], corrections])
        best = [stage[0], theta] if stage[0] < best[0] else best
    final = _lbfgs(objective, best[1], iterations - (iterations // 2 if fit_grid else 0), deadline, now)
    best = final if final[0] < best[0] else best
    chosen, validation_loss = best[1], None
    if validation is not None:  # early stopping: the point of the fit's path that does best on unseen noise
        x_check = validation[0].detach().to(x_start)
        y_check = validation[1].detach().to(x_start)
        picks = sorted(set(np.linspace(0, len(trail) - 1, min(len(trail), _VALIDATION_POINTS)).round().astype(int)))
        with torch.no_grad():
            scored = [(float(error(trail[i], x_check, y_check)), i) for i in picks]
        validation_loss, index = min(scored)
        chosen = trail[index]
    with torch.no_grad():
        grid, table, model_times = tables(chosen)
        loss = float(error(chosen, x_start, target))
    grid = check_grid(grid.detach(), "fitted grid")
    return FittedMultistep(grid, table.detach(), model_times.detach(), initial, loss,
                           now() - started, validation_loss)


_CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}

#: points of a fit's path scored on the validation batch (evenly spaced along it, its two ends included)
_VALIDATION_POINTS = 24


def _lbfgs(objective, start: Tensor, iterations: int, deadline: float, clock) -> list:
    """L-BFGS (strong Wolfe) from ``start`` with restarts until ``iterations`` or ``deadline`` (seconds of
    ``clock``) is spent or a restart stops improving; returns [best loss, best parameters]."""
    theta = start.detach().clone().requires_grad_(True)
    with torch.no_grad():
        best = [float(objective(theta)), start.detach().clone()]

    return lbfgs_restarts(objective, theta, best, iterations, deadline=deadline, clock=clock, max_iter=50,
                          history_size=30, tolerance_grad=1e-10, tolerance_change=1e-13)
