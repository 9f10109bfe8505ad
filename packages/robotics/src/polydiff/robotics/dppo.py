"""DPPO (Ren et al., 2024, "Diffusion Policy Policy Optimization"): PPO over the denoising chain of a Diffusion
Policy, with the environment in the loop.

The policy's deterministic sampler (DDIM, eta = 0, on the trailing grid ending at t = 0: the chunk every other
benchmark row is sampled with) becomes a stochastic policy by adding Gaussian noise of a fixed standard deviation
``min_std`` (DPPO's ``min_sampling_denoising_std``, 0.1 in the normalised action space) to each fine-tuned denoising
step: step k is pi_theta(x_{k+1} | x_k, obs) = N(mean_theta(x_k), min_std^2), its mean core's DDIM step
(:func:`polydiff.core.finetune.policy_mean_std`). ``fine_tune_steps=K`` fine-tunes the chain's last K steps (DPPO's
``ft_denoising_steps``): only they explore and enter the loss; the earlier steps stay deterministic (the network is
shared, so they still move with it, and training chains are always sampled by the current network, so the
behaviour policy is the one evaluated). Without the noise floor the last steps of a stochastic DDIM chain have
standard deviations of 0.02 or less, so their log-probabilities swing by hundreds of nats for a small change of the
network and PPO's ratios leave any clip range at once. Removing the noise gives back exactly the sampler evaluated
before and after fine-tuning, so "after" is measured like "before".

An iteration runs ``envs`` seeded environments in lockstep for one episode (DPPO's two-level MDP: an environment
decision is one action chunk, executed Ta steps; the chain's steps are the inner decisions). The reward is 1 at the
step that reaches the goal (the episode then ends), plus ``shaping`` times the potential-based term
d(s) - gamma d(s') of the distance d to the goal (Ng et al., 1999: it leaves the optimal policy unchanged;
ObstacleReach's ``path_distance``, the shortest path around the wall, so the potential never points into it),
discounted by ``gamma`` per environment step. A critic (an MLP on the normalised observation history) gives
generalised advantage estimates over the chunk decisions (Schulman et al., 2016), normalised over the batch; every
fine-tuned denoising step of a decision shares its advantage, down-weighted by ``gamma_denoising`` per step away
from the chain's end (DPPO's denoising discount). The actor loss is PPO's clipped surrogate on the ratio of
per-element log-probabilities averaged over the chunk (DPPO's convention; a sum over the chunk's elements would
multiply every log-ratio by their number), each element's log-density clipped below at ``log_prob_floor``;
gradients are clipped to norm ``max_grad_norm``; the actor's learning rate is below the critic's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from polydiff.core import make_grid
from polydiff.core.finetune import policy_mean_std

from .policy import DiffusionPolicy
from .tasks import check_task, make_env

__all__ = ["dppo_finetune", "chain_log_prob", "sample_chain", "TRAIN_SEED"]

# fine-tuning episodes start at this reset seed: disjoint from the demonstrations (0...) and evaluation (100000...)
TRAIN_SEED = 500_000


def _features(policy: DiffusionPolicy, history: list[np.ndarray]) -> Tensor:
    obs = np.stack(history[-policy.n_obs_steps:], axis=1)
    return torch.as_tensor(policy.obs_normalizer.normalize(obs), dtype=torch.float32).flatten(1)


def chain_log_prob(x_next: Tensor, mean: Tensor, std: float, floor: float = -5.0) -> Tensor:
    """Per-element Gaussian log-density of ``x_next`` under N(mean, std^2), clipped below at ``floor`` and
    averaged over every element but the batch's: (batch, ...) -> (batch,)."""
    element = -0.5 * ((x_next - mean) / std).square() - math.log(std) - 0.5 * math.log(2 * math.pi)
    return element.clamp_min(floor).flatten(1).mean(1)


