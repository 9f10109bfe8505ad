"""DPPO (Ren et al., 2024, "Diffusion Policy Policy Optimization"): PPO over the denoising chain of a Diffusion
Policy, with the environment in the loop.

Each decision of the policy (one action chunk) is a K-step stochastic DDIM chain (eta > 0); every chain step is a
Gaussian policy whose log-probability core computes (:func:`polydiff.core.finetune.collect_trajectories`). An
iteration runs a batch of seeded environments in lockstep for one episode, records every decision's chain, gives
each decision the return of its episode from that decision on (success bonus minus the final distance to the goal,
undiscounted), standardises these per decision index (a baseline without a critic: the paper's two-level MDP
with Monte-Carlo returns in place of GAE) and takes the clipped-ratio update of
:func:`polydiff.core.finetune.ddpo_step` summed over the chain. Evaluation afterwards uses the policy's own
deterministic sampler, so "after" is measured exactly like "before".
"""

from __future__ import annotations

import numpy as np
import torch

from polydiff.core import make_grid
from polydiff.core.finetune import Trajectories, collect_trajectories, ddpo_step, normalize_advantages

from .policy import DiffusionPolicy
from .tasks import check_task, make_env

__all__ = ["dppo_finetune", "TRAIN_SEED"]

# fine-tuning episodes start at this reset seed: disjoint from the demonstrations (0...) and evaluation (100000...)
TRAIN_SEED = 500_000


def _features(policy: DiffusionPolicy, history: list[np.ndarray]) -> torch.Tensor:
    obs = np.stack(history[-policy.n_obs_steps:], axis=1)
    return torch.as_tensor(policy.obs_normalizer.normalize(obs), dtype=torch.float32).flatten(1)


def _episode(policy: DiffusionPolicy, task: str, envs: int, seed: int, grid, eta: float,
             generator: torch.Generator) -> tuple[list[Trajectories], list[np.ndarray], np.ndarray, np.ndarray]:
    """One lockstep episode; returns per-decision chains, their alive masks, per-env rewards and successes."""
    environments = [make_env(task) for _ in range(envs)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(environments)])
    history = [obs.copy() for _ in range(policy.n_obs_steps)]
    done = np.zeros(envs, bool)
    success = np.zeros(envs, bool)
    distance = np.zeros(envs)
    chains, alive = [], []
    denoiser = policy.denoiser()
    while not done.all():
        features = _features(policy, history)
        noise = torch.randn((envs, policy.action_dim, policy.horizon), generator=generator)
        chain = collect_trajectories(denoiser, noise, grid, lambda x: torch.zeros(x.shape[0]), eta=eta,
                                     cond={"cond": features}, generator=generator)
        chains.append(chain)
        alive.append(~done)
        chunk = chain.samples.clamp(-1, 1).transpose(1, 2)[:, :policy.n_action_steps]
        actions = policy.action_normalizer.unnormalize(chunk.double().numpy())
        for k in range(policy.n_action_steps):
            for i, env in enumerate(environments):
                if done[i]:
                    continue
                new_obs, _, terminated, truncated, info = env.step(actions[i, k].astype(np.float32))
                obs[i] = new_obs
                done[i] = terminated or truncated
                success[i] = bool(info.get("success", info.get("is_success", False)))
                distance[i] = float(info.get("distance", 1.0 - info.get("coverage", 0.0)))
            history.append(obs.copy())
            if done.all():
                break
    rewards = success.astype(np.float64) - distance
    return chains, alive, rewards, success


def dppo_finetune(policy: DiffusionPolicy, task: str, *, iterations: int = 20, envs: int = 32, steps: int = 10,
                  eta: float = 1.0, lr: float = 3e-5, clip_range: float = 0.05, inner_epochs: int = 2,
                  minibatch_size: int = 64, fine_tune_steps: int | None = None, seed: int = TRAIN_SEED,
                  log=None) -> list[dict]:
    """Fine-tune ``policy`` in place with DPPO on ``task`` (see the module docstring); returns one record per
    iteration (training success rate, mean reward, update statistics). The chain is DDIM with ``eta`` over a
    ``steps``-step trailing grid ending at the schedule's first training time (t > 0, where it has a density).
    ``fine_tune_steps``: only the last K chain steps enter the PPO loss (DPPO's fine-tuning of the last
    denoising steps; the network is shared, so the earlier steps move with it rather than staying frozen)."""
    check_task(task)
    if not isinstance(policy, DiffusionPolicy):
        raise ValueError(f"policy: expected a DiffusionPolicy, got {type(policy).__name__}")
    for name, value in (("iterations", iterations), ("envs", envs), ("steps", steps),
                        ("inner_epochs", inner_epochs), ("minibatch_size", minibatch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if fine_tune_steps is not None and (isinstance(fine_tune_steps, bool) or not isinstance(fine_tune_steps, int)
                                        or not 1 <= fine_tune_steps <= steps):
        raise ValueError(f"fine_tune_steps: expected None or an integer in [1, {steps}], got {fine_tune_steps!r}")
    if envs < 2:
        raise ValueError(f"envs: advantages need at least 2 environments, got {envs}")
    if not eta > 0:
        raise ValueError(f"eta: the chain must be stochastic (eta > 0), got {eta}")
    grid = make_grid(policy.schedule, steps, "trailing")
    if float(grid[-1]) <= 0:
        grid = grid.clone()
        grid[-1] = 1.0 / policy.schedule.num_train_timesteps
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(policy.unet.parameters(), lr=lr, weight_decay=0.0)
    denoiser = policy.denoiser()
    history = []
    for iteration in range(iterations):
        policy.unet.eval()
        chains, alive, rewards, success = _episode(policy, task, envs, seed + iteration * envs, grid, eta, generator)
        keep = [np.flatnonzero(mask) for mask in alive]
        states = torch.cat([c.states[:, idx] for c, idx in zip(chains, keep, strict=True)], dim=1)
        log_probs = torch.cat([c.log_probs[:, idx] for c, idx in zip(chains, keep, strict=True)], dim=1)
        features = torch.cat([c.cond["cond"][idx] for c, idx in zip(chains, keep, strict=True)])
        returns = torch.as_tensor(np.concatenate([rewards[idx] for idx in keep]), dtype=torch.float32)
        groups = torch.as_tensor(np.concatenate([np.full(len(idx), d) for d, idx in enumerate(keep)]))
        if float(returns.std()) < 1e-8:
            history.append({"iteration": iteration, "success": float(success.mean()),
                            "reward": float(rewards.mean()), "skipped": True})
            continue
        advantages = normalize_advantages(returns, groups)
        grid_used = chains[0].grid
        if fine_tune_steps is not None:  # the chain's last K transitions only
            states, log_probs = states[-(fine_tune_steps + 1):], log_probs[-fine_tune_steps:]
            grid_used = grid_used[-(fine_tune_steps + 1):]
        batch = Trajectories(states, log_probs, grid_used, returns, eta, "small", {"cond": features})
        policy.unet.train()
        stats = ddpo_step(denoiser, optimizer, batch, advantages, clip_range=clip_range,
                          minibatch_size=min(minibatch_size, len(returns)), inner_epochs=inner_epochs,
                          generator=generator)
        record = {"iteration": iteration, "success": float(success.mean()), "reward": float(rewards.mean()), **stats}
        history.append(record)
        if log is not None:
            log(record)
    policy.unet.eval()
    return history
