"""ParaDiGMS: parallel sampling by Picard iteration (Shih et al., 2023, "Parallel Sampling of Diffusion
Models", Algorithm 1).

A sequential solver is a chain x_{i+1} = x_i + d(x_i, i) (+ its pre-drawn noise). Picard iteration updates a
whole window of the chain at once from the previous guess,

    x_{i+1}^{k+1} = x_begin + sum_{j = begin}^{i} (d(x_j^k, j) + noise_j),   i in [begin, begin + window),

where the drifts d of every point of the window come from ONE batched model call. A point has converged when
its update is small against the noise scale of its step (their Section 3.2: ||x^{k+1}_i - x^k_i||^2 / D <=
tol^2 sigma_i^2, with sigma_i^2 the DDPM posterior variance of step i, here sigma_{i+1}^2 (1 - exp(2 (lambda_i -
lambda_{i+1})))); the window then slides past the first point that has not converged (that point is exact,
since every point before it has converged) and new points are started from the window's last state. At the
fixed point the chain equals the sequential solver's; the number of rounds (sequential model calls) is at
most the number of steps and far fewer on a smooth problem.

The base solver's step is written as x_{i+1} = a_i x_i + b_i x0_i + e_i eps_i + c_i z_i with coefficient
tables built once (DDIM eq. 12/16; Euler / Euler-ancestral on y = x / alpha as in ``solvers.euler``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..sampling import check_inputs, noise_like, register_solver, step_range
from .ddim import ddim_noise_scale
from .euler import ancestral_step, table

__all__ = ["sample_paradigms", "PARADIGMS_BASES"]


def _ddim(alpha, sigma, log_snr, eta):
    # DDIM eq. 16 with lambda: c = eta sigma_{i+1} sqrt(1 - exp(2 (lambda_i - lambda_{i+1})))
    c = ddim_noise_scale(sigma[1:], log_snr[:-1], log_snr[1:], eta)
    zero = torch.zeros_like(c)
    return zero, alpha[1:], (sigma[1:] ** 2 - c**2).clamp_min(0).sqrt(), c


def _euler(alpha, sigma, log_snr, eta):
    sigma_tilde = (-log_snr).exp()
    a = alpha[1:] / alpha[:-1]
    return a, torch.zeros_like(a), alpha[1:] * (sigma_tilde[1:] - sigma_tilde[:-1]), torch.zeros_like(a)


def _euler_ancestral(alpha, sigma, log_snr, eta):
    sigma_tilde = (-log_snr).exp()
    sigma_down, sigma_up = ancestral_step(sigma_tilde[:-1], sigma_tilde[1:], eta)
    a = alpha[1:] / alpha[:-1]
    return a, torch.zeros_like(a), alpha[1:] * (sigma_down - sigma_tilde[:-1]), alpha[1:] * sigma_up


PARADIGMS_BASES = {"ddim": _ddim, "euler": _euler, "euler_ancestral": _euler_ancestral}


def _tile(cond: dict, batch: int, copies: int) -> dict:
    """Repeat every batch-shaped tensor of ``cond`` ``copies`` times along dim 0 (window-major order)."""
    return {key: value.repeat(copies, *([1] * (value.ndim - 1)))
            if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch else value
            for key, value in cond.items()}


@register_solver("paradigms")
def sample_paradigms(denoiser, x, grid, *, base: str = "ddim", window: int = 8, tol: float = 0.1,
                     eta: float = 0.0, generator=None, cond=None, callback=None, progress: bool = False,
                     return_info: bool = False):
    """Parallel (Picard) sampling that returns the sequential ``base`` solver's samples within ``tol``.

    Args:
        x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch) decreasing times.
        base: the sequential solver: "ddim" (with ``eta``), "euler" or "euler_ancestral" (with ``eta``). Its
            noise is drawn up front in the same order as the sequential solver draws it, so the same generator
            state gives the same chain.
        window: steps updated together; each round makes one model call on batch * window inputs.
        tol: the tolerance tau of the convergence test (relative to each step's noise std).
    Returns samples (batch, ...), or (samples, info) with ``return_info``: info = {"rounds": sequential
    (batched) model calls, "evaluations": per-step model evaluations summed over rounds, "steps": N}.
    The callback gets {"round", "begin", "stride", "x" (the chain's state at the new window start)} each round.
    Model arguments in ``cond`` with the batch as their first dim are tiled over the window; a guided
    Denoiser's ``uncond`` arguments are not, so they must broadcast over batch * window.
    """
    if base not in PARADIGMS_BASES:
        raise ValueError(f"base: unknown base solver {base!r}; choices: {list(PARADIGMS_BASES)}")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window: expected an integer >= 1, got {window!r}")
    if not tol >= 0:
        raise ValueError(f"tol: expected a tolerance >= 0, got {tol}")
    if not eta >= 0:
        raise ValueError(f"eta: expected eta >= 0, got {eta}")
    grid, (t, alpha, sigma, log_snr) = check_inputs(denoiser, x, grid)
    batch, num_steps, cond = x.shape[0], len(grid) - 1, cond or {}
    a, b, e, c = (table(v, x) for v in PARADIGMS_BASES[base](alpha, sigma, log_snr, eta))
    stochastic = eta > 0 and base != "euler"
    noise = torch.stack([noise_like(x, generator) for _ in range(num_steps)]) if stochastic else None
    variance = ddim_noise_scale(sigma[1:], log_snr[:-1], log_snr[1:], 1.0) ** 2
    threshold = (tol**2 * variance).to(x.dtype).reshape(num_steps, -1)  # (N, 1 | batch)
    times = t.reshape(num_steps + 1, -1).expand(num_steps + 1, batch)
    chain = x.unsqueeze(0).repeat(num_steps + 1, *([1] * x.ndim))  # the current guess of x_0 .. x_N
    begin, end = 0, min(window, num_steps)
    info = {"rounds": 0, "evaluations": 0, "steps": num_steps}
    bar = step_range(num_steps, progress, "paradigms") if progress else None
    while begin < num_steps:
        size = end - begin
        points = chain[begin:end]  # (size, batch, ...)
        x0, eps = denoiser.predict(points.flatten(0, 1), times[begin:end].flatten(), **_tile(cond, batch, size))
        x0, eps = x0.view_as(points), eps.view_as(points)
        drift = (a[begin:end] - 1) * points + b[begin:end] * x0 + e[begin:end] * eps
        if stochastic:
            drift = drift + c[begin:end] * noise[begin:end]
        update = chain[begin] + drift.cumsum(0)  # x_{begin+1} .. x_end
        change = (update - chain[begin + 1 : end + 1]).square().reshape(size, batch, -1).mean(2)  # (size, batch)
        unconverged = (change > threshold[begin:end]).any(1)
        # first unconverged point; `size` when all converged (the one host sync per round)
        first = int(torch.cat([unconverged, unconverged.new_ones(1)]).int().argmax())
        chain[begin + 1 : end + 1] = update
        stride = min(first + 1, size)
        new_begin = begin + stride
        new_end = min(new_begin + window, num_steps)
        chain[end + 1 : new_end + 1] = chain[end]
        info["rounds"] += 1
        info["evaluations"] += size
        if bar is not None:
            bar.update(stride)
        if callback is not None:
            callback({"round": info["rounds"], "begin": new_begin, "stride": stride, "x": chain[new_begin]})
        begin, end = new_begin, new_end
    if bar is not None:
        bar.close()
    return (chain[-1], info) if return_info else chain[-1]
