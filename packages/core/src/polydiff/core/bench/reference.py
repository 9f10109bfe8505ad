"""The exact answer the benchmark measures every solver against: a float64, tightly toleranced solve of the
probability-flow ODE of the Gaussian mixture from the shared x_T.

For a VP schedule (alpha^2 + sigma^2 = 1) the PF-ODE (Song et al., 2021, eq. 13) becomes, in the rescaled state
y = x / alpha and the noise level s = sigma / alpha = exp(-lambda) (Lu et al., 2022, "DPM-Solver", eq. 3.5;
Karras et al., 2022, eq. 4),
    dy / ds = eps(alpha y, alpha, sigma),   alpha = 1 / sqrt(1 + s^2),  sigma = s alpha,
which depends on the schedule only through its end points. We integrate it in u = log s (dy/du = s eps), where
the step size the solver needs is roughly uniform from pure noise down to t_min, and, for the ``t = 0`` end,
continue in s itself from s(t_min) to s = 0 where u would run to -inf. scipy's DOP853 (Hairer, Norsett & Wanner,
order 8 with dense error control) solves the whole batch as one system, so the error control is the RMS over the
batch; ``chunk`` splits the batch into independent systems.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from ..schedules import NoiseSchedule
from .gmm import GaussianMixture

__all__ = ["pf_ode_reference"]


def _check_vp(schedule: NoiseSchedule, times: list[float]) -> None:
    t = torch.tensor([v for v in times if v > 0], dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t)
    if not torch.allclose(alpha**2 + sigma**2, torch.ones_like(alpha), atol=1e-9):
        raise ValueError("schedule: the reference solver expects a variance-preserving schedule "
                         "(alpha^2 + sigma^2 = 1)")


def pf_ode_reference(mixture: GaussianMixture, x_start: Tensor, schedule: NoiseSchedule, t_start: float,
                     t_ends: tuple[float, ...], *, rtol: float = 1e-10, atol: float = 1e-10,
                     chunk: int | None = None) -> dict[float, Tensor]:
    """Solve the PF-ODE from x_start at t_start to every time in ``t_ends`` (each in [0, t_start)).

    x_start: (batch, dim). Returns {t_end: (batch, dim) float64}. ``rtol``/``atol`` apply to y = x / alpha.
    """
    if x_start.ndim != 2 or x_start.shape[1] != mixture.dim:
        raise ValueError(f"x_start: expected (batch, {mixture.dim}), got {tuple(x_start.shape)}")
    if not t_ends or any(not 0 <= t < t_start for t in t_ends):
        raise ValueError(f"t_ends: expected times in [0, {t_start}), got {t_ends}")
    _check_vp(schedule, [t_start, *t_ends])
    x_start = x_start.detach().to(torch.float64).cpu()
    chunk = chunk or x_start.shape[0]
    parts = [_solve_chunk(mixture, x_start[i:i + chunk], schedule, t_start, t_ends, rtol, atol)
             for i in range(0, x_start.shape[0], chunk)]
    return {t: torch.cat([p[t] for p in parts]) for t in t_ends}


def _solve_chunk(mixture, x_start, schedule, t_start, t_ends, rtol, atol) -> dict[float, Tensor]:
    shape = x_start.shape

    def eps_at(y: np.ndarray, s: float) -> np.ndarray:
        alpha = 1.0 / math.sqrt(1.0 + s * s)
        x = torch.from_numpy(y).reshape(shape) * alpha
        return mixture.eps(x, alpha, s * alpha).reshape(-1).numpy()

    log_s = lambda t: float(-schedule.log_snr(torch.tensor(t, dtype=torch.float64)))  # noqa: E731
    alpha_of = lambda t: float(schedule.alpha(torch.tensor(t, dtype=torch.float64)))  # noqa: E731
    y = (x_start / alpha_of(t_start)).reshape(-1).numpy()
    u = log_s(t_start)
    results = {}
    positive = sorted((t for t in t_ends if t > 0), reverse=True)
    for t_end in positive:
        u_end = log_s(t_end)
        solution = solve_ivp(lambda uu, yy: math.exp(uu) * eps_at(yy, math.exp(uu)), (u, u_end), y,
                             method="DOP853", rtol=rtol, atol=atol)
        if not solution.success:
            raise RuntimeError(f"reference solve to t={t_end} failed: {solution.message}")
        y, u = solution.y[:, -1], u_end
        results[t_end] = torch.from_numpy(y.copy()).reshape(shape) * alpha_of(t_end)
    if 0.0 in t_ends:
        # dy/ds is smooth at s = 0 (eps = O(s) there for a mixture with non-degenerate components)
        solution = solve_ivp(lambda s, yy: eps_at(yy, s), (math.exp(u), 0.0), y, method="DOP853",
                             rtol=rtol, atol=atol)
        if not solution.success:
            raise RuntimeError(f"reference solve to t=0 failed: {solution.message}")
        results[0.0] = torch.from_numpy(solution.y[:, -1].copy()).reshape(shape)
    return results
