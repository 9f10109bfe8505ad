"""Learned reverse-process variances (Nichol & Dhariwal, 2021, "Improved Denoising Diffusion Probabilistic
Models"): the denoiser, the hybrid loss L_simple + lambda L_vlb (section 3.1) and the variational bound in
bits/dim (Ho et al., 2020, eq. 5).

A learned-variance network outputs 2C channels for a C-channel x: the first C are the usual mean
parameterisation (eps by default), the last C an interpolation v with (eq. 15)

    log Sigma(t -> s) = v log beta + (1 - v) log beta-tilde,

beta = sigma_t^2 r (the respaced beta) and beta-tilde = sigma_s^2 r (the posterior variance), r = 1 - exp(2
(lambda_t - lambda_s)) (see :mod:`polydiff.core.solvers.ddpm`). ``variance_output="signed"`` reads the raw
output o in [-1, 1] as v = (o + 1) / 2 (the reference implementation); "unit" takes v = o (the paper's eq. 15).
Neither is clamped. At the last step (s = 0) beta-tilde is 0; as in the reference code it is replaced by the
beta-tilde of the next training step, (t + 1/N -> t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .denoiser import Denoiser, append_dims, convert_prediction
from .losses import q_sample, split_batch
from .schedules import DiscreteSchedule, NoiseSchedule
from .solvers.ddpm import transition_coefficients

VARIANCE_OUTPUTS = ("signed", "unit")

__all__ = ["LearnedVarianceDenoiser", "normal_kl", "discretized_gaussian_log_likelihood", "vlb_terms",
           "prior_bits_per_dim", "vlb_bits_per_dim", "hybrid_loss", "HybridLoss", "VARIANCE_OUTPUTS"]


class LearnedVarianceDenoiser(Denoiser):
    """A :class:`Denoiser` for a model with 2C output channels (channel dim 1): mean parameterisation first, the
    variance interpolation last. ``predict`` returns (x0, eps) from the first half, so every solver runs it
    unchanged; ``predict_with_variance`` adds the interpolation v (one model call); ``log_variance`` gives
    log Sigma for a step t -> s. Other arguments as for :class:`Denoiser`.
    """

    def __init__(self, model, schedule: NoiseSchedule, prediction: str = "eps", *,
                 variance_output: str = "signed", **kwargs):
        if variance_output not in VARIANCE_OUTPUTS:
            raise ValueError(f"variance_output: unknown choice {variance_output!r}; choices: "
                             f"{list(VARIANCE_OUTPUTS)}")
        super().__init__(self._mean_half, schedule, prediction, **kwargs)
        self.full_model = model
        self.variance_output = variance_output
        self._captured: list[Tensor] | None = None

    def _mean_half(self, x: Tensor, t_model: Tensor, **cond) -> Tensor:
        output = self.full_model(x, t_model, **cond)
        expected = (x.shape[0], 2 * x.shape[1], *x.shape[2:])
        if output.shape != expected:
            raise ValueError(f"model: a learned-variance model must output {expected} (2C channels), got "
                             f"{tuple(output.shape)}")
        mean_part, variance_part = output.chunk(2, dim=1)
        if self._captured is not None:
            self._captured.append(variance_part)
        return mean_part

    def predict_with_variance(self, x: Tensor, t, **cond) -> tuple[Tensor, Tensor, Tensor]:
        """(x0, eps, v) at x: (batch, C, ...), t: scalar or (batch,); v (batch, C, ...) is the interpolation
        weight of log beta. With guidance, v comes from the conditional call (GLIDE's choice)."""
        self._captured = []
        try:
            x0, eps = self.predict(x, t, **cond)
            raw = self._captured[0]  # Denoiser.predict makes the conditional call first
        finally:
            self._captured = None
        return x0, eps, (raw + 1) / 2 if self.variance_output == "signed" else raw

    def log_variance(self, x: Tensor, t, s=None, **cond) -> Tensor:
        """log Sigma(t -> s), (batch, C, ...). s defaults to one training step earlier, t - 1/N (a
        DiscreteSchedule); at s = 0 the lower bound is clipped as in the module docstring."""
        t = torch.as_tensor(t, device=x.device, dtype=torch.float64).expand(x.shape[0])
        if s is None:
            if not isinstance(self.schedule, DiscreteSchedule):
                raise ValueError("s: give the previous time; only a DiscreteSchedule has a default step")
            s = (t - 1 / self.schedule.num_train_timesteps).clamp_min(0)
        s = torch.as_tensor(s, device=x.device, dtype=torch.float64).expand(x.shape[0])
        _, _, fraction = self.predict_with_variance(x, t, **cond)
        log_large, log_small = _variance_bounds(self.schedule, t, s)
        return fraction * append_dims(log_large, x.ndim) + (1 - fraction) * append_dims(log_small, x.ndim)


def _variance_bounds(schedule: NoiseSchedule, t: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """(log beta, log beta-tilde) of the step t -> s, float64; beta-tilde clipped at s = 0."""
    values = [(*schedule.alpha_sigma(u), schedule.log_snr(u)) for u in (t, s)]
    step = transition_coefficients(*values[0], *values[1])
    if isinstance(schedule, DiscreteSchedule):
        above = (t + 1 / schedule.num_train_timesteps).clamp_max(schedule.t_max)
        clip = transition_coefficients(*schedule.alpha_sigma(above), schedule.log_snr(above), *values[0]).log_small
    else:
        clip = step.log_large
    return step.log_large, torch.where(step.final, clip, step.log_small)


# ----------------------------------------------------------------------------------------- likelihoods


def normal_kl(mean1: Tensor, log_var1: Tensor, mean2: Tensor, log_var2: Tensor) -> Tensor:
    """KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))) elementwise, in nats."""
    return 0.5 * (-1.0 + log_var2 - log_var1 + (log_var1 - log_var2).exp()
                  + (mean1 - mean2).square() * (-log_var2).exp())


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor, bins: int = 256) -> Tensor:
    """log P(x) elementwise for data x in [-1, 1] quantised to ``bins`` levels under N(mean, exp(log_scale)^2)
    integrated over each level's bin (Ho et al., 2020, eq. 13); the end bins extend to -inf / +inf."""
    half = 1.0 / (bins - 1)
    inv_std = (-log_scale).exp()
    upper, lower = inv_std * (x - mean + half), inv_std * (x - mean - half)
    # the difference of CDFs is taken on the tail side where it does not cancel
    delta = torch.where(lower > 0, torch.special.ndtr(-lower) - torch.special.ndtr(-upper),
                        torch.special.ndtr(upper) - torch.special.ndtr(lower))
    middle = delta.clamp_min(1e-12).log()
    edge = 1 - half  # the first / last bin centres are -1 / 1
    return torch.where(x < -edge, torch.special.log_ndtr(upper),
                       torch.where(x > edge, torch.special.log_ndtr(-lower), middle))


def _check_discrete(schedule) -> DiscreteSchedule:
    if not isinstance(schedule, DiscreteSchedule):
        raise ValueError(f"denoiser: the variational bound needs a DiscreteSchedule, got {type(schedule).__name__}")
    return schedule


def _per_dim_bits(value: Tensor) -> Tensor:
    return value.flatten(1).mean(1) / math.log(2.0)


def vlb_terms(denoiser: Denoiser, x0: Tensor, index: Tensor, *, noise: Tensor | None = None,
              variance: str | None = None, cond: dict | None = None, detach_mean: bool = False,
              generator: torch.Generator | None = None, precomputed: tuple | None = None) -> Tensor:
    """The bound's term L_n for training index n, in bits/dim, (batch,) (Ho et al., 2020, eq. 5):
    KL(q(x_{n-1} | x_n, x0) || p(x_{n-1} | x_n)) for n >= 1, and the discretised decoder NLL -log p(x0 | x_1)
    at n = 0 (x0 in [-1, 1], 8-bit bins).

    x0: (batch, C, ...); index: (batch,) integers in [0, N); variance: "learned" (the default for a
    LearnedVarianceDenoiser), "small" or "large". detach_mean stops the gradient through the model mean
    (the hybrid loss). precomputed: (x_t, x0_hat, v) already computed at this index (saves a model call).
    """
    schedule = _check_discrete(denoiser.schedule)
    n = schedule.num_train_timesteps
    learned = isinstance(denoiser, LearnedVarianceDenoiser)
    variance = ("learned" if learned else "small") if variance is None else variance
    if variance not in ("small", "large", "learned") or (variance == "learned" and not learned):
        raise ValueError(f"variance: expected 'small', 'large' or (for a LearnedVarianceDenoiser) 'learned', "
                         f"got {variance!r}")
    index = torch.as_tensor(index, device=x0.device).expand(x0.shape[0])
    if bool(((index < 0) | (index >= n)).any()):
        raise ValueError(f"index: training indices must lie in [0, {n})")
    t = (index + 1).to(torch.float64) / n
    s = index.to(torch.float64) / n
    if precomputed is None:
        x_t = q_sample(schedule, x0, t, noise, generator)
        if learned:
            x0_hat, _, fraction = denoiser.predict_with_variance(x_t, t, **(cond or {}))
        else:
            x0_hat, fraction = denoiser.predict(x_t, t, **(cond or {})).x0, None
    else:
        x_t, x0_hat, fraction = precomputed
    if detach_mean:
        x0_hat = x0_hat.detach()
    values = [(*schedule.alpha_sigma(u), schedule.log_snr(u)) for u in (t, s)]
    step = transition_coefficients(*values[0], *values[1])
    log_large, log_small = (append_dims(v, x0.ndim).to(x0.dtype) for v in _variance_bounds(schedule, t, s))
    a, b = (append_dims(v, x0.ndim).to(x0.dtype) for v in (step.coef_x, step.coef_x0))
    true_mean, model_mean = a * x_t + b * x0, a * x_t + b * x0_hat
    if variance == "learned":
        model_log_var = fraction * log_large + (1 - fraction) * log_small
    else:
        # the reference code's fixed "large" variance uses beta-tilde at the decoder step as well
        model_log_var = log_small if variance == "small" else torch.where(append_dims(step.final, x0.ndim),
                                                                          log_small, log_large)
    kl = _per_dim_bits(normal_kl(true_mean, log_small, model_mean, model_log_var))
    decoder = -_per_dim_bits(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var))
    return torch.where(index == 0, decoder, kl)


