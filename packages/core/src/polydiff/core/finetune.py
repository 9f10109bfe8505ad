"""Reward fine-tuning of the sampling chain: DDPO (Black et al., 2023, "Training Diffusion Models with
Reinforcement Learning", section 4.3, DDPO_IS).

The stochastic sampler is a Markov chain whose every step is a Gaussian policy pi_theta(x_s | x_t, c) =
N(mean_theta(x_t, t), std^2): DDPM's posterior step (:mod:`polydiff.core.solvers.ddpm`) or DDIM with eta > 0
(Song et al., 2021, eq. 12). ``collect_trajectories`` runs the chain without gradients and records each state
and the log-probability of each transition; ``ddpo_step`` then maximises the reward with the clipped
importance-sampled policy gradient (PPO's surrogate, Schulman et al., 2017, eq. 7)

    L(theta) = E_i,t [ max(-A_i rho_{i,t}, -A_i clip(rho_{i,t}, 1 - eps, 1 + eps)) ],
    rho_{i,t} = pi_theta(x_s | x_t) / pi_old(x_s | x_t),

summed over the chain's steps (gradients accumulated, one optimizer step per minibatch). Advantages are
rewards standardised per prompt (or per batch) by ``normalize_advantages``. Log-probabilities are the full
Gaussian log-densities summed over each sample's elements by default (the reference code averages them instead,
``log_prob_reduce="mean"``, which only rescales the ratio's exponent but keeps PPO's clip range meaningful for
large samples).

DPPO (Ren et al., 2024, "Diffusion Policy Policy Optimization") adds two settings for chains with many steps: a
floor under every step's std (``min_std``; their min_sampling_denoising_std, 0.1 for action chunks), so the last
steps keep exploring and their densities stay bounded, and fine-tuning only the last K steps of the chain
(``ddpo_step(..., last_steps=K)``; their ft_denoising_steps), the earlier steps still being sampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .denoiser import Denoiser
from .grids import check_grid
from .sampling import coef, noise_like
from .solvers.ddim import ddim_noise_scale
from .solvers.ddpm import VARIANCES, ddpm_mean_std, gaussian_log_prob

__all__ = ["Trajectories", "policy_mean_std", "collect_trajectories", "trajectory_log_probs",
           "normalize_advantages", "ddpo_loss", "ddpo_step"]


@dataclass(frozen=True)
class Trajectories:
    """Sampled chains. states: (steps + 1, batch, ...) with states[0] = x_T and states[-1] the sample;
    log_probs: (steps, batch), log pi_old(states[i + 1] | states[i]); grid: (steps + 1,) times; rewards: (batch,);
    the sampler settings (eta for DDIM, else DDPM with ``variance``) and the model's cond arguments."""

    states: Tensor
    log_probs: Tensor
    grid: Tensor
    rewards: Tensor
    eta: float | None = None
    variance: str = "small"
    cond: dict = field(default_factory=dict)
    min_std: float = 0.0
    log_prob_reduce: str = "sum"

    @property
    def samples(self) -> Tensor:
        return self.states[-1]


def policy_mean_std(denoiser: Denoiser, x: Tensor, t, s, *, eta: float | None = None, variance: str = "small",
                    cond: dict | None = None) -> tuple[Tensor, Tensor]:
    """Mean and std of one Gaussian sampler step t -> s at x: (batch, ...); differentiable in the model.

    eta=None: DDPM's step (variance "small", "large" or "learned"). eta > 0: DDIM's step, mean alpha_s x0 +
    sqrt(sigma_s^2 - c^2) eps, std c = eta sigma_s sqrt(1 - exp(2 (lambda_t - lambda_s))) (Song et al., 2021,
    eq. 12 and 16, written as in :func:`polydiff.core.solvers.ddim.sample_ddim`).
    """
    if eta is None:
        _, mean, std = ddpm_mean_std(denoiser, x, t, s, variance=variance, cond=cond)
        return mean, std
    schedule = denoiser.schedule
    t, s = (torch.as_tensor(u, device=x.device, dtype=torch.float64) for u in (t, s))
    alpha_s, sigma_s = schedule.alpha_sigma(s)
    c = ddim_noise_scale(sigma_s, schedule.log_snr(t), schedule.log_snr(s), eta)
    x0, eps = denoiser.predict(x, t, **(cond or {}))
    mean = coef(alpha_s, x) * x0 + coef((sigma_s**2 - c**2).clamp_min(0).sqrt(), x) * eps
    return mean, coef(c, x)


def _log_prob(x: Tensor, mean: Tensor, std: Tensor, reduce: str) -> Tensor:
    """log N(x; mean, std^2) per sample: summed over its elements ("sum") or their mean ("mean")."""
    total = gaussian_log_prob(x, mean, std)
    return total if reduce == "sum" else total / x[0].numel()


def _check_sampler(denoiser, eta, variance) -> None:
    if not isinstance(denoiser, Denoiser):
        raise ValueError(f"denoiser: expected a polydiff Denoiser, got {type(denoiser).__name__}")
    if eta is not None and not eta > 0:
        raise ValueError(f"eta: DDIM needs eta > 0 for a stochastic policy, got {eta}")
    if eta is None and variance not in VARIANCES:
        raise ValueError(f"variance: unknown choice {variance!r}; choices: {list(VARIANCES)}")


