"""The solver registry and the one sampling entry point, ``polydiff.core.sample``.

Every solver is a plain function ``sample_<name>(denoiser, x, grid, *, cond=None, callback=None,
progress=False, **options) -> x`` (the state at grid[-1]) living in :mod:`polydiff.core.solvers`, registered with
``@register_solver("<name>")``. It loops over the grid with its math in the open (k-diffusion's shape), keeps
any multistep history in local variables, accepts per-sample time (grid of shape (N + 1, batch)) and makes no
host syncs inside the loop: all schedule coefficients come from ``grid_coefficients`` before the loop.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .denoiser import Denoiser, append_dims
from .grids import check_grid, make_grid
from .schedules import NoiseSchedule

__all__ = ["sample", "register_solver", "list_solvers", "grid_coefficients", "GridCoefficients", "check_inputs",
           "step_range", "noise_like"]

_SOLVERS: dict[str, Callable[..., Tensor]] = {}


def register_solver(name: str):
    """Decorator adding a solver function to the registry under ``name``."""

    def add(fn):
        if name in _SOLVERS and _SOLVERS[name] is not fn:
            raise ValueError(f"solver name {name!r} registered twice")
        _SOLVERS[name] = fn
        fn.solver_name = name
        return fn

    return add


_DISCOVERED = False


def list_solvers() -> dict[str, Callable[..., Tensor]]:
    """Name -> function of every registered solver (importing every module of polydiff.core.solvers once)."""
    global _DISCOVERED
    if not _DISCOVERED:
        package = importlib.import_module(f"{__package__}.solvers")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        _DISCOVERED = True
    return dict(sorted(_SOLVERS.items()))


class GridCoefficients(NamedTuple):
    """Schedule values on every grid point, each (N + 1,) or (N + 1, batch), float64 on the grid's device."""

    t: Tensor
    alpha: Tensor
    sigma: Tensor
    log_snr: Tensor


def grid_coefficients(schedule: NoiseSchedule, grid: Tensor) -> GridCoefficients:
    """(t, alpha, sigma, log_snr) of ``schedule`` at every point of ``grid`` (N + 1,) or (N + 1, batch)."""
    log_alpha, log_snr = schedule.log_alpha_and_log_snr(grid)
    return GridCoefficients(grid, log_alpha.exp(), (log_alpha - log_snr).exp(), log_snr)


def check_inputs(denoiser: Denoiser, x: Tensor, grid) -> tuple[Tensor, GridCoefficients]:
    """Validate (denoiser, x, grid) once before a solver's loop; return the grid on x's device and its
    coefficients. Raises ValueError naming the argument for NaN/inf in x, a bad grid, or a batch mismatch."""
    if not isinstance(denoiser, Denoiser):
        raise ValueError(f"denoiser: expected a polydiff Denoiser, got {type(denoiser).__name__}")
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise ValueError("x: expected a floating-point tensor of shape (batch, ...)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x: contains NaN or inf")
    grid = check_grid(torch.as_tensor(grid, dtype=torch.float64) if not isinstance(grid, Tensor) else grid)
    if grid.ndim == 2 and grid.shape[1] != x.shape[0]:
        raise ValueError(f"grid: per-sample grid has {grid.shape[1]} columns but x has batch {x.shape[0]}")
    grid = grid.to(device=x.device, dtype=torch.float64)
    coefficients = grid_coefficients(denoiser.schedule, grid)
    if not grid.requires_grad:
        denoiser.remember(grid, x, (coefficients.alpha, coefficients.sigma))
    return grid, coefficients


def step_range(num_steps: int, progress: bool, desc: str = "sampling"):
    """range(num_steps), wrapped in a tqdm bar when ``progress``."""
    if not progress:
        return range(num_steps)
    from tqdm.auto import trange

    return trange(num_steps, desc=desc, leave=False)


def noise_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def coef(value: Tensor, x: Tensor) -> Tensor:
    """A per-step coefficient (scalar or (batch,)) cast to x's dtype and shaped to broadcast over x."""
    return append_dims(value.to(x.dtype), x.ndim)


def sample(denoiser: Denoiser, noise: Tensor, solver: str = "dpmpp_2m", steps: int = 10, grid="logsnr", *,
           final_zero: bool = False, t_start: float | None = None, t_end: float | None = None,
           cond: dict | None = None, **options) -> Tensor:
    """Sample from a diffusion model: the one entry point over every solver and grid.

    Args:
        denoiser: a :class:`~polydiff.core.denoiser.Denoiser` wrapping the model and its schedule.
        noise: standard normal noise (batch, ...); it is scaled to the prior at t_start,
            x_T = noise * sqrt(alpha^2 + sigma^2) (1 for VP schedules, about sigma_max for VE/EDM).
        solver: a name from ``polydiff.core.list_solvers()``.
        steps: number of solver steps (grid intervals); NFE depends on the solver's order.
        grid: a kind from ``polydiff.core.grids.GRIDS``, or an array of decreasing times (then ``steps`` must
            equal its length minus one) such as the output of ``polydiff.core.fitted_grid.fit_grid``.
        final_zero: end the grid at t = 0, returning the denoised prediction at the last step.
        cond: keyword arguments passed to the model on every call.
        options: solver options (eta, order, generator, callback, progress, ...).
    Returns:
        samples (batch, ...), same dtype as noise.
    """
    table = list_solvers()
    if solver not in table:
        raise ValueError(f"solver: unknown solver {solver!r}; choices: {list(table)}")
    if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.ndim < 1:
        raise ValueError("noise: expected a floating-point torch tensor of shape (batch, ...)")
    if not bool(torch.isfinite(noise).all()):
        raise ValueError("noise: contains NaN or inf")
    schedule = denoiser.schedule
    times = make_grid(schedule, steps, grid, t_start=t_start, t_end=t_end, final_zero=final_zero,
                      device=noise.device)
    if not isinstance(grid, str) and times.shape[0] != steps + 1:
        raise ValueError(f"steps: {steps} does not match the explicit grid of {times.shape[0]} times")
    if times.ndim == 2 and times.shape[1] != noise.shape[0]:
        raise ValueError(f"grid: per-sample grid has {times.shape[1]} columns but noise has batch {noise.shape[0]}")
    if schedule.variance_preserving:
        x = noise  # the prior is N(0, I); solvers never write into their input
    else:
        alpha, sigma = schedule.alpha_sigma(times[0])
        x = noise * append_dims(torch.sqrt(alpha**2 + sigma**2), noise.ndim).to(noise.dtype)
    return table[solver](denoiser, x, times, cond=cond, **options)