def prior_bits_per_dim(schedule: NoiseSchedule, x0: Tensor) -> Tensor:
    """KL(q(x_T | x0) || N(0, I)) in bits/dim, (batch,): the bound's prior term L_T."""
    alpha, sigma = schedule.alpha_sigma(torch.tensor(schedule.t_max, dtype=torch.float64, device=x0.device))
    mean = alpha.to(x0.dtype) * x0
    log_var = torch.full_like(x0, float(2 * sigma.log()))
    return _per_dim_bits(normal_kl(mean, log_var, torch.zeros_like(x0), torch.zeros_like(x0)))


@torch.no_grad()
def vlb_bits_per_dim(denoiser: Denoiser, x0: Tensor, *, noise: Tensor | None = None, variance: str | None = None,
                     cond: dict | None = None, generator: torch.Generator | None = None) -> Tensor:
    """The full variational bound -log p(x0) <= L_T + sum_{n=1}^{N-1} L_n + L_0 in bits/dim, (batch,), with
    every one of the N terms evaluated (one model call each, one fresh noise draw each).

    x0: (batch, C, ...) in [-1, 1] (8-bit data); noise: optional (N, batch, C, ...) standard normal draws, term n
    using noise[n].
    """
    schedule = _check_discrete(denoiser.schedule)
    if not bool(torch.isfinite(x0).all()) or bool((x0.abs() > 1).any()):
        raise ValueError("x0: expected finite data scaled to [-1, 1]")
    n = schedule.num_train_timesteps
    if noise is not None and noise.shape != (n, *x0.shape):
        raise ValueError(f"noise: expected shape {(n, *x0.shape)}, got {tuple(noise.shape)}")
    total = prior_bits_per_dim(schedule, x0)
    for i in range(n):
        index = torch.full((x0.shape[0],), i, device=x0.device, dtype=torch.long)
        total = total + vlb_terms(denoiser, x0, index, noise=None if noise is None else noise[i],
                                  variance=variance, cond=cond, generator=generator)
    return total


