"""Policies with lerobot's interface: Diffusion Policy (Chi et al., 2023) and the regression baselines.

Every policy sees the last ``n_obs_steps`` (To) observations and acts through an action queue:

    policy = DiffusionPolicy.from_pretrained("policy/")
    policy.reset()
    action = policy.select_action(obs)          # (action_dim,) or (batch, action_dim)
    chunk = policy.predict_action_chunk(obs_history)  # (n_action_steps, action_dim)

Diffusion Policy denoises a chunk of ``horizon`` (Tp) normalised actions with :class:`polydiff.core.nn.UNet1D`,
FiLM-conditioned on the flattened normalised observation history. The chunk starts at the current step (the
step of the newest observation; the paper's chunk also covers the To - 1 past steps, which are never executed) and
its first Ta = ``n_action_steps`` actions are executed (receding horizon). It is trained with the core
:class:`~polydiff.core.training.Trainer` on :class:`~polydiff.core.losses.DiffusionLoss` (eps prediction, a
100-step squared-cosine DDPM schedule as in the paper) and sampled by :func:`polydiff.core.sample`, so every core
solver runs it unchanged. The baselines regress the executed actions directly (MSE): ``n_action_steps=1`` is
plain behaviour cloning, ``n_action_steps=Ta`` the chunked MLP.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import Tensor, nn

from polydiff.core import Denoiser, sample
from polydiff.core.losses import DiffusionLoss
from polydiff.core.nn import TracedNetwork, UNet1D
from polydiff.core.pretrained import PretrainedMixin
from polydiff.core.schedules import DiscreteSchedule
from polydiff.core.training import TrainConfig, Trainer

from .data import Episodes, sequence_windows
from .normalize import MinMaxNormalizer

__all__ = ["DiffusionPolicy", "MLPPolicy", "load_policy"]


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


class _ChunkPolicy(nn.Module, PretrainedMixin):
    """Observation history, normalisation, the action queue and training windows, shared by every policy."""

    def _setup(self, obs_dim, action_dim, n_obs_steps, n_action_steps, obs_stats, action_stats):
        _check_int("obs_dim", obs_dim)
        _check_int("action_dim", action_dim)
        _check_int("n_obs_steps", n_obs_steps)
        _check_int("n_action_steps", n_action_steps)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.n_obs_steps, self.n_action_steps = n_obs_steps, n_action_steps
        self.obs_normalizer = MinMaxNormalizer.from_dict(obs_stats) if obs_stats else None
        self.action_normalizer = MinMaxNormalizer.from_dict(action_stats) if action_stats else None
        for name, normalizer, dim in (("obs_stats", self.obs_normalizer, obs_dim),
                                      ("action_stats", self.action_normalizer, action_dim)):
            if normalizer is not None and normalizer.dim != dim:
                raise ValueError(f"{name}: has {normalizer.dim} features, expected {dim}")
        self._history: deque = deque(maxlen=n_obs_steps)
        self._queue: deque = deque()
        self._batched = False

    # -------------------------------------------------------------- lerobot interface
    def reset(self) -> None:
        """Forget the observation history and the queued actions (call at every episode start)."""
        self._history.clear()
        self._queue.clear()

    def _check_obs(self, obs, trailing: tuple, name: str = "obs") -> np.ndarray:
        array = obs.detach().cpu().numpy() if isinstance(obs, Tensor) else np.asarray(obs)
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{name}: expected numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
        if array.shape[-len(trailing):] != trailing or array.ndim not in (len(trailing), len(trailing) + 1):
            raise ValueError(f"{name}: expected shape {trailing} or (batch, {', '.join(map(str, trailing))}), "
                             f"got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name}: contains NaN or inf")
        return array

    @torch.no_grad()
    def select_action(self, obs, **options) -> np.ndarray:
        """One action for the current observation (obs_dim,) or a batch (batch, obs_dim). The history is padded
        with the first observation after ``reset()``; a chunk of ``n_action_steps`` actions is predicted when the
        queue is empty and then served one per call."""
        array = self._check_obs(obs, (self.obs_dim,))
        batched = array.ndim == 2
        array = array if batched else array[None]
        if self._history and self._history[-1].shape != array.shape:
            raise ValueError(f"obs: batch changed from {self._history[-1].shape[0]} to {array.shape[0]} without "
                             "reset()")
        if not self._history:
            self._history.extend([array] * self.n_obs_steps)
        else:
            self._history.append(array)
        if not self._queue:
            chunk = self.predict_action_chunk(np.stack(list(self._history), axis=1), **options)
            self._queue.extend(np.moveaxis(chunk, 1, 0))
        action = self._queue.popleft()
        return action if batched else action[0]

    @torch.no_grad()
    def predict_action_chunk(self, obs, **options) -> np.ndarray:
        """The next ``n_action_steps`` actions from an observation history (n_obs_steps, obs_dim) or a batch
        (batch, n_obs_steps, obs_dim) -> (n_action_steps, action_dim) or (batch, n_action_steps, action_dim)."""
        if self.obs_normalizer is None or self.action_normalizer is None:
            raise ValueError("policy: not fitted (no normalisation statistics); build it with from_episodes()")
        array = self._check_obs(obs, (self.n_obs_steps, self.obs_dim))
        batched = array.ndim == 3
        array = array if batched else array[None]
        features = torch.as_tensor(self.obs_normalizer.normalize(array), dtype=torch.float32).flatten(1)
        actions = self._predict_normalized(features, **options)  # (batch, n_action_steps, action_dim)
        actions = self.action_normalizer.unnormalize(actions.clamp(-1, 1).double().cpu().numpy())
        return (actions if batched else actions[0]).astype(np.float32)

    # -------------------------------------------------------------- training
    @classmethod
    def _stats(cls, episodes: Episodes) -> dict:
        if not isinstance(episodes, Episodes):
            raise ValueError(f"episodes: expected an Episodes dataset, got {type(episodes).__name__}")
        return {"obs_dim": episodes.obs_dim, "action_dim": episodes.action_dim,
                "obs_stats": MinMaxNormalizer.fit(episodes.obs).to_dict(),
                "action_stats": MinMaxNormalizer.fit(episodes.action).to_dict()}

    def _windows(self, episodes: Episodes, horizon: int) -> tuple[Tensor, Tensor]:
        """(features (windows, To * obs_dim), normalised actions (windows, horizon, action_dim)) with actions
        starting at the window's last observation step."""
        if episodes.obs_dim != self.obs_dim or episodes.action_dim != self.action_dim:
            raise ValueError(f"episodes: obs/action dims {episodes.obs_dim}/{episodes.action_dim} differ from the "
                             f"policy's {self.obs_dim}/{self.action_dim}")
        to = self.n_obs_steps
        obs, actions = sequence_windows(episodes, to - 1 + horizon, pad_before=to - 1,
                                        pad_after=self.n_action_steps - 1)
        features = torch.as_tensor(self.obs_normalizer.normalize(obs[:, :to]), dtype=torch.float32).flatten(1)
        targets = torch.as_tensor(self.action_normalizer.normalize(actions[:, to - 1:]), dtype=torch.float32)
        return features, targets

    def fit(self, episodes: Episodes, config: TrainConfig, *, resume: bool | None = None) -> Trainer:
        """Train on ``episodes`` with the core Trainer (EMA weights, when configured, are copied into the policy
        at the end). Returns the trainer (its ``checkpoint_dir`` lets an interrupted run resume exactly)."""
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config: expected a polydiff TrainConfig, got {type(config).__name__}")
        network, loss_fn, data = self._training_parts(episodes)
        trainer = Trainer(network, loss_fn, data, config, resume=resume).fit()
        network.load_state_dict(trainer.ema_model.state_dict())
        network.to("cpu")
        self.train_steps = trainer.step
        return trainer


