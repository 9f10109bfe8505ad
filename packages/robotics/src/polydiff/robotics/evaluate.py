"""Seeded closed-loop evaluation: run a policy on a batch of environments in lockstep and report the field's
metrics (success rate, ObstacleReach's left-mode share, Push-T's final coverage), plus the latency of one chunk."""

from __future__ import annotations

import numpy as np
import torch

from .tasks import check_task, make_env

__all__ = ["rollout", "chunk_latency_ms", "EVAL_SEED"]

# evaluation episodes start at this reset seed; demonstrations use seeds from 0 upwards, so the default workflow
# never evaluates on the starts it trained on
EVAL_SEED = 100_000


def rollout(policy, task: str, episodes: int = 50, *, seed: int = EVAL_SEED, act=None, render: int = 0,
            torch_seed: int = 0, obs: str | None = None, **options) -> dict:
    """Run ``episodes`` episodes (reset seeds seed, seed + 1, ...) in lockstep, the policy acting on the batch.

    policy: anything with ``reset()`` and ``select_action(obs (batch, obs_dim), **options)``; or pass ``act``,
        a callable ``act(obs (batch, obs_dim), envs) -> actions (batch, action_dim)`` (used by planners).
    render: record frames of the first ``render`` episodes (``env.render()``; for videos).
    obs: the environments' observation mode ("state" or "image", ObstacleReach); by default the policy's
        ``obs_mode`` ("image" for the image policies), else "state". Image observations reach the policy as one
        dict of batches {"pixels": (batch, H, W, 3), "state": (batch, S)}.
    Returns {"success", "mode_left" (share of episodes that passed the wall on the left, ObstacleReach),
    "overlap" (mean final coverage, Push-T), "final_distance" (mean final object-goal distance, Pusher),
    "per_episode": {...}, "paths": [(steps, 2) agent positions (Pusher: the object's)],
    "frames": [...]}.
    """
    check_task(task)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes: expected a positive integer, got {episodes!r}")
    torch.manual_seed(torch_seed)
    obs = obs or getattr(policy, "obs_mode", "state")
    image = {} if obs == "state" else {"obs": obs, "image_size": policy.image_size}
    envs = [make_env(task, **image, **({"render_mode": "rgb_array"} if i < render else {}))
            for i in range(episodes)]
    first = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    observations = {k: np.stack([o[k] for o in first]) for k in first[0]} if image else np.stack(first)
    if act is None:
        policy.reset()
    done = np.zeros(episodes, bool)
    infos: list[dict] = [{} for _ in envs]
    where = slice(17, 19) if task == "pusher" else slice(0, 2)  # the object's position on Pusher-v5
    states = observations["state"] if image else observations  # the agent's position is in both
    paths = [[state[where].copy()] for state in states]
    frames: list[list] = [[env.render()] for env in envs[:render]]
    while not done.all():
        actions = act(observations, envs) if act is not None else policy.select_action(observations, **options)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            new, _, terminated, truncated, info = env.step(np.asarray(actions[i], dtype=np.float32))
            if image:
                for key in observations:
                    observations[key][i] = new[key]
            else:
                observations[i] = new
            infos[i] = info
            paths[i].append(states[i][where].copy())
            done[i] = terminated or truncated
            if i < render:
                frames[i].append(env.render())
    for env in envs:
        env.close()
    success = np.array([bool(info.get("success", info.get("is_success", False))) for info in infos])
    result = {"success": float(success.mean()), "per_episode": {"success": success.tolist()},
              "paths": [np.array(p) for p in paths], "frames": frames}
    if task == "obstacle":
        sides = np.array([info["side"] for info in infos])
        result["mode_left"] = float(np.mean(sides == -1))
        result["mode_right"] = float(np.mean(sides == 1))
        result["per_episode"]["side"] = sides.tolist()
    elif task == "pusher":
        distance = np.array([float(info["distance"]) for info in infos])
        result["final_distance"] = float(distance.mean())
        result["per_episode"]["distance"] = distance.tolist()
    else:
        coverage = np.array([float(info.get("coverage", 0.0)) for info in infos])
        result["overlap"] = float(coverage.mean())
        result["per_episode"]["coverage"] = coverage.tolist()
    return result


def chunk_latency_ms(policy, repeats: int = 21, **options) -> float:
    """Median milliseconds of one ``predict_action_chunk`` (batch 1; an image policy's encoder included), counted as this process's CPU time on the
    current torch thread count (1 in the benchmark): the compute one chunk costs, unaffected by other processes
    holding the CPU while it waits."""
    import statistics
    import time

    obs = policy.example_observation() if hasattr(policy, "example_observation") else \
        np.zeros((policy.n_obs_steps, policy.obs_dim))
    for _ in range(2):
        policy.predict_action_chunk(obs, **options)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        policy.predict_action_chunk(obs, **options)
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)