# ----------------------------------------------------------------------------------------- hybrid loss


def hybrid_loss(denoiser: LearnedVarianceDenoiser, x0: Tensor, *, lambda_vlb: float = 0.001,
                index: Tensor | None = None, noise: Tensor | None = None, cond: dict | None = None,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """L_hybrid = L_simple + lambda L_vlb (Nichol & Dhariwal, 2021, eq. 16), one model call per sample.

    L_simple is the MSE on the mean parameterisation's target; L_vlb = sum_n L_n is estimated as N L_n at a
    uniformly drawn index n, in bits/dim, with the gradient through the mean stopped so that L_vlb trains only
    the variance (section 3.1). Returns {"loss", "mse", "vlb"} (scalars: batch means).
    x0: (batch, C, ...) in [-1, 1]; index: (batch,) training indices (drawn when None).
    """
    if not isinstance(denoiser, LearnedVarianceDenoiser):
        raise ValueError("denoiser: the hybrid loss needs a LearnedVarianceDenoiser")
    schedule = _check_discrete(denoiser.schedule)
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.ndim < 2:
        raise ValueError("x0: expected a floating-point tensor of shape (batch, C, ...)")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0: contains NaN or inf")
    if not lambda_vlb >= 0:
        raise ValueError(f"lambda_vlb: expected a non-negative value, got {lambda_vlb}")
    n = schedule.num_train_timesteps
    if index is None:
        index = torch.randint(0, n, (x0.shape[0],), generator=generator, device=x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t = (torch.as_tensor(index, device=x0.device) + 1).to(torch.float64) / n
    x_t = q_sample(schedule, x0, t, noise)
    x0_hat, eps_hat, fraction = denoiser.predict_with_variance(x_t, t, **(cond or {}))
    alpha, sigma = (append_dims(v, x0.ndim).to(x0.dtype) for v in schedule.alpha_sigma(t))
    target, output = (convert_prediction(a, b, denoiser.prediction, alpha, sigma)
                      for a, b in ((x0, noise), (x0_hat, eps_hat)))
    mse = (output - target).square().flatten(1).mean(1)
    vlb = vlb_terms(denoiser, x0, index, cond=cond, detach_mean=True, precomputed=(x_t, x0_hat, fraction))
    loss = mse + lambda_vlb * n * vlb
    return {"loss": loss.mean(), "mse": mse.mean().detach(), "vlb": vlb.mean().detach()}


@dataclass(frozen=True)
class HybridLoss:
    """The hybrid loss as a Trainer loss: ``HybridLoss(schedule)(model, batch) -> {"loss", "mse", "vlb"}``, the
    raw 2C-channel model wrapped in a :class:`LearnedVarianceDenoiser` on each call (batch as for
    :class:`~polydiff.core.losses.DiffusionLoss`)."""

    schedule: DiscreteSchedule
    prediction: str = "eps"
    lambda_vlb: float = 0.001
    variance_output: str = "signed"

    def __post_init__(self):
        _check_discrete(self.schedule)
        if self.prediction not in ("eps", "x0", "v"):
            raise ValueError(f"prediction: expected 'eps', 'x0' or 'v', got {self.prediction!r}")
        if not self.lambda_vlb >= 0:
            raise ValueError(f"lambda_vlb: expected a non-negative value, got {self.lambda_vlb}")
        if self.variance_output not in VARIANCE_OUTPUTS:
            raise ValueError(f"variance_output: unknown choice {self.variance_output!r}")

    def __call__(self, model, batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        x0, cond = split_batch(batch)
        denoiser = LearnedVarianceDenoiser(model, self.schedule, self.prediction,
                                           variance_output=self.variance_output)
        return hybrid_loss(denoiser, x0, lambda_vlb=self.lambda_vlb, cond=cond, generator=generator)