class _WindowData(torch.utils.data.Dataset):
    """(features, targets) windows as dict batches {"x0": targets, "cond": {"cond": features}}."""

    def __init__(self, features: Tensor, targets: Tensor):
        self.features, self.targets = features, targets

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"x0": self.targets[i], "cond": {"cond": self.features[i]}}


class DiffusionPolicy(_ChunkPolicy):
    """Diffusion Policy, CNN variant with global observation conditioning (Chi et al., 2023, sec. 3.2-3.3).

    Args:
        obs_dim, action_dim: sizes of one observation and one action.
        n_obs_steps: To, observations conditioned on. horizon: Tp, actions denoised per chunk.
        n_action_steps: Ta, actions executed per chunk (Ta <= Tp).
        channels, time_embedding_dim, kernel_size, n_groups: the UNet1D's (smaller than the paper's
            (256, 512, 1024) so that a 10-step chunk takes a few milliseconds on one CPU thread).
        num_train_timesteps: the DDPM schedule's steps (squared-cosine betas, as the paper).
        obs_stats, action_stats: min-max statistics (``MinMaxNormalizer.to_dict()``); set by ``from_episodes``.
        solver, steps, grid: the default sampler (any name from ``polydiff.core.list_solvers()``); the grid ends
            at t = 0, so the last step returns the denoised chunk.
        prediction: what the UNet predicts, "eps" (the noise, the paper's default) or "x0" (the clean chunk,
            the paper's ``prediction_type="sample"``).
    """

    def __init__(self, obs_dim: int, action_dim: int, n_obs_steps: int = 2, horizon: int = 16,
                 n_action_steps: int = 8, channels=(32, 64), time_embedding_dim: int = 32, kernel_size: int = 5,
                 n_groups: int = 8, num_train_timesteps: int = 100, obs_stats: dict | None = None,
                 action_stats: dict | None = None, solver: str = "ddim", steps: int = 10, grid: str = "trailing",
                 prediction: str = "eps"):
        super().__init__()
        self._setup(obs_dim, action_dim, n_obs_steps, n_action_steps, obs_stats, action_stats)
        if prediction not in ("eps", "x0"):
            raise ValueError(f"prediction: expected 'eps' (the paper's) or 'x0' (the chunk itself), got {prediction!r}")
        self.prediction = prediction
        _check_int("horizon", horizon)
        _check_int("num_train_timesteps", num_train_timesteps, 2)
        _check_int("steps", steps)
        if n_action_steps > horizon:
            raise ValueError(f"n_action_steps: Ta = {n_action_steps} exceeds horizon {horizon}")
        self.horizon = horizon
        self.config = {"obs_dim": obs_dim, "action_dim": action_dim, "n_obs_steps": n_obs_steps,
                       "horizon": horizon, "n_action_steps": n_action_steps, "channels": list(channels),
                       "time_embedding_dim": time_embedding_dim, "kernel_size": kernel_size, "n_groups": n_groups,
                       "num_train_timesteps": num_train_timesteps, "obs_stats": obs_stats,
                       "action_stats": action_stats, "solver": solver, "steps": steps, "grid": grid,
                       "prediction": prediction}
        self.unet = UNet1D(action_dim, channels=tuple(channels), cond_dim=n_obs_steps * obs_dim,
                           time_embedding_dim=time_embedding_dim, kernel_size=kernel_size, n_groups=n_groups)
        self.schedule = DiscreteSchedule.cosine(num_train_timesteps)
        self.solver, self.steps, self.grid = solver, steps, grid
        self._traced = TracedNetwork(self.unet)
        self._inference_denoiser = Denoiser(self._traced, self.schedule, self.prediction, clip_x0=1.0)

    def train(self, mode: bool = True) -> DiffusionPolicy:
        self._traced.clear()  # a mode change (and every fit) re-records the inference graph
        return super().train(mode)

    @classmethod
    def from_episodes(cls, episodes: Episodes, **kwargs) -> DiffusionPolicy:
        """A policy sized and normalised for ``episodes`` (kwargs: the constructor's other arguments)."""
        return cls(**cls._stats(episodes), **kwargs)

    def denoiser(self, clip: bool = True) -> Denoiser:
        """The core Denoiser over normalised action chunks (batch, action_dim, horizon), cond={"cond": features}.
        ``clip`` clamps the x0 prediction to the normalised range [-1, 1] (the paper's ``clip_sample``)."""
        return Denoiser(self.unet, self.schedule, self.prediction, clip_x0=1.0 if clip else None)

    def _training_parts(self, episodes):
        features, targets = self._windows(episodes, self.horizon)
        return (self.unet, DiffusionLoss(self.schedule, prediction=self.prediction),
                _WindowData(features, targets.transpose(1, 2)))

    def _predict_normalized(self, features: Tensor, *, solver: str | None = None, steps: int | None = None,
                            grid=None, generator: torch.Generator | None = None, **options) -> Tensor:
        noise = torch.randn((features.shape[0], self.action_dim, self.horizon), generator=generator)
        solver = solver or self.solver
        if solver in ("ddpm", "ddim", "euler_ancestral", "dpmpp_2m_sde") and generator is not None:
            options["generator"] = generator
        chunk = sample(self._inference_denoiser, noise, solver, steps or self.steps, grid if grid is not None else self.grid,
                       final_zero=True, cond={"cond": features}, **options)
        # the chunk starts at the current step (see _windows), so the first Ta actions are executed
        return chunk.transpose(1, 2)[:, :self.n_action_steps]