@torch.no_grad()
def sample_chain(policy: DiffusionPolicy, features: Tensor, grid: Tensor, std: float,
                 generator: torch.Generator | None = None, first: int = 0) -> Tensor:
    """The stochastic chain from prior noise: states (steps + 1, batch, action_dim, horizon), noise of ``std``
    added at chain steps ``first``, ``first + 1``, ... only; std = 0 gives the deterministic DDIM chunk of
    ``policy.predict_action_chunk(..., solver="ddim")`` on the same grid."""
    # the policy's traced inference network when it is in eval mode (gradients are off here): the same UNet
    denoiser = policy._inference_denoiser if not policy.unet.training else policy.denoiser()
    noise = torch.randn((features.shape[0], policy.action_dim, policy.horizon), generator=generator)
    alpha, sigma = policy.schedule.alpha_sigma(grid[0])
    x = noise * float(torch.sqrt(alpha**2 + sigma**2))
    states = [x]
    for i in range(len(grid) - 1):
        mean, _ = policy_mean_std(denoiser, x, grid[i], grid[i + 1], eta=0.0, cond={"cond": features})
        x = mean + std * torch.randn(mean.shape, generator=generator) if std > 0 and i >= first else mean
        states.append(x)
    return torch.stack(states)


def _critic(width: int, hidden: int = 256) -> nn.Module:
    return nn.Sequential(nn.Linear(width, hidden), nn.Mish(), nn.Linear(hidden, hidden), nn.Mish(),
                         nn.Linear(hidden, 1))


def _potential_distance(info: dict) -> float:
    """The shaping potential's distance: the task's path length to the goal where it reports one (ObstacleReach:
    around the wall), else its straight-line distance."""
    return float(info.get("path_distance", info.get("distance", 0.0)))


def _episode(policy, task, envs, seed, grid, std, gamma, generator, first, shaping):
    """One lockstep episode. Returns per decision: states (steps + 1, n, A, H), features (n, F), env index,
    discounted chunk reward, the discount to the next decision and whether the episode ended; plus successes."""
    environments = [make_env(task) for _ in range(envs)]
    starts = [env.reset(seed=seed + i) for i, env in enumerate(environments)]
    obs = np.stack([o for o, _ in starts])
    distance = np.array([_potential_distance(info) for _, info in starts])
    history = [obs.copy() for _ in range(policy.n_obs_steps)]
    done = np.zeros(envs, bool)
    success = np.zeros(envs, bool)
    records = []
    while not done.all():
        alive = np.flatnonzero(~done)
        features = _features(policy, history)
        # the whole batch is sampled (finished environments too), so the traced network sees one shape
        states = sample_chain(policy, features, grid, std, generator, first)[:, alive]
        chunk = states[-1].clamp(-1, 1).transpose(1, 2)[:, :policy.n_action_steps]
        actions = policy.action_normalizer.unnormalize(chunk.double().numpy())
        reward, discount = np.zeros(len(alive)), np.ones(len(alive))
        for k in range(policy.n_action_steps):
            for j, i in enumerate(alive):
                if done[i]:
                    continue
                new_obs, _, terminated, truncated, info = environments[i].step(actions[j, k].astype(np.float32))
                obs[i] = new_obs
                hit = bool(info.get("success", info.get("is_success", False)))
                new_distance = _potential_distance(info)
                # potential-based shaping (Ng et al., 1999) with potential -shaping * distance to the goal
                step_reward = float(hit) + shaping * (distance[i] - gamma * new_distance)
                distance[i] = new_distance
                reward[j] += discount[j] * step_reward
                discount[j] *= gamma
                success[i] = success[i] or hit
                done[i] = terminated or truncated
            history.append(obs.copy())
            if done[alive].all():
                break
        records.append({"states": states, "features": features[alive], "env": alive, "reward": reward,
                        "discount": discount, "done": done[alive].copy()})
    for env in environments:
        env.close()
    return records, success