@torch.no_grad()
def collect_trajectories(denoiser: Denoiser, noise: Tensor, grid, reward_fn: Callable[[Tensor], Tensor], *,
                         eta: float | None = None, variance: str = "small", cond: dict | None = None,
                         generator: torch.Generator | None = None, min_std: float = 0.0,
                         log_prob_reduce: str = "sum") -> Trajectories:
    """Run the stochastic sampler from ``noise`` (batch, ...) along ``grid`` (steps + 1,) decreasing times
    ending at t > 0, recording states and transition log-probabilities; reward the final states with
    ``reward_fn(samples) -> (batch,)``. The noise is scaled to the prior as in :func:`polydiff.core.sample`.
    ``min_std`` >= 0 floors every step's std (DPPO's exploration floor; the policy's density uses the floored std
    too); ``log_prob_reduce`` "sum" or "mean" over each sample's elements. Both are recorded in the trajectories,
    so :func:`ddpo_step` evaluates the same policy.
    """
    _check_sampler(denoiser, eta, variance)
    if not (isinstance(min_std, (int, float)) and math.isfinite(min_std) and min_std >= 0):
        raise ValueError(f"min_std: expected a finite value >= 0, got {min_std!r}")
    if log_prob_reduce not in ("sum", "mean"):
        raise ValueError(f"log_prob_reduce: expected 'sum' or 'mean', got {log_prob_reduce!r}")
    if not isinstance(noise, Tensor) or not noise.is_floating_point() or not bool(torch.isfinite(noise).all()):
        raise ValueError("noise: expected a finite floating-point tensor (batch, ...)")
    grid = check_grid(torch.as_tensor(grid, dtype=torch.float64)).to(noise.device)
    if grid.ndim != 1 or float(grid[-1]) <= 0:
        raise ValueError("grid: expected (steps + 1,) times ending at t > 0 (a step to t = 0 has no density)")
    alpha, sigma = denoiser.schedule.alpha_sigma(grid[0])
    x = noise * torch.sqrt(alpha**2 + sigma**2).to(noise.dtype)
    states, log_probs = [x], []
    for i in range(len(grid) - 1):
        mean, std = policy_mean_std(denoiser, x, grid[i], grid[i + 1], eta=eta, variance=variance, cond=cond)
        std = std.clamp_min(min_std) if min_std > 0 else std
        x = mean + std * noise_like(x, generator)
        states.append(x)
        log_probs.append(_log_prob(x, mean, std, log_prob_reduce))
    rewards = torch.as_tensor(reward_fn(x))
    if rewards.shape != (x.shape[0],):
        raise ValueError(f"reward_fn: expected rewards of shape ({x.shape[0]},), got {tuple(rewards.shape)}")
    return Trajectories(torch.stack(states), torch.stack(log_probs), grid, rewards.to(x.device, x.dtype).detach(),
                        eta, variance, dict(cond or {}), float(min_std), log_prob_reduce)


def _step_log_prob(denoiser: Denoiser, trajectories: Trajectories, i: int, index: Tensor | slice) -> Tensor:
    cond = {k: v[index] if isinstance(v, Tensor) else v for k, v in trajectories.cond.items()}
    mean, std = policy_mean_std(denoiser, trajectories.states[i][index], trajectories.grid[i],
                                trajectories.grid[i + 1], eta=trajectories.eta, variance=trajectories.variance,
                                cond=cond)
    if trajectories.min_std > 0:
        std = std.clamp_min(trajectories.min_std)
    return _log_prob(trajectories.states[i + 1][index], mean, std, trajectories.log_prob_reduce)


@torch.no_grad()
def trajectory_log_probs(denoiser: Denoiser, trajectories: Trajectories) -> Tensor:
    """log pi_theta of every recorded transition under the current model, (steps, batch). The mean over the
    batch of sum_t (trajectories.log_probs - this) estimates KL(pi_old || pi_theta) on whole chains."""
    return torch.stack([_step_log_prob(denoiser, trajectories, i, slice(None))
                        for i in range(trajectories.log_probs.shape[0])])


