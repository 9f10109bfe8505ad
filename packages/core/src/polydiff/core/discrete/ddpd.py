"""DDPD: discrete diffusion with planned denoising (Liu et al., 2024, "Think While You Generate: Discrete
Diffusion with Planned Denoising").

Forward process (uniform noise, time t in [0, 1] with t = 1 pure noise as everywhere in polydiff): each token is
independently replaced, with probability t, by a uniform draw from the K data classes; the latent z^d records
whether position d was replaced ("noise"), even when the draw equals the clean token. Two networks:

- planner(x, t) -> (batch, length) probabilities P(z^d = noise | x_t): which positions still need denoising;
- denoiser(x, t) -> (batch, length, K) logits of p(x_0^d | x_t, z^d = noise): what a noisy position should be.

Sampling (Section 3.2, Algorithm 1): start from uniform noise; at each step draw the position(s) to (re)denoise
from the planner's normalised probabilities and resample them from the denoiser.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import (
    check_logits,
    check_time,
    check_tokens,
    check_unit_interval,
    random_integers,
    sample_categorical,
    uniform,
)

__all__ = ["ddpd_corrupt", "ddpd_planner_loss", "ddpd_denoiser_loss", "ddpd_sample"]


def ddpd_corrupt(x0: Tensor, t, num_classes: int, *, generator: torch.Generator | None = None
                 ) -> tuple[Tensor, Tensor]:
    """Draw x_t from the uniform-noise forward process at times t.

    x0: (batch, length) long in [0, K); t: scalar or (batch,) in [0, 1]. Returns (x_t (batch, length) long,
    is_noise (batch, length) bool).
    """
    x0 = check_tokens("x0", x0, num_classes, min_ndim=2)
    if x0.ndim != 2:
        raise ValueError(f"x0: expected shape (batch, length), got {tuple(x0.shape)}")
    t = check_time("t", t, x0.shape[0], low=0.0, high=1.0).to(x0.device)
    u = uniform(x0.shape, generator, x0.device)
    is_noise = u < t[:, None]
    noise = random_integers(0, num_classes, x0.shape, generator, x0.device)
    return torch.where(is_noise, noise, x0), is_noise


def ddpd_planner_loss(noise_logits: Tensor, is_noise: Tensor) -> Tensor:
    """Planner loss: binary cross-entropy of P(z^d = noise | x_t) = sigmoid(noise_logits) against the true z,
    averaged over positions. noise_logits: (batch, length) float; is_noise: (batch, length) bool."""
    if not isinstance(is_noise, Tensor) or is_noise.dtype != torch.bool or is_noise.ndim != 2:
        raise ValueError("is_noise: expected a bool tensor (batch, length)")
    if not isinstance(noise_logits, Tensor) or not noise_logits.is_floating_point() \
            or noise_logits.shape != is_noise.shape:
        raise ValueError(f"noise_logits: expected a float tensor of shape {tuple(is_noise.shape)}")
    if bool(torch.isnan(noise_logits).any()):
        raise ValueError("noise_logits: contains NaN")
    return F.binary_cross_entropy_with_logits(noise_logits, is_noise.to(noise_logits.dtype))


def ddpd_denoiser_loss(logits: Tensor, x0: Tensor, is_noise: Tensor) -> Tensor:
    """Denoiser loss: cross-entropy -log p(x_0^d | x_t, z^d = noise) over the noisy positions, averaged over
    them. logits: (batch, length, K); x0: (batch, length) long; is_noise: (batch, length) bool."""
    if not isinstance(is_noise, Tensor) or is_noise.dtype != torch.bool or is_noise.ndim != 2:
        raise ValueError("is_noise: expected a bool tensor (batch, length)")
    if not isinstance(logits, Tensor) or logits.ndim != 3:
        raise ValueError("logits: expected a float tensor (batch, length, K)")
    x0 = check_tokens("x0", x0, logits.shape[-1], min_ndim=2)
    if x0.shape != is_noise.shape:
        raise ValueError(f"x0: expected shape {tuple(is_noise.shape)}, got {tuple(x0.shape)}")
    check_logits("logits", logits, tuple(x0.shape), logits.shape[-1])
    nll = -torch.log_softmax(logits, -1).gather(-1, x0[..., None])[..., 0]
    return (nll * is_noise).sum() / is_noise.sum().clamp_min(1)


def ddpd_sample(planner: Callable[[Tensor, Tensor], Tensor], denoiser: Callable[[Tensor, Tensor], Tensor],
                shape: tuple[int, int], num_classes: int, num_steps: int, *, positions_per_step: int = 1,
                adaptive_time: bool = False, generator: torch.Generator | None = None, device=None,
                x_init: Tensor | None = None) -> Tensor:
    """DDPD planned-denoising sampler (Liu et al., 2024, Algorithm 1).

    shape: (batch, length). Step k (k = 0 .. num_steps - 1) runs at grid time t_k = 1 - k / num_steps:
    p = planner(x, t_k) (batch, length); ``positions_per_step`` positions are drawn without replacement with
    probability proportional to p; each is resampled from softmax(denoiser(x, t')) at that position, where
    t' = t_k, or with ``adaptive_time`` the planner's own estimate sum_d p_d / length (the paper's time
    correction). A row whose planner probabilities are all zero is left unchanged (nothing left to denoise).
    With one position per step and num_steps = length, the grid time t_k is the exact fraction of positions not
    yet denoised, and exact planner and denoiser sample the data law exactly. Returns (batch, length) long.
    """
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2 and all(isinstance(s, int) and s > 0
                                                                         for s in shape)):
        raise ValueError(f"shape: expected (batch, length) of positive ints, got {shape!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps: expected an integer >= 1, got {num_steps!r}")
    batch, length = shape
    if not isinstance(positions_per_step, int) or not 1 <= positions_per_step <= length:
        raise ValueError(f"positions_per_step: expected an integer in [1, {length}], got {positions_per_step!r}")
    if x_init is None:
        x = random_integers(0, num_classes, shape, generator, device)
    else:
        x = check_tokens("x_init", x_init, num_classes, min_ndim=2).clone()
        if tuple(x.shape) != tuple(shape):
            raise ValueError(f"x_init: expected shape {tuple(shape)}, got {tuple(x.shape)}")
    rows = torch.arange(batch, device=x.device)[:, None]
    for k in range(num_steps):
        t = torch.full((batch,), 1.0 - k / num_steps, dtype=torch.get_default_dtype(), device=x.device)
        p = planner(x, t)
        if k == 0:
            check_unit_interval("planner output", p, shape)
        p = p.to(torch.float64)
        total = p.sum(-1, keepdim=True)
        active = total > 0
        weights = torch.where(active, p, 1.0)  # any valid weights; inactive rows are not updated
        # Gumbel-top-k: ``positions_per_step`` draws without replacement, each proportional to the weights
        keys = weights.log() - (-uniform(weights.shape, generator, x.device).log()).log()
        positions = keys.topk(positions_per_step, -1).indices
        t_denoise = (total[:, 0] / length).to(t.dtype) if adaptive_time else t
        logits = denoiser(x, t_denoise)
        if k == 0:
            check_logits("denoiser output", logits, shape, num_classes)
        probs = torch.softmax(logits[rows, positions].to(torch.float64), -1)
        values = sample_categorical(probs, generator)
        x[rows, positions] = torch.where(active, values, x[rows, positions])
    return x