def _gae(records, values: Tensor, envs: int, lam: float) -> tuple[Tensor, Tensor]:
    """Advantages and lambda-returns per decision (in the concatenated order of ``records``)."""
    index, offset = {}, 0
    for d, record in enumerate(records):
        for j, i in enumerate(record["env"]):
            index[(d, int(i))] = offset + j
        offset += len(record["env"])
    advantages = torch.zeros(offset)
    for i in range(envs):
        steps = [(d, index[(d, i)]) for d in range(len(records)) if (d, i) in index]
        running = 0.0
        for n, (d, flat) in reversed(list(enumerate(steps))):
            j = int(np.flatnonzero(records[d]["env"] == i)[0])
            ended = bool(records[d]["done"][j])
            next_value = 0.0 if ended or n + 1 == len(steps) else float(values[steps[n + 1][1]])
            discount = float(records[d]["discount"][j])
            delta = float(records[d]["reward"][j]) + discount * next_value - float(values[flat])
            running = delta + (0.0 if ended else discount * lam * running)
            advantages[flat] = running
    return advantages, advantages + values


def _check_positive(name: str, value, integer: bool = True) -> None:
    bad = isinstance(value, bool) or (not isinstance(value, int) if integer else not isinstance(value, (int, float)))
    if bad or not value > 0:
        raise ValueError(f"{name}: expected a positive {'integer' if integer else 'number'}, got {value!r}")


