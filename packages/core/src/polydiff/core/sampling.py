"""The solver registry and the one sampling entry point, ``polydiff.core.sample``.

Every solver is a plain function ``sample_<name>(denoiser, x, grid, *, cond=None, generator=None, callback=None,
progress=False, **options) -> x`` (the state at grid[-1]) living in :mod:`polydiff.core.solvers`, registered with
``@register_solver("<name>")``. It loops over the grid with its math in the open (k-diffusion's shape), keeps
any multistep history in local variables, accepts per-sample time (grid of shape (N + 1, batch)) and makes no
host syncs inside the loop: all schedule coefficients come from ``grid_coefficients`` before the loop. Every
solver takes ``generator`` (a ``torch.Generator`` for the noise that stochastic solvers draw; deterministic ones
ignore it), so one call works for all of them.

A solver registered with ``sampler=False`` (``ddim_inversion``: data to noise) is left out of ``list_solvers()``
and refused by ``sample``; it stays callable directly.

Set-up cost: a grid's schedule coefficients (``check_inputs``) and a solver's per-step tables
(``solver_tables``) are cached, keyed on the schedule object (schedules are immutable), the grid's values, x's
dtype, device and rank, and the solver's options; repeated sampling on the same grid pays only for the loop. A
grid that requires grad (``fit_grid`` differentiates through the solvers) is never cached.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import pkgutil
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from . import progress as _progress
from .denoiser import Denoiser, append_dims
from .grids import check_grid, make_grid
from .schedules import NoiseSchedule

__all__ = ["sample", "register_solver", "list_solvers", "get_solver", "grid_coefficients", "GridCoefficients",
           "check_inputs", "solver_tables", "clear_cache", "step_range", "noise_like"]

_SOLVERS: dict[str, Callable[..., Tensor]] = {}


def register_solver(name: str, *, sampler: bool = True):
    """Decorator adding a solver function to the registry under ``name``.

    sampler: False for a solver that does not map prior noise to data (an inversion); ``sample`` refuses it and
    ``list_solvers()`` leaves it out unless asked.
    """

    def add(fn):
        if name in _SOLVERS and _SOLVERS[name] is not fn:
            raise ValueError(f"solver name {name!r} registered twice")
        _SOLVERS[name] = fn
        fn.solver_name = name
        fn.is_sampler = sampler
        fn.options = tuple(key for key, parameter in inspect.signature(fn).parameters.items()
                           if parameter.kind == parameter.KEYWORD_ONLY)
        return fn

    return add


_DISCOVERED = False


def _discover() -> None:
    """Import every module of polydiff.core.solvers once, which registers their solvers."""
    global _DISCOVERED
    if not _DISCOVERED:
        package = importlib.import_module(f"{__package__}.solvers")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        _DISCOVERED = True


def list_solvers(*, samplers_only: bool = True) -> dict[str, Callable[..., Tensor]]:
    """Name -> function of every registered sampler: the names ``sample(solver=...)`` accepts.
    ``samplers_only=False`` adds the non-samplers (``ddim_inversion``)."""
    _discover()
    return {name: fn for name, fn in sorted(_SOLVERS.items()) if fn.is_sampler or not samplers_only}


def get_solver(name: str) -> Callable[..., Tensor]:
    """The sampler registered as ``name``; ValueError naming ``solver`` for an unknown name or a non-sampler."""
    _discover()
    fn = _SOLVERS.get(name) if isinstance(name, str) else None
    if fn is None:
        raise ValueError(f"solver: unknown solver {name!r}; choices: {list(list_solvers())}")
    if not fn.is_sampler:
        raise ValueError(f"solver: {name!r} is not a sampler (it maps data to noise, not noise to data); call "
                         f"{fn.__module__}.{fn.__name__} directly; samplers: {list(list_solvers())}")
    return fn


def check_options(fn: Callable[..., Tensor], options: dict) -> None:
    """ValueError naming any option that the registered solver ``fn`` does not take (before any work is done)."""
    unknown = [name for name in options if name not in fn.options]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not an option of solver {fn.solver_name!r}; its options: "
                         f"{list(fn.options)}")


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


#: cached grids: key -> (schedule, grid (float64 on x's device), coefficients); least recently used dropped
_GRIDS: OrderedDict = OrderedDict()
#: cached solver tables: (id(grid), key, dtype, device, ndim) -> (grid, tables)
_TABLES: OrderedDict = OrderedDict()
_CACHE_SIZE = 256


def clear_cache() -> None:
    """Forget every cached grid coefficient and solver table (they are rebuilt on the next call)."""
    _GRIDS.clear()
    _TABLES.clear()


def _remember(cache: OrderedDict, key, value) -> None:
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def _grid_key(schedule: NoiseSchedule, grid: Tensor, device: torch.device):
    """A key naming the grid by value: (schedule identity, dtype, shape, bytes, device). None for a grid that
    requires grad or lives on an accelerator (reading its values would be a host sync; it is then not cached)."""
    if grid.requires_grad or grid.device.type != "cpu":
        return None
    return (id(schedule), grid.dtype, tuple(grid.shape), grid.contiguous().numpy().tobytes(), device)


def check_inputs(denoiser: Denoiser, x: Tensor, grid) -> tuple[Tensor, GridCoefficients]:
    """Validate (denoiser, x, grid) once before a solver's loop; return the grid on x's device and its
    coefficients. Raises ValueError naming the argument for NaN/inf in x, a bad grid, or a batch mismatch.

    A grid seen before (same schedule object, same values, same device) returns its cached float64 tensor and
    coefficients: validation of its values and the schedule evaluations are skipped, and because the same tensor
    comes back, the Denoiser's memo of model times keyed on it hits as well."""
    _check_denoiser(denoiser)
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise ValueError("x: expected a floating-point tensor of shape (batch, ...)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x: contains NaN or inf")
    schedule = denoiser.schedule
    key = _grid_key(schedule, grid, x.device) if isinstance(grid, Tensor) else None
    entry = _GRIDS.get(key) if key is not None else None
    if entry is not None and entry[0] is schedule:
        _GRIDS.move_to_end(key)
        grid, coefficients = entry[1], entry[2]
        if grid.ndim == 2 and grid.shape[1] != x.shape[0]:
            raise ValueError(f"grid: per-sample grid has {grid.shape[1]} columns but x has batch {x.shape[0]}")
        return grid, coefficients
    grid = check_grid(torch.as_tensor(grid, dtype=torch.float64) if not isinstance(grid, Tensor) else grid,
                      schedule=schedule)
    if grid.ndim == 2 and grid.shape[1] != x.shape[0]:
        raise ValueError(f"grid: per-sample grid has {grid.shape[1]} columns but x has batch {x.shape[0]}")
    grid = grid.to(device=x.device, dtype=torch.float64)
    if key is not None:  # a private copy: the caller may later write into its own grid
        grid = grid.clone()
    coefficients = grid_coefficients(schedule, grid)
    if not grid.requires_grad:
        denoiser.remember(grid, x, (coefficients.alpha, coefficients.sigma))
    if key is not None and not coefficients.alpha.requires_grad:
        # the entry holds the schedule itself, so its id cannot be reused while the entry lives
        _remember(_GRIDS, key, (schedule, grid, coefficients))
    return grid, coefficients


