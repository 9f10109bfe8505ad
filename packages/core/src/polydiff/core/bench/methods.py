"""The polydiff rows: every registered solver, at a target NFE, on the grids that suit it.

Steps are chosen so that the model-call count matches the target: the NFE of ``steps`` is *measured* (a probe on
four samples counts ``Denoiser.nfe``) and the largest step count whose NFE does not exceed the target is used,
so a second-order singlestep solver takes NFE / 2 steps, a third-order one NFE / 3 (9 NFE at a target of 10),
and the row reports the NFE it actually used. Adaptive solvers (those with a tolerance option) ignore the inner
grid points; their tolerance is swept instead, keeping the tightest one whose NFE on the calibration batch stays
within the target.

Stochastic solvers (found by running twice with different noise) have no per-sample reference, so their
``error`` is null; every row also reports ``sw2``, the sliced 2-Wasserstein distance between its samples and
exact samples of the data marginal at its end time, which ranks stochastic and deterministic rows alike.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..benchkit import median_time
from ..denoiser import Denoiser
from ..grids import make_grid
from ..metrics import sliced_wasserstein

__all__ = ["Problem", "solver_variants", "is_adaptive", "is_stochastic", "evaluations_per_call", "steps_for_nfe", "evaluate",
           "per_step_overhead", "NOT_SAMPLERS"]

# registered functions that are not noise-to-data samplers (they run data -> noise)
NOT_SAMPLERS = ("ddim_inversion",)

# option sets worth a row of their own (applied only where the solver has the parameter)
_VARIANTS = {
    "unipc": [{"variant": "bh1"}, {"variant": "bh2"}, {"variant": "bh1", "order": 3}, {"variant": "bh2", "order": 3}],
    "dpm_solver_adaptive": [{"order": 2}, {"order": 3}],
}
_TOLERANCES = {"rtol": "atol", "eps_rel": "eps_abs"}  # relative tolerance -> its absolute partner


@dataclass
class Problem:
    """Everything a row is computed from. x_start: (batch, dim) float64 noise at t = 1; references / exact:
    {"t_min" | "zero": (batch, dim)} — the PF-ODE solution from x_start and independent exact samples of the
    marginal at that end time; calibration / calibration_references: a separate batch for fitting grids;
    evaluated: a one-element counter of the samples the model has been called on (``counting_model``)."""

    denoiser: Denoiser
    x_start: Tensor
    references: dict[str, Tensor]
    exact: dict[str, Tensor]
    calibration: Tensor
    calibration_references: dict[str, Tensor]
    evaluated: list[int] | None = None
    dtype: torch.dtype = torch.float32
    sw_projections: int = 256
    seed: int = 0


def solver_variants(name: str, fn: Callable) -> list[tuple[str, dict]]:
    """(label suffix, options) for each row family of solver ``name``."""
    parameters = inspect.signature(fn).parameters
    out = []
    for options in _VARIANTS.get(name, [{}]):
        if all(key in parameters for key in options):
            label = " ".join(str(v) if k == "variant" else f"{k}{v}" for k, v in options.items())
            out.append((label, options))
    return out or [("", {})]


def is_adaptive(fn: Callable) -> str | None:
    """The relative-tolerance parameter name of an adaptive solver, else None."""
    parameters = inspect.signature(fn).parameters
    return next((name for name in _TOLERANCES if name in parameters), None)


def _call(fn, denoiser, x, grid, options, seed: int):
    parameters = inspect.signature(fn).parameters
    options = dict(options)
    if "generator" in parameters:
        options["generator"] = torch.Generator(device=x.device).manual_seed(seed)
    torch.manual_seed(seed)  # for solvers drawing from the global generator
    denoiser.nfe = 0
    with torch.no_grad():
        out = fn(denoiser, x.clone(), grid, **options)
    return out[0] if isinstance(out, tuple) else out, denoiser.nfe


def evaluations_per_call(fn, problem: Problem, options: dict) -> float:
    """Model evaluations per sample and per batched call (1 for every solver but parallel-in-time ones)."""
    x = problem.x_start[:4].to(problem.dtype)
    if problem.evaluated is None:
        return 1.0
    problem.evaluated[0] = 0
    _, calls = _call(fn, problem.denoiser, x, make_grid(problem.denoiser.schedule, 8, "logsnr"), options,
                     problem.seed)
    return problem.evaluated[0] / x.shape[0] / max(calls, 1)


def is_stochastic(fn, problem: Problem, options: dict) -> bool:
    """True when two runs with different noise seeds give different samples."""
    x = problem.x_start[:4].to(problem.dtype)
    grid = make_grid(problem.denoiser.schedule, 4, "logsnr")
    first, _ = _call(fn, problem.denoiser, x, grid, options, seed=1)
    second, _ = _call(fn, problem.denoiser, x, grid, options, seed=2)
    return not torch.equal(first, second)


def steps_for_nfe(fn, problem: Problem, target: int, grid_kind, options: dict, final_zero: bool = False
                  ) -> tuple[int, dict] | None:
    """(steps, options) whose NFE is the largest not exceeding ``target``; None when even the smallest exceeds it.

    For adaptive solvers steps is 1 (only the end points matter) and the options carry the tolerance."""
    schedule = problem.denoiser.schedule
    tolerance = is_adaptive(fn)
    if tolerance is not None:
        return _tolerance_for_nfe(fn, problem, target, options, tolerance, final_zero)
    # probe on the calibration batch: an iterative solver's call count (ParaDiGMS) depends on the batch
    x = problem.calibration.to(problem.dtype)

    def nfe(steps: int) -> int:
        kind = grid_kind if isinstance(grid_kind, str) else "logsnr"
        return _call(fn, problem.denoiser, x, make_grid(schedule, steps, kind, final_zero=final_zero), options,
                     problem.seed)[1]

    per_step = nfe(target) / target
    steps = max(1, int(target // per_step))
    while steps > 1 and nfe(steps) > target:
        steps -= 1
    while nfe(steps + 1) <= target:
        steps += 1
    return (steps, dict(options)) if nfe(steps) <= target else None


def _tolerance_for_nfe(fn, problem, target, options, tolerance, final_zero):
    defaults = inspect.signature(fn).parameters
    absolute = _TOLERANCES[tolerance]
    ratio = defaults[absolute].default / defaults[tolerance].default
    x = problem.calibration.to(problem.dtype)
    grid = make_grid(problem.denoiser.schedule, 1, "uniform", final_zero=final_zero)
    best = None
    for exponent in torch.linspace(2, -4, 25).tolist():  # tolerances 100 .. 1e-4, coarse to fine
        rtol = 10.0**exponent
        trial = {**options, tolerance: rtol, absolute: rtol * ratio}
        _, nfe = _call(fn, problem.denoiser, x, grid, trial, problem.seed)
        if nfe > target:
            break
        best = (1, trial)
    return best


def counting_model(model: Callable, counter: list[int]) -> Callable:
    """``model`` that adds the number of samples of every call to ``counter[0]``: a solver that evaluates
    several times per batched call (ParaDiGMS' window) shows more evaluations than calls."""

    def counted(x, t_model, **cond):
        counter[0] += x.shape[0]
        return model(x, t_model, **cond)

    return counted


def evaluate(fn, problem: Problem, grid: Tensor, options: dict, end: str, stochastic: bool
             ) -> tuple[float | None, float | None, int, float | None]:
    """(error, sw2, nfe, model evaluations per sample) of one run from the shared x_start; error is the mean L2
    distance to the reference (None for a stochastic solver); NaN output gives (nan, nan, ...)."""
    x = problem.x_start.to(problem.dtype)
    if problem.evaluated is not None:
        problem.evaluated[0] = 0
    out, nfe = _call(fn, problem.denoiser, x, grid, options, problem.seed)
    evaluations = None if problem.evaluated is None else problem.evaluated[0] / x.shape[0]
    return score(out, problem, end, stochastic) + (nfe, evaluations)


def score(out: Tensor, problem: Problem, end: str, stochastic: bool) -> tuple[float | None, float | None]:
    out = out.to(torch.float64)
    if not bool(torch.isfinite(out).all()):
        return math.nan, math.nan
    error = None if stochastic else float((out - problem.references[end]).norm(dim=1).mean())
    generator = torch.Generator().manual_seed(problem.seed + 7)
    sw2 = sliced_wasserstein(out, problem.exact[end], problem.sw_projections, generator=generator)
    return error, sw2


def per_step_overhead(fn, schedule, grid_kind, steps: int, batch: int, dim: int, options: dict, repeats: int,
                      final_zero: bool = False, dtype=torch.float32) -> float:
    """Microseconds per solver step with a zero-cost model (one returning a preallocated tensor): the time of
    ``make_grid`` + the solver call, divided by its steps (by its model calls for an adaptive solver)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, dim, generator=generator, dtype=dtype)
    outputs = {}  # one preallocated output per input shape (ParaDiGMS calls the model on a window of times)

    def zero_cost_model(x_in, t_in):
        output = outputs.get(x_in.shape)
        if output is None:
            output = outputs[x_in.shape] = 0.1 * torch.randn(x_in.shape, generator=generator, dtype=dtype)
        return output

    denoiser = Denoiser(zero_cost_model, schedule)
    parameters = inspect.signature(fn).parameters
    options = dict(options)

    def run():
        if "generator" in parameters:
            options["generator"] = torch.Generator().manual_seed(0)
        denoiser.nfe = 0
        grid = make_grid(schedule, steps, grid_kind, final_zero=final_zero)
        with torch.no_grad():
            fn(denoiser, x, grid, **options)

    seconds = median_time(run, repeats, warmup=1)
    count = denoiser.nfe if is_adaptive(fn) else steps
    return 1e6 * seconds / max(count, 1)