def dppo_finetune(policy: DiffusionPolicy, task: str, *, iterations: int = 20, envs: int = 50, steps: int = 10,
                  min_std: float = 0.1, lr: float = 1e-5, critic_lr: float = 1e-3, clip_range: float = 0.01,
                  update_epochs: int = 5, minibatch_size: int = 128, fine_tune_steps: int | None = None,
                  gamma: float = 0.99, gae_lambda: float = 0.95, gamma_denoising: float = 0.99,
                  log_prob_floor: float = -5.0, max_grad_norm: float = 1.0, shaping: float = 0.0,
                  seed: int = TRAIN_SEED,
                  log=None, callback=None) -> list[dict]:
    """Fine-tune ``policy`` in place with DPPO on ``task`` (see the module docstring); returns one record per
    iteration (training success rate of its exploring episodes, update statistics). ``steps``: the DDIM chain's
    length (the evaluated sampler's, on its trailing grid ending at t = 0). ``callback(record)``, if given, runs
    after each iteration with the policy in eval mode (e.g. a validation rollout and a checkpoint)."""
    check_task(task)
    if not isinstance(policy, DiffusionPolicy):
        raise ValueError(f"policy: expected a DiffusionPolicy, got {type(policy).__name__}")
    for name, value in (("iterations", iterations), ("envs", envs), ("steps", steps),
                        ("update_epochs", update_epochs), ("minibatch_size", minibatch_size)):
        _check_positive(name, value)
    for name, value in (("min_std", min_std), ("lr", lr), ("critic_lr", critic_lr), ("clip_range", clip_range),
                        ("max_grad_norm", max_grad_norm)):
        _check_positive(name, value, integer=False)
    if isinstance(shaping, bool) or not isinstance(shaping, (int, float)) or not shaping >= 0:
        raise ValueError(f"shaping: expected a non-negative number, got {shaping!r}")
    for name, value in (("gamma", gamma), ("gae_lambda", gae_lambda), ("gamma_denoising", gamma_denoising)):
        if not 0 < value <= 1:
            raise ValueError(f"{name}: expected a value in (0, 1], got {value!r}")
    if fine_tune_steps is not None and (isinstance(fine_tune_steps, bool) or not isinstance(fine_tune_steps, int)
                                        or not 1 <= fine_tune_steps <= steps):
        raise ValueError(f"fine_tune_steps: expected None or an integer in [1, {steps}], got {fine_tune_steps!r}")
    if envs < 2:
        raise ValueError(f"envs: advantages need at least 2 environments, got {envs}")
    tuned = steps if fine_tune_steps is None else fine_tune_steps
    grid = make_grid(policy.schedule, steps, "trailing", final_zero=True)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = _critic(policy.n_obs_steps * policy.obs_dim)
    actor_opt = torch.optim.AdamW(policy.unet.parameters(), lr=lr, weight_decay=0.0)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=critic_lr, weight_decay=0.0)
    denoiser = policy.denoiser()
    first = steps - tuned  # chain steps first .. steps - 1 are fine-tuned
    weights = torch.tensor([gamma_denoising ** (steps - 1 - k) for k in range(first, steps)])
    history = []
    for iteration in range(iterations):
        policy.unet.eval()
        records, success = _episode(policy, task, envs, seed + iteration * envs, grid, min_std, gamma, generator,
                                    first, shaping)
        states = torch.cat([r["states"] for r in records], dim=1)  # (steps + 1, n, A, H)
        features = torch.cat([r["features"] for r in records])
        n = features.shape[0]
        with torch.no_grad():
            if iteration == 0:  # a fresh critic: fit it to this batch's Monte-Carlo returns first
                _, mc = _gae(records, torch.zeros(n), envs, 1.0)
                _fit_critic(critic, critic_opt, features, mc, 200, minibatch_size, generator)
            values = critic(features).squeeze(1)
            old = torch.stack([chain_log_prob(states[k + 1], policy_mean_std(
                denoiser, states[k], grid[k], grid[k + 1], eta=0.0, cond={"cond": features})[0], min_std,
                log_prob_floor) for k in range(first, steps)])  # (tuned, n)
        advantages, returns = _gae(records, values, envs, gae_lambda)
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy.unet.train()
        stats = {"loss": 0.0, "approx_kl": 0.0, "clipfrac": 0.0, "critic_loss": 0.0}
        count = 0
        for _ in range(update_epochs):
            for index in torch.randperm(n, generator=generator).split(minibatch_size):
                actor_opt.zero_grad(set_to_none=True)
                for j, k in enumerate(range(first, steps)):
                    mean, _ = policy_mean_std(denoiser, states[k][index], grid[k], grid[k + 1], eta=0.0,
                                              cond={"cond": features[index]})
                    log_ratio = chain_log_prob(states[k + 1][index], mean, min_std, log_prob_floor) - old[j, index]
                    ratio = log_ratio.exp()
                    a = adv[index] * weights[j]
                    loss = torch.maximum(-a * ratio, -a * ratio.clamp(1 - clip_range, 1 + clip_range)).mean()
                    (loss / tuned).backward()
                    stats["loss"] += float(loss.detach())
                    stats["approx_kl"] += float(((ratio - 1) - log_ratio).detach().mean())
                    stats["clipfrac"] += float(((ratio.detach() - 1).abs() > clip_range).float().mean())
                    count += 1
                nn.utils.clip_grad_norm_(policy.unet.parameters(), max_grad_norm)
                actor_opt.step()
                critic_opt.zero_grad(set_to_none=True)
                critic_loss = (critic(features[index]).squeeze(1) - returns[index]).square().mean()
                critic_loss.backward()
                nn.utils.clip_grad_norm_(critic.parameters(), max_grad_norm)
                critic_opt.step()
                stats["critic_loss"] += float(critic_loss.detach()) * tuned
        record = {"iteration": iteration, "success": float(success.mean()), "decisions": n,
                  **{k: v / max(count, 1) for k, v in stats.items()}}
        history.append(record)
        if log is not None:
            log(record)
        if callback is not None:
            policy.eval()
            callback(record)
    policy.eval()  # also drops the traced inference graph recorded before fine-tuning
    return history


def _fit_critic(critic, optimizer, features, targets, updates, minibatch_size, generator) -> None:
    with torch.enable_grad():
        for _ in range(updates):
            index = torch.randint(features.shape[0], (min(minibatch_size, features.shape[0]),), generator=generator)
            optimizer.zero_grad(set_to_none=True)
            (critic(features[index]).squeeze(1) - targets[index]).square().mean().backward()
            optimizer.step()