def _mse_loss(model, batch) -> Tensor:
    return (model(batch["cond"]["cond"]) - batch["x0"].flatten(1)).square().mean()


def mlp(in_dim: int, hidden, out_dim: int) -> nn.Sequential:
    """in_dim -> hidden widths (each followed by Mish) -> out_dim: the regression baselines' head."""
    widths = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Mish()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], out_dim))


class MLPPolicy(_ChunkPolicy):
    """Regression baseline: an MLP from the flattened normalised observation history to ``n_action_steps``
    normalised actions, trained with MSE. ``n_action_steps=1``: behaviour cloning; ``> 1``: the chunked MLP."""

    def __init__(self, obs_dim: int, action_dim: int, n_obs_steps: int = 2, n_action_steps: int = 1,
                 hidden=(256, 256, 256), obs_stats: dict | None = None, action_stats: dict | None = None):
        super().__init__()
        self._setup(obs_dim, action_dim, n_obs_steps, n_action_steps, obs_stats, action_stats)
        hidden = list(hidden)
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"hidden: expected positive integer widths, got {hidden!r}")
        self.config = {"obs_dim": obs_dim, "action_dim": action_dim, "n_obs_steps": n_obs_steps,
                       "n_action_steps": n_action_steps, "hidden": hidden, "obs_stats": obs_stats,
                       "action_stats": action_stats}
        self.net = mlp(n_obs_steps * obs_dim, hidden, n_action_steps * action_dim)

    @classmethod
    def from_episodes(cls, episodes: Episodes, **kwargs) -> MLPPolicy:
        return cls(**cls._stats(episodes), **kwargs)

    def _training_parts(self, episodes):
        features, targets = self._windows(episodes, self.n_action_steps)
        return self.net, _mse_loss, _WindowData(features, targets)

    def _predict_normalized(self, features: Tensor, **options) -> Tensor:
        return self.net(features).reshape(features.shape[0], self.n_action_steps, self.action_dim)


def load_policy(directory):
    """A DiffusionPolicy or MLPPolicy (or their image variants) from a ``save_pretrained`` directory, whichever it
    holds."""
    from polydiff.core.pretrained import class_path, read_config

    from .image_policy import ImageDiffusionPolicy, ImageMLPPolicy

    document = read_config(directory)
    for cls in (DiffusionPolicy, MLPPolicy, ImageDiffusionPolicy, ImageMLPPolicy):
        if document["class"] == class_path(cls):
            return cls.from_pretrained(directory)
    raise ValueError(f"directory: {directory} holds a {document['class']}, not a polydiff robotics policy")
