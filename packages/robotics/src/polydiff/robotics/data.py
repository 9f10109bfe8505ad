"""Episode datasets: demonstrations as flat ``obs``, ``action`` arrays cut by ``episode_ends`` (the replay-buffer
layout of Diffusion Policy), stored as ``.npz``; and the padded sequence windows the policies train on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Episodes", "sequence_windows", "collect_demos", "expert_episode", "load_episodes"]


@dataclass(frozen=True)
class Episodes:
    """obs: (steps, obs_dim); action: (steps, action_dim); episode_ends: (episodes,) increasing exclusive ends,
    the last equal to steps; meta: JSON-able per-dataset facts (task, expert, modes...); images: None, or the
    camera frames of image observations (steps, height, width, 3) uint8, ``obs`` then holding the proprioception
    recorded with them."""

    obs: np.ndarray
    action: np.ndarray
    episode_ends: np.ndarray
    meta: dict = field(default_factory=dict)
    images: np.ndarray | None = None

    def __post_init__(self):
        obs, action = np.asarray(self.obs, np.float64), np.asarray(self.action, np.float64)
        ends = np.asarray(self.episode_ends, np.int64)
        if obs.ndim != 2 or obs.shape[0] == 0:
            raise ValueError(f"obs: expected a non-empty (steps, obs_dim) array, got shape {obs.shape}")
        if action.ndim != 2 or action.shape[0] != obs.shape[0]:
            raise ValueError(f"action: expected shape ({obs.shape[0]}, action_dim), got {action.shape}")
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(action))):
            raise ValueError("obs, action: contain NaN or inf")
        if ends.ndim != 1 or ends.size == 0 or ends[-1] != obs.shape[0] or np.any(np.diff(ends) <= 0) or ends[0] <= 0:
            raise ValueError(f"episode_ends: expected increasing positive ends finishing at {obs.shape[0]}")
        if self.images is not None:
            images = np.asarray(self.images)
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != obs.shape[0] \
                    or images.shape[-1] != 3:
                raise ValueError(f"images: expected ({obs.shape[0]}, height, width, 3) uint8 frames, got "
                                 f"{images.dtype} {images.shape}")
            object.__setattr__(self, "images", images)
        object.__setattr__(self, "obs", obs)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "episode_ends", ends)

    def __len__(self) -> int:
        return self.episode_ends.size

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        return self.action.shape[1]

    def episode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start = 0 if i == 0 else self.episode_ends[i - 1]
        return self.obs[start:self.episode_ends[i]], self.action[start:self.episode_ends[i]]

    def subset(self, indices) -> Episodes:
        """The episodes at ``indices``, in that order (meta lists of per-episode values are subset too)."""
        indices = [int(i) for i in indices]
        if not indices or any(not 0 <= i < len(self) for i in indices):
            raise ValueError(f"indices: expected episode indices in [0, {len(self)}), got {indices[:5]}...")
        parts = [self.episode(i) for i in indices]
        meta = {k: ([v[i] for i in indices] if isinstance(v, list) and len(v) == len(self) else v)
                for k, v in self.meta.items()}
        images = None
        if self.images is not None:
            starts = [0 if i == 0 else self.episode_ends[i - 1] for i in indices]
            images = np.concatenate([self.images[s:self.episode_ends[i]] for s, i in zip(starts, indices, strict=True)])
        return Episodes(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        np.cumsum([len(p[0]) for p in parts]), meta, images)

    def save(self, path, *, force: bool = False) -> Path:
        """Write ``path`` (.npz) atomically; an existing file is kept unless ``force``."""
        import json

        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"path: expected a .npz file name, got {str(path)!r}")
        if path.exists() and not force:
            raise ValueError(f"path: {path} exists; pass force=True (--force) to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
        extra = {} if self.images is None else {"images": self.images}
        np.savez_compressed(tmp, obs=self.obs, action=self.action, episode_ends=self.episode_ends,
                            meta=np.array(json.dumps(self.meta)), **extra)
        os.replace(tmp, path)
        return path


def load_episodes(path) -> Episodes:
    """Read an episode dataset written by :meth:`Episodes.save`."""
    import json

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path: expected a .npz file, got {str(path)!r}")
    if not path.is_file():
        raise ValueError(f"path: {path} does not exist")
    with np.load(path, allow_pickle=False) as data:
        missing = {"obs", "action", "episode_ends"} - set(data.files)
        if missing:
            raise ValueError(f"path: {path} lacks the arrays {sorted(missing)}")
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        images = data["images"] if "images" in data.files else None
        return Episodes(data["obs"], data["action"], data["episode_ends"], meta, images)


def sequence_windows(episodes: Episodes, horizon: int, pad_before: int = 0, pad_after: int = 0,
                     action_pad: str = "edge") -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``horizon`` consecutive steps inside each episode, allowed to start up to ``pad_before``
    steps before its first step and to end up to ``pad_after`` steps after its last (Diffusion Policy's
    ``SequenceSampler``). Out-of-episode steps repeat the episode's first / last observation; actions before the
    start repeat the first action, after the end the last action (``action_pad="edge"``) or zeros ("zero").

    Returns obs windows (windows, horizon, obs_dim) and action windows (windows, horizon, action_dim); windows
    never cross episodes.
    """
    for name, value, low in (("horizon", horizon, 1), ("pad_before", pad_before, 0), ("pad_after", pad_after, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if action_pad not in ("edge", "zero"):
        raise ValueError(f"action_pad: expected 'edge' or 'zero', got {action_pad!r}")
    obs_windows, action_windows = [], []
    for i in range(len(episodes)):
        obs, action = episodes.episode(i)
        length = len(obs)
        index = np.arange(-pad_before, length - horizon + pad_after + 1)
        if index.size == 0:
            continue
        steps = index[:, None] + np.arange(horizon)[None, :]
        clipped = np.clip(steps, 0, length - 1)
        obs_windows.append(obs[clipped])
        acts = action[clipped]
        if action_pad == "zero":
            acts = np.where((steps >= length)[..., None], 0.0, acts)
        action_windows.append(acts)
    if not obs_windows:
        raise ValueError(f"horizon: {horizon} is longer than every episode even with padding")
    return np.concatenate(obs_windows), np.concatenate(action_windows)


def collect_demos(task: str, episodes: int, *, seed: int = 0, noise: float = 0.0, perturb: float = 0.0,
                  progress: bool = False, obs: str = "state", image_size: int = 64) -> Episodes:
    """Roll out the task's expert for ``episodes`` seeded episodes (reset seeds seed, seed + 1, ...) and keep
    the successful ones' observations and actions. meta: task, seed, noise, perturb, attempts, per-episode
    ``mode`` (ObstacleReach: -1 left / +1 right), ``expert_version`` (``tasks.expert_version``).

    noise: Gaussian noise (std) on the recorded and executed actions (deliberately imperfect demonstrations).
    perturb: Gaussian noise (std) on the executed action only, the clean expert action being recorded (DART,
        Laskey et al., 2017): the demonstrations then visit the states a slightly-off policy reaches (past the
        goal, off the path) and show how the expert recovers from them, and the recorded action no longer equals
        the velocity the agent already has, so a policy cannot score by copying its own past motion.
    obs: "state", or "image" (ObstacleReach only): the episodes keep the camera frames (``images``) and the
        agent's proprioception (``obs``, 4) that a policy sees; the expert still acts on the full state. The
        episodes are the same as the state demonstrations of the same seeds."""
    from .tasks import make_env, make_expert

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes: expected a positive integer, got {episodes!r}")
    if not (isinstance(perturb, (int, float)) and np.isfinite(perturb) and perturb >= 0):
        raise ValueError(f"perturb: expected a finite value >= 0, got {perturb!r}")
    if obs != "state" and task != "obstacle":
        raise ValueError(f"obs: image observations exist for the 'obstacle' task only, got obs={obs!r} for {task!r}")
    env = make_env(task) if obs == "state" else make_env(task, obs=obs, image_size=image_size)
    expert = make_expert(task, noise=noise)
    all_obs, all_actions, all_images, ends, modes, kept = [], [], [], [], [], 0
    attempt = 0
    bar = None
    if progress:
        from polydiff.core.progress import progress_bar

        bar = progress_bar(total=episodes, desc=f"{task} demos", leave=False)
    while kept < episodes:
        if attempt > 10 * episodes + 10:
            raise RuntimeError(f"collect_demos: the {task} expert succeeded only {kept} times in {attempt} tries")
        ep_obs, ep_actions, info = expert_episode(task, seed + attempt, perturb=perturb, env=env, expert=expert)
        attempt += 1
        if not info.get("success", False):
            continue
        if isinstance(ep_obs, dict):
            all_images.append(ep_obs["pixels"])
            ep_obs = ep_obs["state"]
        all_obs.append(ep_obs)
        all_actions.append(ep_actions)
        ends.append(sum(len(o) for o in all_obs))
        modes.append(int(info.get("side", 0)))
        kept += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    env.close()
    meta = {"task": task, "seed": seed, "noise": noise, "perturb": float(perturb), "attempts": attempt, "mode": modes,
            "expert_version": int(getattr(expert, "version", 1))}
    if obs != "state":
        meta.update(obs=obs, image_size=image_size)
    return Episodes(np.concatenate(all_obs), np.concatenate(all_actions), np.array(ends), meta,
                    np.concatenate(all_images) if all_images else None)


def expert_episode(task: str, seed: int, *, noise: float = 0.0, perturb: float = 0.0, env=None, expert=None):
    """One expert episode from reset seed ``seed`` (the expert reset with the same seed): its observations
    (steps, obs_dim), recorded actions (steps, action_dim) and the last step's info (``success``...). ``env`` and
    ``expert`` may be passed in to reuse them. ``collect_demos`` keeps the successful ones, in seed order. With
    image observations (an env made with ``obs="image"``) the observations are {"pixels": (steps, H, W, 3) uint8,
    "state": (steps, 4)} and the expert acts on ``info["full_state"]``."""
    from .tasks import make_env, make_expert

    own = env is None
    env = make_env(task) if env is None else env
    expert = make_expert(task, noise=noise) if expert is None else expert
    obs, info = env.reset(seed=seed)
    expert.reset(seed=seed)
    shake = np.random.default_rng([seed, 1])
    ep_obs, ep_actions = [], []
    done = False
    while not done:
        action = expert(info["full_state"] if isinstance(obs, dict) else obs)
        ep_obs.append(obs if isinstance(obs, dict) else np.asarray(obs, np.float64))
        ep_actions.append(np.asarray(action, np.float64))
        if perturb:
            low, high = env.action_space.low, env.action_space.high
            action = np.clip(action + perturb * shake.standard_normal(action.shape), low, high).astype(np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    if own:
        env.close()
    if "success" not in info:
        info = {**info, "success": bool(info.get("is_success", False))}
    if isinstance(ep_obs[0], dict):
        return ({"pixels": np.stack([o["pixels"] for o in ep_obs]),
                 "state": np.stack([o["state"] for o in ep_obs]).astype(np.float64)}, np.stack(ep_actions), info)
    return np.stack(ep_obs), np.stack(ep_actions), info
