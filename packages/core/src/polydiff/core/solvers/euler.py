"""Euler, Heun and Euler-ancestral samplers in the rescaled (EDM) variables.

Karras et al., 2022, "Elucidating the Design Space of Diffusion-Based Generative Models" (EDM): the solvers work
on the rescaled state y = x / alpha, whose noise level is sigma_tilde = sigma / alpha = exp(-lambda). In these
variables every schedule (VP, VE, EDM, flow, discrete) has the same probability-flow ODE (their eq. 4 with
s(t) = 1, sigma(t) = sigma_tilde):

    dy / d sigma_tilde = (y - x0(y)) / sigma_tilde = eps(y),

so a step is y_next = y + (sigma_tilde_next - sigma_tilde) eps, and the state is mapped back as x = alpha y.
The network is always queried at the unscaled x = alpha(t) y and time t = t(sigma_tilde).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..sampling import check_inputs, noise_like, register_solver, step_range

__all__ = ["sample_euler", "sample_heun", "sample_euler_ancestral"]


def table(values: Tensor, x: Tensor) -> Tensor:
    """A coefficient table (N,) or (N, batch), cast to x's dtype and shaped (N, 1 | batch, 1, ...) so that
    ``table[i]`` broadcasts over x: (batch, ...). Built once before a loop."""
    values = values.to(x.dtype)
    per_sample = values.ndim == 2
    return values.reshape(values.shape[:1] + (values.shape[1] if per_sample else 1,) + (1,) * (x.ndim - 1))


def _check_churn(s_churn: float, s_tmin: float, s_tmax: float, s_noise: float) -> None:
    if not s_churn >= 0:
        raise ValueError(f"s_churn: expected s_churn >= 0, got {s_churn}")
    if not 0 <= s_tmin <= s_tmax:
        raise ValueError(f"s_tmin, s_tmax: expected 0 <= s_tmin <= s_tmax, got {s_tmin}, {s_tmax}")
    if not s_noise >= 0:
        raise ValueError(f"s_noise: expected s_noise >= 0, got {s_noise}")


def _churned_times(schedule, t: Tensor, sigma_tilde: Tensor, s_churn, s_tmin, s_tmax):
    """EDM Algorithm 2, lines 4-5: gamma_i = min(S_churn / N, sqrt(2) - 1) on steps whose sigma_tilde lies in
    [S_tmin, S_tmax], sigma_hat = (1 + gamma) sigma_tilde. Returns (t_hat, alpha_hat, sigma_tilde_hat), each
    (N,) or (N, batch), for the start of every step (float64)."""
    num_steps = t.shape[0] - 1
    start, t_start = sigma_tilde[:-1], t[:-1]
    in_range = (start >= s_tmin) & (start <= s_tmax)
    gamma = torch.where(in_range, min(s_churn / num_steps, math.sqrt(2) - 1), 0.0).to(start)
    sigma_hat = start * (1 + gamma)
    # t_hat = t exactly where gamma = 0 (no round trip through t(sigma_tilde))
    t_hat = torch.where(gamma > 0, schedule.t_from_sigma_tilde(sigma_hat), t_start)
    return t_hat, schedule.alpha(t_hat), sigma_hat


def _setup(denoiser, x, grid, s_churn, s_tmin, s_tmax, s_noise):
    _check_churn(s_churn, s_tmin, s_tmax, s_noise)
    grid, (t, alpha, _, log_snr) = check_inputs(denoiser, x, grid)
    sigma_tilde = (-log_snr).exp()  # 0 at t = 0, where lambda = +inf
    t_hat, alpha_hat, sigma_hat = _churned_times(denoiser.schedule, t, sigma_tilde, s_churn, s_tmin, s_tmax)
    churn = s_noise * (sigma_hat**2 - sigma_tilde[:-1] ** 2).clamp_min(0).sqrt()
    return grid, t, alpha, sigma_tilde, t_hat, alpha_hat, sigma_hat, churn


@register_solver("euler")
def sample_euler(denoiser, x, grid, *, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                 s_noise: float = 1.0, generator=None, cond=None, callback=None, progress: bool = False):
    """Euler's method on the PF-ODE dy/d sigma_tilde = eps (EDM Algorithm 2 without the 2nd-order correction),
    with optional churn (Algorithm 2, lines 4-6): before step i the state is lifted from sigma_tilde_i to
    sigma_hat_i = (1 + gamma_i) sigma_tilde_i by adding noise of std s_noise sqrt(sigma_hat^2 - sigma_tilde^2).

    x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch) decreasing times. Returns x at grid[-1].
    ``s_tmin``, ``s_tmax`` bound the churned steps in sigma_tilde units. One model call per step.
    """
    grid, t, alpha, sigma_tilde, t_hat, alpha_hat, sigma_hat, churn = _setup(
        denoiser, x, grid, s_churn, s_tmin, s_tmax, s_noise)
    cond = cond or {}
    step, churn, alpha_hat = table(sigma_tilde[1:] - sigma_hat, x), table(churn, x), table(alpha_hat, x)
    alpha_now = table(alpha, x)
    y = x / alpha_now[0]
    for i in step_range(len(grid) - 1, progress, "euler"):
        if s_churn > 0:
            y = y + churn[i] * noise_like(y, generator)
        x0, eps = denoiser.predict(alpha_hat[i] * y, t_hat[i], **cond)
        y = torch.addcmul(y, step[i], eps)
        if callback is not None:
            callback({"i": i, "x": alpha_now[i + 1] * y, "t": t[i], "x0": x0})
    return alpha_now[-1] * y


@register_solver("heun")
def sample_heun(denoiser, x, grid, *, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                s_noise: float = 1.0, generator=None, cond=None, callback=None, progress: bool = False):
    """Heun's 2nd-order method with churn: EDM Algorithm 2 (Karras et al., 2022), on y = x / alpha.

    Each step takes an Euler step to sigma_tilde_{i+1}, evaluates eps there and averages the two slopes
    (Algorithm 2, lines 9-11). The correction is skipped when sigma_tilde_{i+1} = 0 (a grid ending at t = 0),
    where eps is not defined; on a per-sample grid that ends at 0 for only some samples it is skipped for those.
    x: (batch, ...); grid: (N + 1,) or (N + 1, batch). Two model calls per step (one on a step to t = 0).
    """
    grid, t, alpha, sigma_tilde, t_hat, alpha_hat, sigma_hat, churn = _setup(
        denoiser, x, grid, s_churn, s_tmin, s_tmax, s_noise)
    cond = cond or {}
    positive = sigma_tilde[1:] > 0
    positive = positive.reshape(positive.shape[0], -1)
    # decided once, before the loop: 0 = Euler only, 1 = Heun for all samples, 2 = Heun where sigma_next > 0
    mode = (positive.any(1).long() + (positive.any(1) & ~positive.all(1)).long()).tolist()
    step, churn, alpha_hat = table(sigma_tilde[1:] - sigma_hat, x), table(churn, x), table(alpha_hat, x)
    alpha_next, mask = table(alpha[1:], x), table(positive.to(x.dtype), x) > 0
    half_step = step / 2
    y = x / table(alpha[:1], x)[0]
    for i in step_range(len(grid) - 1, progress, "heun"):
        if s_churn > 0:
            y = y + churn[i] * noise_like(y, generator)
        x0, eps = denoiser.predict(alpha_hat[i] * y, t_hat[i], **cond)
        y_euler = torch.addcmul(y, step[i], eps)
        if mode[i]:
            _, eps_next = denoiser.predict(alpha_next[i] * y_euler, t[i + 1], **cond)
            y_heun = torch.addcmul(y, half_step[i], eps + eps_next)
            y = y_heun if mode[i] == 1 else torch.where(mask[i], y_heun, y_euler)
        else:
            y = y_euler
        if callback is not None:
            callback({"i": i, "x": alpha_next[i] * y, "t": t[i], "x0": x0})
    return y * alpha_next[-1]


def ancestral_step(sigma: Tensor, sigma_next: Tensor, eta: float) -> tuple[Tensor, Tensor]:
    """(sigma_down, sigma_up) of an ancestral step from sigma to sigma_next (k-diffusion's convention): the
    deterministic part goes to sigma_down, then noise of std sigma_up brings the level back to sigma_next,
    sigma_up = min(sigma_next, eta sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2)); eta = 1 is the
    DDPM posterior's variance."""
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).sqrt())
    return (sigma_next**2 - sigma_up**2).clamp_min(0).sqrt(), sigma_up