def normalize_advantages(rewards: Tensor, groups: Tensor | Sequence | None = None, *, eps: float = 1e-8
                         ) -> Tensor:
    """Advantages (batch,): rewards standardised within each group (DDPO's per-prompt statistics, Black et al.,
    2023) or over the whole batch when ``groups`` is None. groups: (batch,) integer ids or a
    sequence of hashable prompts; a group of one sample uses the batch's mean and std."""
    rewards = torch.as_tensor(rewards)
    if rewards.ndim != 1 or rewards.numel() < 2 or not rewards.is_floating_point():
        raise ValueError(f"rewards: expected a floating-point (batch,) tensor with batch >= 2, got "
                         f"{tuple(rewards.shape)}")
    mean, std = rewards.mean(), rewards.std()
    if groups is None:
        return (rewards - mean) / (std + eps)
    if not isinstance(groups, Tensor):
        ids: dict = {}
        groups = torch.tensor([ids.setdefault(g, len(ids)) for g in groups])
    if groups.shape != rewards.shape:
        raise ValueError(f"groups: expected shape {tuple(rewards.shape)}, got {tuple(groups.shape)}")
    _, inverse, counts = torch.unique(groups.to(rewards.device), return_inverse=True, return_counts=True)
    counts = counts.to(rewards.dtype)
    group_mean = torch.zeros_like(counts).index_add(0, inverse, rewards) / counts
    squares = torch.zeros_like(counts).index_add(0, inverse, (rewards - group_mean[inverse]).square())
    group_std = (squares / (counts - 1).clamp_min(1)).sqrt()
    single = counts[inverse] < 2
    centre = torch.where(single, mean, group_mean[inverse])
    scale = torch.where(single, std, group_std[inverse])
    return (rewards - centre) / (scale + eps)


def ddpo_loss(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, clip_range: float
              ) -> tuple[Tensor, dict[str, Tensor]]:
    """The clipped surrogate mean_i max(-A_i rho_i, -A_i clip(rho_i, 1 - eps, 1 + eps)), rho = exp(log_probs -
    old_log_probs), all (batch,). Returns (loss, {"approx_kl": 0.5 mean (log rho)^2, "clipfrac": fraction with
    |rho - 1| > eps, "max_log_ratio": max |log rho|}), the statistics detached."""
    log_ratio = log_probs - old_log_probs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    stats = {"approx_kl": 0.5 * log_ratio.detach().square().mean(),
             "clipfrac": ((ratio.detach() - 1).abs() > clip_range).to(ratio.dtype).mean(),
             "max_log_ratio": log_ratio.detach().abs().max()}
    return loss, stats


def ddpo_step(denoiser: Denoiser, optimizer: torch.optim.Optimizer, trajectories: Trajectories,
              advantages: Tensor, *, clip_range: float = 1e-4, adv_clip_max: float = 5.0,
              minibatch_size: int | None = None, inner_epochs: int = 1, max_grad_norm: float | None = 1.0,
              generator: torch.Generator | None = None, last_steps: int | None = None) -> dict[str, float]:
    """DDPO_IS update on collected ``trajectories`` with ``advantages`` (batch,) (clamped to +-adv_clip_max).

    For each of ``inner_epochs`` passes over a shuffled batch, each minibatch accumulates the surrogate's
    gradient over every chain step (divided by the number of steps) and takes one optimizer step; gradients
    are clipped to ``max_grad_norm`` (None: no clipping). The first minibatch sees rho = 1 (plain policy
    gradient); the clip acts from the second on. Returns the means of the loss and of ``ddpo_loss``'s stats
    ("max_log_ratio" is the maximum). ``last_steps`` = K trains only the chain's last K transitions (DPPO's
    ft_denoising_steps; None: all of them); the earlier ones are still the sampler's but get no gradient.
    """
    batch = trajectories.rewards.shape[0]
    advantages = torch.as_tensor(advantages, device=trajectories.states.device)
    if advantages.shape != (batch,) or not bool(torch.isfinite(advantages).all()):
        raise ValueError(f"advantages: expected finite values of shape ({batch},), got {tuple(advantages.shape)}")
    if not clip_range > 0:
        raise ValueError(f"clip_range: expected a positive value, got {clip_range}")
    minibatch_size = batch if minibatch_size is None else minibatch_size
    if not 1 <= minibatch_size <= batch or inner_epochs < 1:
        raise ValueError(f"minibatch_size, inner_epochs: expected 1 <= minibatch_size <= {batch} and "
                         f"inner_epochs >= 1, got {minibatch_size}, {inner_epochs}")
    advantages = advantages.clamp(-adv_clip_max, adv_clip_max).to(trajectories.log_probs.dtype)
    chain = trajectories.log_probs.shape[0]
    if last_steps is not None and not (isinstance(last_steps, int) and 1 <= last_steps <= chain):
        raise ValueError(f"last_steps: expected an integer in [1, {chain}] or None, got {last_steps!r}")
    trained = range(chain - (last_steps or chain), chain)
    steps = len(trained)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    totals: dict[str, Tensor] = {}
    count = 0
    for _ in range(inner_epochs):
        order = torch.randperm(batch, generator=generator).to(advantages.device)
        for index in order.split(minibatch_size):
            optimizer.zero_grad(set_to_none=True)
            for i in trained:
                log_probs = _step_log_prob(denoiser, trajectories, i, index)
                loss, stats = ddpo_loss(log_probs, trajectories.log_probs[i, index], advantages[index], clip_range)
                (loss / steps).backward()
                for name, value in {"loss": loss.detach(), **stats}.items():
                    totals[name] = value if name not in totals else (
                        torch.maximum(totals[name], value) if name == "max_log_ratio" else totals[name] + value)
                count += 1
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
            optimizer.step()
    return {name: float(value) if name == "max_log_ratio" else float(value) / count
            for name, value in totals.items()}
