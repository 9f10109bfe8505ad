"""Diffuser (Janner et al., 2022, "Planning with Diffusion for Flexible Behavior Synthesis"): diffusion over whole
state-action trajectories, conditioned by inpainting.

The model is an unconditional :class:`polydiff.core.nn.UNet1D` over trajectories (batch, state_dim + action_dim,
horizon) in min-max normalised units. Planning fixes the current state at the first step and the goal position at
the last step and fills in the rest with core's RePaint sampler (:func:`polydiff.core.inverse.sample_repaint`, a
:class:`~polydiff.core.inverse.Mask` operator: the paper's "conditioning as inpainting", sec. 3.3); the planned
actions are executed for ``replan_every`` steps, then the planner replans from the new state: open loop, or with
``tracking_gain`` > 0 through a proportional tracking of the planned positions (for agents whose two actions are
the commanded velocity of their two position coordinates, as ObstacleReach's): action = planned action + gain x
(planned position - current position), clipped to the demonstrations' action range. The plan is followed as a
reference, so the drift of executing it blind does not build up over the episode.

States are the first ``state_dim`` observation features (ObstacleReach: position and velocity); the goal position
is the position plus the observation's ``goal_offset`` features (ObstacleReach: goal minus position).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from polydiff.core import Denoiser, make_grid
from polydiff.core.inverse import Mask, sample_repaint
from polydiff.core.losses import DiffusionLoss
from polydiff.core.nn import UNet1D
from polydiff.core.pretrained import PretrainedMixin
from polydiff.core.schedules import DiscreteSchedule
from polydiff.core.training import TrainConfig, Trainer

from .data import Episodes, sequence_windows
from .normalize import MinMaxNormalizer

__all__ = ["Diffuser"]


class Diffuser(nn.Module, PretrainedMixin):
    """Trajectory diffusion planner (see the module docstring).

    Args:
        state_dim: leading observation features that form the planned state (the first two are the position).
        action_dim: action size. horizon: planned steps. goal_offset: (start, stop) of the goal's offset from the
            position in obs.
        channels, time_embedding_dim: the UNet1D's. num_train_timesteps: DDPM steps (squared cosine).
        stats: min-max statistics of the joint (state, action) vector; set by ``from_episodes``.
        steps: denoising steps when planning; replan_every: actions executed per plan (``horizon``: plan once
            from the episode's start and execute the plan open loop).
        window_pad: how many steps past an episode's end a training window may reach, padded with the last state
            and zero actions (None: ``horizon - 1``, every start in the episode). A small value keeps the windows
            that start near the episode's start, so a plan from a start state to the goal is what the model
            has seen most.
        tracking_gain: the proportional gain that tracks the plan's positions when executing it (0: open loop);
            needs ``action_dim == 2`` (velocity commands of the two position coordinates).
    """

    def __init__(self, state_dim: int, action_dim: int, horizon: int = 32, goal_offset=(4, 6),
                 channels=(64, 128), time_embedding_dim: int = 32, num_train_timesteps: int = 100,
                 stats: dict | None = None, steps: int = 20, replan_every: int = 4, window_pad: int | None = None,
                 tracking_gain: float = 0.0):
        super().__init__()
        for name, value in (("state_dim", state_dim), ("action_dim", action_dim), ("horizon", horizon),
                            ("steps", steps), ("replan_every", replan_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if state_dim < 2:
            raise ValueError(f"state_dim: the first two state features are the position, got {state_dim}")
        if replan_every > horizon:
            raise ValueError(f"replan_every: {replan_every} exceeds horizon {horizon}")
        if window_pad is not None and (isinstance(window_pad, bool) or not isinstance(window_pad, int)
                                       or not 0 <= window_pad < horizon):
            raise ValueError(f"window_pad: expected None or an integer in [0, {horizon}), got {window_pad!r}")
        self.window_pad = horizon - 1 if window_pad is None else window_pad
        self.config = {"state_dim": state_dim, "action_dim": action_dim, "horizon": horizon,
                       "goal_offset": list(goal_offset), "channels": list(channels),
                       "time_embedding_dim": time_embedding_dim, "num_train_timesteps": num_train_timesteps,
                       "stats": stats, "steps": steps, "replan_every": replan_every, "window_pad": window_pad}
        self.state_dim, self.action_dim, self.horizon = state_dim, action_dim, horizon
        self.tracking_gain = tracking_gain
        self.goal_offset = slice(*goal_offset)
        self.steps, self.replan_every = steps, replan_every
        self.normalizer = MinMaxNormalizer.from_dict(stats) if stats else None
        self.unet = UNet1D(state_dim + action_dim, channels=tuple(channels), time_embedding_dim=time_embedding_dim)
        self.schedule = DiscreteSchedule.cosine(num_train_timesteps)
        self._plan: np.ndarray | None = None
        self._cursor = 0

    @property
    def tracking_gain(self) -> float:
        """The gain that tracks the plan's positions when executing it (0: open loop); settable, and saved with
        the planner."""
        return self.config["tracking_gain"]

    @tracking_gain.setter
    def tracking_gain(self, gain: float) -> None:
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not np.isfinite(gain) or gain < 0:
            raise ValueError(f"tracking_gain: expected a finite value >= 0, got {gain!r}")
        if gain and self.action_dim != 2:
            raise ValueError(f"tracking_gain: tracking needs velocity commands of the 2 position coordinates "
                             f"(action_dim 2), got action_dim {self.action_dim}")
        self.config["tracking_gain"] = float(gain)

    @classmethod
    def from_episodes(cls, episodes: Episodes, state_dim: int = 4, **kwargs) -> Diffuser:
        joint = np.concatenate([episodes.obs[:, :state_dim], episodes.action], axis=1)
        # padded windows end with zero actions; keep 0 inside the action range
        joint = np.concatenate([joint, np.concatenate([episodes.obs[:1, :state_dim],
                                                       np.zeros((1, episodes.action_dim))], axis=1)])
        return cls(state_dim, episodes.action_dim, stats=MinMaxNormalizer.fit(joint).to_dict(), **kwargs)

    def _trajectories(self, episodes: Episodes) -> Tensor:
        obs, actions = sequence_windows(episodes, self.horizon, pad_after=self.window_pad, action_pad="zero")
        joint = self.normalizer.normalize(np.concatenate([obs[..., :self.state_dim], actions], axis=-1))
        return torch.as_tensor(joint, dtype=torch.float32).transpose(1, 2)

    def fit(self, episodes: Episodes, config: TrainConfig, *, resume: bool | None = None) -> Trainer:
        """Train the trajectory model with the core Trainer (EMA weights copied in at the end)."""
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config: expected a polydiff TrainConfig, got {type(config).__name__}")
        if self.normalizer is None:
            raise ValueError("stats: the planner has no normalisation statistics; build it with from_episodes()")
        data = (self._trajectories(episodes),)
        trainer = Trainer(self.unet, DiffusionLoss(self.schedule), data, config, resume=resume).fit()
        self.unet.load_state_dict(trainer.ema_model.state_dict())
        self.unet.to("cpu")
        return trainer

    @torch.no_grad()
    def plan(self, obs, *, generator: torch.Generator | None = None, steps: int | None = None) -> np.ndarray:
        """Plan from observations (batch, obs_dim) to their goals: (batch, horizon, state_dim + action_dim) in
        data units (states first, then actions)."""
        if self.normalizer is None:
            raise ValueError("stats: the planner has no normalisation statistics; build it with from_episodes()")
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] < max(self.state_dim, self.goal_offset.stop):
            raise ValueError(f"obs: expected (batch, obs_dim >= {max(self.state_dim, self.goal_offset.stop)}), "
                             f"got {obs.shape}")
        if not np.all(np.isfinite(obs)):
            raise ValueError("obs: contains NaN or inf")
        batch, channels = obs.shape[0], self.state_dim + self.action_dim
        known = np.zeros((batch, self.horizon, channels))
        known[:, 0, :self.state_dim] = obs[:, :self.state_dim]
        known[:, -1, :2] = obs[:, :2] + obs[:, self.goal_offset]
        mask = torch.zeros(channels, self.horizon, dtype=torch.bool)
        mask[:self.state_dim, 0] = True
        mask[:2, -1] = True
        y = torch.as_tensor(self.normalizer.normalize(known), dtype=torch.float32).transpose(1, 2) * mask
        denoiser = Denoiser(self.unet, self.schedule, "eps", clip_x0=1.0)
        grid = make_grid(self.schedule, steps or self.steps, "trailing", final_zero=True)
        x = torch.randn((batch, channels, self.horizon), generator=generator)
        plan = sample_repaint(denoiser, x, grid, Mask(mask), y, jump_length=1, jump_n_sample=1, generator=generator)
        return self.normalizer.unnormalize(plan.clamp(-1, 1).transpose(1, 2).double().numpy())

    # lerobot-style interface, so the evaluation loop runs the planner like a policy
    def reset(self) -> None:
        self._plan, self._cursor = None, 0

    def select_action(self, obs, **options) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        batched = obs.ndim == 2
        obs = obs if batched else obs[None]
        if self._plan is None or self._cursor >= self.replan_every or self._plan.shape[0] != obs.shape[0]:
            self._plan, self._cursor = self.plan(obs, **options), 0
        action = self._plan[:, self._cursor, self.state_dim:]
        if self.tracking_gain:
            action = action + self.tracking_gain * (self._plan[:, self._cursor, :2] - obs[:, :2])
            action = np.clip(action, self.normalizer.low[self.state_dim:], self.normalizer.high[self.state_dim:])
        self._cursor += 1
        action = action.astype(np.float32)
        return action if batched else action[0]