@register_solver("euler_ancestral")
def sample_euler_ancestral(denoiser, x, grid, *, eta: float = 1.0, s_noise: float = 1.0, generator=None,
                           cond=None, callback=None, progress: bool = False):
    """Euler ancestral sampling on y = x / alpha: an Euler step to sigma_down, then fresh noise of std
    s_noise * sigma_up (see ``ancestral_step``); eta = 0 is plain Euler.

    x: (batch, ...); grid: (N + 1,) or (N + 1, batch). One model call per step.
    """
    if not eta >= 0:
        raise ValueError(f"eta: expected eta >= 0, got {eta}")
    if not s_noise >= 0:
        raise ValueError(f"s_noise: expected s_noise >= 0, got {s_noise}")
    grid, (t, alpha, _, log_snr) = check_inputs(denoiser, x, grid)
    cond = cond or {}
    sigma_tilde = (-log_snr).exp()
    sigma_down, sigma_up = ancestral_step(sigma_tilde[:-1], sigma_tilde[1:], eta)
    step, noise_scale, alpha_now = table(sigma_down - sigma_tilde[:-1], x), table(s_noise * sigma_up, x), table(
        alpha, x)
    y = x / alpha_now[0]
    for i in step_range(len(grid) - 1, progress, "euler_ancestral"):
        x0, eps = denoiser.predict(alpha_now[i] * y, t[i], **cond)
        y = torch.addcmul(y, step[i], eps)
        if eta > 0:
            y = torch.addcmul(y, noise_scale[i], noise_like(y, generator))
        if callback is not None:
            callback({"i": i, "x": alpha_now[i + 1] * y, "t": t[i], "x0": x0})
    return y * alpha_now[-1]