def solver_tables(coefficients: GridCoefficients, x: Tensor, key: tuple, build: Callable[[], tuple]) -> tuple:
    """``build()`` (a solver's per-step coefficient tables for states like x), cached for this grid.

    key: the solver's name and every option the tables depend on. The cache is keyed on the grid tensor that
    ``check_inputs`` returned (cached grids come back as the same tensor), x's dtype, device and rank; tables
    of a grid that requires grad, or over a schedule with learnable parameters, are rebuilt on every call.
    The tables are shared between calls: solvers read them and never write into them."""
    t = coefficients.t
    if t.requires_grad or coefficients.alpha.requires_grad or coefficients.log_snr.requires_grad:
        return build()
    full_key = (id(t), key, x.dtype, x.device, x.ndim)
    entry = _TABLES.get(full_key)
    if entry is not None and entry[0] is t:
        _TABLES.move_to_end(full_key)
        return entry[1]
    tables = build()
    _remember(_TABLES, full_key, (t, tables))
    return tables


def _check_denoiser(denoiser) -> None:
    if not isinstance(denoiser, Denoiser):
        raise ValueError(f"denoiser: expected a polydiff.core.Denoiser, got {type(denoiser).__name__}; wrap the "
                         "network with its schedule: Denoiser(model, schedule, prediction='eps')")


def step_range(num_steps: int, progress: bool, desc: str = "sampling"):
    """range(num_steps), wrapped in a tqdm bar when ``progress`` and stderr is a terminal
    (:mod:`polydiff.core.progress`: no bar floods a log)."""
    if not progress or not _progress.on_terminal():
        return range(num_steps)
    return _progress.progress_bar(range(num_steps), desc=desc, leave=False)


def noise_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like x, drawn on the generator's device and moved to x's (a CPU generator may
    drive a CUDA run, as in ``discrete._validation.uniform``; torch.randn alone refuses the pair)."""
    if generator is None or generator.device == x.device:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def coef(value: Tensor, x: Tensor) -> Tensor:
    """A per-step coefficient (scalar or (batch,)) cast to x's dtype and shaped to broadcast over x."""
    return append_dims(value.to(x.dtype), x.ndim)


