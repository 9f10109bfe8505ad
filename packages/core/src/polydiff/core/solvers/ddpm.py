"""DDPM ancestral sampling on any decreasing grid (Ho et al., 2020, eq. 6-7; Nichol & Dhariwal, 2021, "Improved
Denoising Diffusion Probabilistic Models", eq. 15 and section 4 "respacing").

Between any two times t > s of a Gaussian diffusion x_u = alpha_u x0 + sigma_u eps (VP, VE, EDM, flow alike) the
forward transition is q(x_t | x_s) = N(alpha_{t|s} x_s, sigma_{t|s}^2) with alpha_{t|s} = alpha_t / alpha_s and
sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2 = sigma_t^2 r, r = 1 - exp(2 (lambda_t - lambda_s)). Bayes'
rule gives the posterior (Kingma et al., 2021, "Variational Diffusion Models", appendix A)

    q(x_s | x_t, x0) = N(a x_t + b x0, sigma_s^2 r),  a = alpha_t sigma_s^2 / (alpha_s sigma_t^2),  b = alpha_s r.

For a DiscreteSchedule and s one training step before t these are DDPM's posterior_mean_coef1/2 and beta-tilde;
on a respaced grid they are improved-diffusion's respaced quantities (beta = 1 - abar_t / abar_s = r for VP).
The sampler draws x_s ~ N(a x_t + b x0_hat, Sigma) with
    variance="small"    Sigma = sigma_s^2 r     (posterior beta-tilde)
    variance="large"    Sigma = sigma_t^2 r     (the respaced beta)
    variance="learned"  log Sigma = v log(sigma_t^2 r) + (1 - v) log(sigma_s^2 r)  (eq. 15), v from a
                        :class:`~polydiff.core.learned_variance.LearnedVarianceDenoiser`.
A step that ends at s = 0 (clean data) adds no noise: it returns the mean, x0_hat.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..denoiser import append_dims
from ..sampling import check_inputs, coef, noise_like, register_solver, step_range

VARIANCES = ("small", "large", "learned")

__all__ = ["VARIANCES", "TransitionCoefficients", "transition_coefficients", "transition_mean_std",
           "ddpm_mean_std", "ddpm_step", "gaussian_log_prob", "sample_ddpm"]


class TransitionCoefficients(NamedTuple):
    """Posterior q(x_s | x_t, x0) pieces for each (t, s) pair (any common shape, float64)."""

    coef_x: Tensor      # a: multiplies x_t in the posterior mean
    coef_x0: Tensor     # b: multiplies x0
    log_small: Tensor   # log of the posterior variance sigma_s^2 r (-inf at s = 0)
    log_large: Tensor   # log of the transition variance sigma_t^2 r (the respaced beta for VP)
    final: Tensor       # True where s = 0: the step returns its mean


def transition_coefficients(alpha_t: Tensor, sigma_t: Tensor, lam_t: Tensor, alpha_s: Tensor, sigma_s: Tensor,
                            lam_s: Tensor) -> TransitionCoefficients:
    """The posterior coefficients of the module docstring from the schedule values at t > s."""
    # r = sigma_{t|s}^2 / sigma_t^2, by expm1 so that it stays accurate when t and s are close
    r = -torch.expm1(2 * (lam_t - lam_s))
    return TransitionCoefficients(alpha_t * sigma_s**2 / (alpha_s * sigma_t**2), alpha_s * r,
                                  torch.log(sigma_s**2 * r), torch.log(sigma_t**2 * r), sigma_s == 0)


def _check_variance(variance: str, denoiser) -> None:
    if variance not in VARIANCES:
        raise ValueError(f"variance: unknown choice {variance!r}; choices: {list(VARIANCES)}")
    if variance == "learned" and not hasattr(denoiser, "predict_with_variance"):
        raise ValueError("variance: 'learned' needs a LearnedVarianceDenoiser (a model with 2C output channels)")


def transition_mean_std(x: Tensor, x0: Tensor, coefficients: TransitionCoefficients, variance: str = "small",
                        fraction: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean and std of p(x_s | x_t) = N(a x_t + b x0_hat, Sigma) for one step. x, x0: (batch, ...); each
    coefficient a scalar or (batch,); fraction: the learned interpolation v (batch, ...), for "learned" only.
    Returns (mean, std), std broadcastable to x (0 on a final step)."""
    a, b, log_small, log_large, final = coefficients
    mean = coef(a, x) * x + coef(b, x) * x0
    if variance == "small":
        log_var = coef(log_small, x)
    elif variance == "large":
        log_var = coef(log_large, x)
    else:
        # at s = 0 the posterior variance is 0; use the finite bound there so no NaN reaches the gradient
        low = coef(torch.where(final, log_large, log_small), x)
        log_var = fraction * coef(log_large, x) + (1 - fraction) * low
    std = torch.where(append_dims(final, x.ndim), torch.zeros_like(log_var), (0.5 * log_var).exp())
    return mean, std


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(x; mean, diag(std^2)) summed over all but the batch dim: (batch, ...) -> (batch,). std > 0."""
    z = (x - mean) / std
    elementwise = -0.5 * z.square() - std.log() - 0.5 * math.log(2 * math.pi)
    return elementwise.expand(x.shape).flatten(1).sum(1)


def _predict(denoiser, x: Tensor, t, variance: str, cond: dict):
    if variance == "learned":
        return denoiser.predict_with_variance(x, t, **cond)
    x0, eps = denoiser.predict(x, t, **cond)
    return x0, eps, None


def ddpm_mean_std(denoiser, x: Tensor, t, s, *, variance: str = "small", cond: dict | None = None
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """One model call at (x, t): (x0_hat, mean, std) of the step t -> s. t, s: scalars or (batch,), t > s.
    Differentiable in the model's parameters (what DDPO's log-probabilities need)."""
    _check_variance(variance, denoiser)
    schedule = denoiser.schedule
    times = [torch.as_tensor(u, device=x.device, dtype=torch.float64) for u in (t, s)]
    (alpha_t, sigma_t), (alpha_s, sigma_s) = (schedule.alpha_sigma(u) for u in times)
    coefficients = transition_coefficients(alpha_t, sigma_t, schedule.log_snr(times[0]), alpha_s, sigma_s,
                                           schedule.log_snr(times[1]))
    x0, _, fraction = _predict(denoiser, x, times[0], variance, cond or {})
    mean, std = transition_mean_std(x, x0, coefficients, variance, fraction)
    return x0, mean, std


def ddpm_step(denoiser, x: Tensor, t, s, *, variance: str = "small", cond: dict | None = None,
              noise: Tensor | None = None, generator: torch.Generator | None = None
              ) -> tuple[Tensor, Tensor, Tensor]:
    """One ancestral step: (x_s, mean, std) with x_s = mean + std z, z = ``noise`` or drawn with ``generator``."""
    _, mean, std = ddpm_mean_std(denoiser, x, t, s, variance=variance, cond=cond)
    z = noise_like(x, generator) if noise is None else noise
    return mean + std * z, mean, std


@register_solver("ddpm")
def sample_ddpm(denoiser, x, grid, *, variance: str = "small", cond=None, generator=None, callback=None,
                progress: bool = False):
    """Ancestral DDPM sampling from x at grid[0] down to grid[-1] on any decreasing grid (a respaced one
    included); see the module docstring for the three variance choices.

    x: (batch, ...); grid: (N + 1,) or (N + 1, batch) decreasing times. One model call per step.
    """
    _check_variance(variance, denoiser)
    grid, (t, alpha, sigma, lam) = check_inputs(denoiser, x, grid)
    cond = cond or {}
    steps = transition_coefficients(alpha[:-1], sigma[:-1], lam[:-1], alpha[1:], sigma[1:], lam[1:])
    for i in step_range(len(grid) - 1, progress, "ddpm"):
        x0, _, fraction = _predict(denoiser, x, t[i], variance, cond)
        mean, std = transition_mean_std(x, x0, TransitionCoefficients(*(c[i] for c in steps)), variance,
                                        fraction)
        x = mean + std * noise_like(x, generator)
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x
