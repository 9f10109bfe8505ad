"""Time grids: the N + 1 decreasing times a solver visits, from t_max (noise) down to the end time.

``make_grid(schedule, steps, kind)`` returns a float64 tensor (steps + 1,) ((steps + 1, batch) for an explicit
per-sample array). The end is ``schedule.t_min`` unless
``final_zero=True``, which ends at t = 0 (sigma = 0) so the last step returns the denoised prediction.

Kinds:
    "uniform"    linear in t (DPM-Solver's "time_uniform")
    "logsnr"     uniform in lambda = log(alpha / sigma) (DPM-Solver's "logSNR")
    "quadratic"  quadratic in t (DPM-Solver's "time_quadratic", DDIM's "quad")
    "karras"     EDM's rho-spacing in sigma / alpha (Karras et al., 2022, eq. 5), ``rho=7``
    "leading", "trailing", "linspace"  diffusers' integer timestep spacings for a discrete schedule
                 (their "Common Diffusion Noise Schedules and Sample Steps are Flawed" table 2 names)
    an array     explicit times (N + 1,) or per-sample (N + 1, batch), strictly decreasing, in [0, t_max]
The fitted grid lives in :mod:`polydiff.core.fitted_grid`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from .schedules import DiscreteSchedule, NoiseSchedule, check_real

GRIDS = ("uniform", "logsnr", "quadratic", "karras", "leading", "trailing", "linspace")

__all__ = ["GRIDS", "make_grid", "check_grid"]


#: relative slack on a schedule's t_max for grid times (rounding in a user's own time arithmetic)
_T_MAX_SLACK = 1e-9


def check_grid(grid: Tensor, name: str = "grid", schedule: NoiseSchedule | None = None) -> Tensor:
    """Validate a grid: 1-D (or (N + 1, batch) per-sample) finite, non-negative, strictly decreasing times, and
    with ``schedule`` none above its ``t_max`` (past it the schedule's alpha, sigma are not defined or the model
    was never trained; e.g. diffusers' integer timesteps 999..0 are not times in [0, 1])."""
    if not isinstance(grid, Tensor):
        try:
            grid = torch.as_tensor(np.asarray(grid, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: expected an array of times, got {type(grid).__name__} ({error})") from error
    if not grid.is_floating_point() and grid.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name}: expected real times, got dtype {grid.dtype}")
    if grid.ndim not in (1, 2) or grid.shape[0] < 2:
        raise ValueError(f"{name}: expected shape (steps + 1,) or (steps + 1, batch) with steps >= 1, "
                         f"got {tuple(grid.shape)}")
    finite, non_negative = torch.isfinite(grid), grid >= 0
    decreasing = grid[1:] < grid[:-1]
    valid = finite.all() & non_negative.all() & decreasing.all()
    t_max = None if schedule is None else schedule.t_max
    if t_max is not None:
        valid = valid & (grid <= t_max * (1 + _T_MAX_SLACK)).all()
    if bool(valid):  # one host sync on the happy path
        return grid
    if not bool(finite.all()):
        raise ValueError(f"{name}: contains NaN or inf")
    if not bool(non_negative.all()):
        raise ValueError(f"{name}: times must be >= 0")
    if not bool(decreasing.all()):
        raise ValueError(f"{name}: times must be strictly decreasing (from noise to data)")
    hint = ""
    if isinstance(schedule, DiscreteSchedule):
        hint = (f"; a training index k (diffusers' integer timestep) is the time (k + 1) / "
                f"{schedule.num_train_timesteps}")
    raise ValueError(f"{name}: times must lie in [0, t_max = {t_max}] of the {type(schedule).__name__}, got a "
                     f"largest time of {float(grid.max())}{hint}")


def make_grid(schedule: NoiseSchedule, steps: int, kind="logsnr", *, t_start: float | None = None,
              t_end: float | None = None, final_zero: bool = False, rho: float = 7.0,
              device=None) -> Tensor:
    """A decreasing time grid of ``steps + 1`` points for ``schedule`` (float64, on ``device``).

    t_start / t_end default to schedule.t_max / schedule.t_min; t_start may not exceed t_max. With ``final_zero``
    one more point t = 0 is *not* added: the last point itself is replaced by 0, so the step count stays ``steps``.
    An explicit array ``kind`` is validated (times in [0, t_max], strictly decreasing) and returned as it is:
    t_start, t_end and final_zero apply to the named kinds only.
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    if not isinstance(kind, str):
        grid = kind.detach() if isinstance(kind, Tensor) else kind
        return check_grid(grid, "grid", schedule).to(device=device, dtype=torch.float64)
    t_start = schedule.t_max if t_start is None else check_real("t_start", t_start)
    t_end = schedule.t_min if t_end is None else check_real("t_end", t_end)
    key = (id(schedule), int(steps), kind, t_start, t_end, bool(final_zero), rho, str(device))
    entry = _MADE.get(key)
    if entry is not None and entry[0] is schedule:
        return entry[1].clone()  # a copy: the caller may write into its grid
    grid = _make_named(schedule, int(steps), kind, t_start, t_end, final_zero, rho, device)
    _MADE[key] = (schedule, grid)  # the entry holds the schedule, so its id is not reused while cached
    if len(_MADE) > 256:
        _MADE.pop(next(iter(_MADE)))
    return grid.clone()


#: named grids already made: (schedule id, steps, kind, ends, final_zero, rho, device) -> (schedule, grid)
_MADE: dict = {}


def _make_named(schedule: NoiseSchedule, steps: int, kind: str, t_start: float, t_end: float, final_zero: bool,
                rho: float, device) -> Tensor:
    if t_start > schedule.t_max * (1 + _T_MAX_SLACK):
        raise ValueError(f"t_start: {t_start} lies beyond the {type(schedule).__name__}'s t_max = {schedule.t_max}; "
                         f"expected t_end < t_start <= t_max")
    if not 0 <= t_end < t_start:
        raise ValueError(f"t_start, t_end: expected 0 <= t_end < t_start, got {t_start}, {t_end}")
    f64 = dict(dtype=torch.float64)
    if kind == "uniform":
        grid = torch.linspace(t_start, t_end, steps + 1, **f64)
    elif kind == "logsnr":
        lam_start, lam_end = _log_snr_ends(schedule, t_start, max(t_end, 1e-12))
        grid = schedule.t_from_log_snr(torch.linspace(lam_start, lam_end, steps + 1, **f64))
    elif kind == "quadratic":
        grid = torch.linspace(t_start**0.5, t_end**0.5, steps + 1, **f64) ** 2
    elif kind == "karras":
        s_max, s_min = schedule.sigma_tilde(torch.tensor([t_start, max(t_end, 1e-12)], **f64)).tolist()
        ramp = torch.linspace(0, 1, steps + 1, **f64)
        sigmas = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        grid = schedule.t_from_sigma_tilde(sigmas)
    elif kind in ("leading", "trailing", "linspace"):
        grid = _diffusers_spacing(schedule, steps, kind)
    else:
        raise ValueError(f"grid: unknown kind {kind!r}; choices: {list(GRIDS)} or an array of times")
    grid = grid.clone()
    grid[0], grid[-1] = (grid[0], grid[-1]) if kind in ("leading", "trailing", "linspace") else (t_start, t_end)
    if final_zero:
        grid[-1] = 0.0
    return check_grid(grid).to(device)


@functools.lru_cache(maxsize=64)
def _log_snr_ends(schedule: NoiseSchedule, t_start: float, t_end: float) -> tuple[float, float]:
    """lambda at a grid's two ends, as floats (schedules are immutable, so this is cached per schedule)."""
    lam = schedule.log_snr(torch.tensor([t_start, t_end], dtype=torch.float64))
    return float(lam[0]), float(lam[1])


def _diffusers_spacing(schedule: NoiseSchedule, steps: int, kind: str) -> Tensor:
    """diffusers' integer timesteps for a discrete schedule, as continuous times (index + 1) / N, ending at the
    first training step (the "previous" time of the last step, which diffusers takes as alpha-bar[0])."""
    if not isinstance(schedule, DiscreteSchedule):
        raise ValueError(f"grid: {kind!r} spacing needs a DiscreteSchedule, got {type(schedule).__name__}")
    n = schedule.num_train_timesteps
    if steps > n:
        raise ValueError(f"steps: {steps} exceeds the schedule's {n} training steps")
    if kind == "leading":
        idx = (np.arange(0, steps) * (n // steps))[::-1]
    elif kind == "trailing":
        idx = np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1
    else:
        idx = np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    times = np.concatenate([(idx + 1) / n, [1 / n if idx[-1] > 0 else 0.0]])
    if times[-1] >= times[-2]:
        times[-1] = 0.0
    return torch.as_tensor(times, dtype=torch.float64)