def sample(denoiser: Denoiser, noise: Tensor, solver: str = "dpmpp_2m", steps: int = 10, grid="logsnr", *,
           final_zero: bool = False, t_start: float | None = None, t_end: float | None = None,
           cond: dict | None = None, track_grad: bool = False, **options) -> Tensor:
    """Sample from a diffusion model: the one entry point over every solver and grid.

    Args:
        denoiser: a :class:`~polydiff.core.denoiser.Denoiser` wrapping the model and its schedule.
        noise: standard normal noise (batch, ...); it is scaled to the prior at t_start,
            x_T = noise * sqrt(alpha^2 + sigma^2) (1 for VP schedules, about sigma_max for VE/EDM).
        solver: a name from ``polydiff.core.list_solvers()``.
        steps: number of solver steps (grid intervals); NFE depends on the solver's order.
        grid: a kind from ``polydiff.core.grids.GRIDS``, or an array of decreasing times in [0, t_max] (then
            ``steps`` must equal its length minus one) such as the output of ``polydiff.core.fitted_grid.fit_grid``.
        final_zero: end the grid at t = 0, returning the denoised prediction at the last step.
        t_start, t_end: the grid's ends for a named ``grid`` kind (default: the schedule's t_max, t_min).
        cond: keyword arguments passed to the model on every call.
        track_grad: run the solver loop with autograd on, to differentiate through sampling (e.g. a reward
            fine-tuning loss). Default off: the loop runs under ``torch.no_grad()``, so the samples never hold the
            graph of every model call, even when the network's weights require grad. Steps that need a gradient
            of their own (DPS, the bridges' schedule derivatives) turn it on locally, as they do anyway.
        options: solver options (eta, order, generator, callback, progress, ...); every solver takes
            ``generator``, a ``torch.Generator`` that makes the stochastic ones reproducible.
    Returns:
        samples (batch, ...), same dtype as noise.

    Every argument is checked before the first model call (ValueError naming it). The samples are checked once
    after the solver's loop: NaN or inf there is a ValueError that says whether the model itself returned them.
    """
    _check_denoiser(denoiser)
    fn = get_solver(solver)
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.ndim < 1:
        raise ValueError("noise: expected a floating-point torch tensor of shape (batch, ...)")
    if cond is not None and not isinstance(cond, dict):
        raise ValueError(f"cond: expected a dict of model keyword arguments or None, got {type(cond).__name__}")
    check_options(fn, options)
    if not bool(torch.isfinite(noise).all()):
        raise ValueError("noise: contains NaN or inf")
    schedule = denoiser.schedule
    times = make_grid(schedule, steps, grid, t_start=t_start, t_end=t_end, final_zero=final_zero,
                      device=noise.device)
    if not isinstance(grid, str):
        if times.shape[0] != steps + 1:
            raise ValueError(f"steps: {steps} does not match the explicit grid of {times.shape[0]} times")
        _check_explicit_ends(times, t_start, t_end, final_zero)
    if times.ndim == 2 and times.shape[1] != noise.shape[0]:
        raise ValueError(f"grid: per-sample grid has {times.shape[1]} columns but noise has batch {noise.shape[0]}")
    if schedule.variance_preserving:
        x = noise  # the prior is N(0, I); solvers never write into their input
    else:
        alpha, sigma = schedule.alpha_sigma(times[0])
        x = noise * append_dims(torch.sqrt(alpha**2 + sigma**2), noise.ndim).to(noise.dtype)
    if not isinstance(track_grad, bool):
        raise ValueError(f"track_grad: expected True or False, got {track_grad!r}")
    with torch.set_grad_enabled(track_grad and torch.is_grad_enabled()):
        out = fn(denoiser, x, times, cond=cond, **options)
    samples = out[0] if isinstance(out, tuple) else out
    if not bool(torch.isfinite(samples).all()):  # the one check of the result, after the loop
        _explain_non_finite(denoiser, fn.solver_name, x, times, cond or {})
    return out


def _check_explicit_ends(times: Tensor, t_start, t_end, final_zero: bool) -> None:
    """An explicit grid fixes its own ends: t_start / t_end / final_zero may restate them, not change them."""
    for name, value, end in (("t_start", t_start, times[0]), ("t_end", t_end, times[-1]),
                             ("final_zero", 0.0 if final_zero else None, times[-1])):
        if value is not None and not bool((end == float(value)).all()):
            raise ValueError(f"{name}: the explicit grid {'ends' if name != 't_start' else 'starts'} at "
                             f"{end.tolist()}, not at {float(value)}; an explicit grid's first and last times are "
                             "its ends (t_start, t_end and final_zero shape the named grid kinds)")


def _explain_non_finite(denoiser: Denoiser, solver: str, x: Tensor, times: Tensor, cond: dict) -> None:
    """Raise the ValueError for non-finite samples, after asking the model once more at the first step whether
    its own output is the cause (only on this failure path; the half of the prediction that the model outputs
    is checked, not the one derived from it, which may overflow where alpha or sigma is tiny)."""
    with torch.no_grad():
        prediction = denoiser.predict(x, times[0], **cond)
        output = prediction.eps if denoiser.prediction in ("eps", "score") else prediction.x0
        model_is_finite = bool(torch.isfinite(output).all())
    if not model_is_finite:
        raise ValueError(f"model: returned NaN or inf (at the first step, t = {times[0].tolist()}); the samples "
                         "would be NaN. Check the network's weights and inputs (and the Denoiser's prediction / "
                         "guidance settings)")
    raise ValueError(f"model: the samples of solver {solver!r} contain NaN or inf although the model's first "
                     "output is finite: the model returned NaN or inf at a later step, or the computation "
                     f"overflowed {x.dtype} (try float32 / float64 noise or another grid)")
