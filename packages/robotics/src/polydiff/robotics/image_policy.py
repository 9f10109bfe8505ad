"""Policies on image observations: Diffusion Policy and MLP behaviour cloning with a CNN encoder.

An observation is a dict, as the environment returns it with ``obs="image"``: ``"pixels"`` (height, width, 3)
uint8 (a camera frame) and ``"state"`` (state_dim,), the agent's proprioception, stacked with the image features
as the Diffusion Policy paper's image variant does. Each of the To frames of the history goes through the same
:class:`~polydiff.robotics.vision.ImageEncoder`; the features of every frame, next to its normalised state,
condition the UNet1D through FiLM (or feed the MLP). The encoder is trained end to end with the policy by the core
Trainer. The API is the state policies' (``reset``, ``select_action``, ``predict_action_chunk``,
``save_pretrained`` / ``from_pretrained``, any core solver):

    policy = ImageDiffusionPolicy.from_episodes(image_demos)     # collect_demos("obstacle", n, obs="image")
    policy.fit(image_demos, TrainConfig(...))
    action = policy.select_action({"pixels": frame, "state": state})
    chunk = policy.predict_action_chunk({"pixels": frames (To, H, W, 3), "state": states (To, state_dim)})
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from polydiff.core import Denoiser
from polydiff.core.losses import DiffusionLoss
from polydiff.core.nn import TracedNetwork, UNet1D

from .data import Episodes, sequence_windows
from .policy import DiffusionPolicy, MLPPolicy, mlp
from .vision import ImageEncoder

__all__ = ["ImageDiffusionPolicy", "ImageMLPPolicy"]


class _Conditioned(nn.Module):
    """The trained network: encoder + head. ``features(pixels (batch, To, H, W, 3) uint8, state (batch, To, S))``
    -> (batch, To * (feature_dim + S)); ``forward(x, t, pixels, state)`` runs the UNet head on them (the
    diffusion loss's ``model(x_t, t, **cond)``)."""

    def __init__(self, encoder: ImageEncoder, head: nn.Module, random_shift: int = 0):
        super().__init__()
        self.encoder, self.head, self.random_shift = encoder, head, random_shift

    def features(self, pixels: Tensor, state: Tensor) -> Tensor:
        batch, steps = state.shape[:2]
        if self.training and self.random_shift:
            pixels = shift_frames(pixels, self.random_shift)
        encoded = self.encoder(pixels.flatten(0, 1)).view(batch, steps, -1)
        return torch.cat([encoded, state], dim=-1).flatten(1)

    def forward(self, x: Tensor, t: Tensor, pixels: Tensor, state: Tensor) -> Tensor:
        return self.head(x, t, cond=self.features(pixels, state))


def shift_frames(pixels: Tensor, shift: int) -> Tensor:
    """Random-shift augmentation (Kostrikov et al., 2020, "Image Augmentation Is All You Need", DrQ): each window's
    frames (batch, To, H, W, 3) are padded by ``shift`` pixels repeating the border and cropped back at one random
    offset, shared by the window's To frames. Returns float frames on the uint8 scale."""
    batch, steps, height, width, channels = pixels.shape
    stacked = pixels.permute(0, 1, 4, 2, 3).reshape(batch, steps * channels, height, width).float()
    padded = nn.functional.pad(stacked, (shift,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * shift + 1, (2, batch), device=pixels.device)
    rows = (dy[:, None] + torch.arange(height, device=pixels.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(width, device=pixels.device))[:, None, :]
    cropped = padded[torch.arange(batch, device=pixels.device)[:, None, None], :, rows, cols]  # (batch, H, W, To*C)
    return cropped.reshape(batch, height, width, steps, channels).permute(0, 3, 1, 2, 4)


def _image_mse_loss(model: _Conditioned, batch) -> Tensor:
    return (model.head(model.features(**batch["cond"])) - batch["x0"].flatten(1)).square().mean()


class _ImageWindows(torch.utils.data.Dataset):
    """Training windows that index into one frame array instead of copying frames: {"x0": targets,
    "cond": {"pixels": (To, H, W, 3) uint8, "state": (To, S)}}."""

    def __init__(self, frames: Tensor, index: Tensor, state: Tensor, targets: Tensor):
        self.frames, self.index, self.state, self.targets = frames, index, state, targets

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"x0": self.targets[i], "cond": {"pixels": self.frames[self.index[i]], "state": self.state[i]}}


class _ImageObservations:
    """Image-observation handling shared by both image policies (a mixin placed before the state policy)."""

    obs_mode = "image"  # what rollout() makes the environments return

    def _setup_image(self, image_size: int, encoder_channels, keypoints: int, feature_dim: int,
                     random_shift: int, encoder_downsample: int = 2) -> None:
        if isinstance(random_shift, bool) or not isinstance(random_shift, int) or not 0 <= random_shift < image_size:
            raise ValueError(f"random_shift: expected an integer in [0, {image_size}), got {random_shift!r}")
        self.image_size, self.random_shift = image_size, random_shift
        self.encoder = ImageEncoder(image_size, encoder_channels, keypoints, feature_dim, encoder_downsample)
        self.feature_dim = feature_dim
        # the state policy's config, its obs_dim renamed state_dim, plus the encoder's settings
        config = dict(self.config)
        state_dim = config.pop("obs_dim")
        self.config = {"state_dim": state_dim, **config, "image_size": image_size,
                       "encoder_channels": list(encoder_channels), "keypoints": keypoints, "feature_dim": feature_dim,
                       "random_shift": random_shift, "encoder_downsample": encoder_downsample}

    @property
    def cond_dim(self) -> int:
        return self.n_obs_steps * (self.feature_dim + self.obs_dim)

    # -------------------------------------------------------------- inputs
    def _check_image_obs(self, obs, steps: int | None) -> tuple[np.ndarray, np.ndarray, bool]:
        """(pixels (batch, [steps,] H, W, 3) uint8, state (batch, [steps,] S), batched) from an observation dict;
        ``steps`` is To for a history and None for one observation. ValueError naming what is wrong."""
        if not isinstance(obs, dict) or set(obs) != {"pixels", "state"}:
            got = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
            raise ValueError(f"obs: expected a dict with 'pixels' and 'state' (an image observation), got {got}")
        lead = () if steps is None else (steps,)
        frame = (self.image_size, self.image_size, 3)
        pixels = obs["pixels"]
        pixels = pixels.detach().cpu().numpy() if isinstance(pixels, Tensor) else np.asarray(pixels)
        if pixels.dtype != np.uint8:
            if np.issubdtype(pixels.dtype, np.floating) and not np.all(np.isfinite(pixels)):
                raise ValueError(f"obs['pixels']: contains NaN or inf (expected uint8 frames, got {pixels.dtype})")
            raise ValueError(f"obs['pixels']: expected uint8 RGB frames, got dtype {pixels.dtype}")
        shape = (*lead, *frame)
        if pixels.shape[-len(shape):] != shape or pixels.ndim not in (len(shape), len(shape) + 1):
            raise ValueError(f"obs['pixels']: expected shape {shape} or (batch, {', '.join(map(str, shape))}), "
                             f"got {pixels.shape}")
        state = self._check_obs(obs["state"], (*lead, self.obs_dim), name="obs['state']")
        batched = pixels.ndim == len(shape) + 1
        if (state.ndim == len(lead) + 2) != batched or (batched and state.shape[0] != pixels.shape[0]):
            raise ValueError(f"obs: 'pixels' {pixels.shape} and 'state' {state.shape} disagree on the batch")
        return (pixels, state, True) if batched else (pixels[None], state[None], False)

    def example_observation(self) -> dict:
        """A zero observation history (To frames), the input of :func:`chunk_latency_ms`."""
        return {"pixels": np.zeros((self.n_obs_steps, self.image_size, self.image_size, 3), np.uint8),
                "state": np.zeros((self.n_obs_steps, self.obs_dim))}

    @torch.no_grad()
    def select_action(self, obs, **options) -> np.ndarray:
        """One action for the current observation {"pixels": (H, W, 3), "state": (S,)} or a batch of them
        ({"pixels": (batch, H, W, 3), "state": (batch, S)}), from the action queue (see the state policies)."""
        pixels, state, batched = self._check_image_obs(obs, None)
        if self._history and self._history[-1][1].shape != state.shape:
            raise ValueError(f"obs: batch changed from {self._history[-1][1].shape[0]} to {state.shape[0]} without "
                             "reset()")
        if not self._history:
            self._history.extend([(pixels, state)] * self.n_obs_steps)
        else:
            self._history.append((pixels, state))
        if not self._queue:
            history = {"pixels": np.stack([h[0] for h in self._history], axis=1),
                       "state": np.stack([h[1] for h in self._history], axis=1)}
            chunk = self.predict_action_chunk(history, **options)
            self._queue.extend(np.moveaxis(chunk, 1, 0))
        action = self._queue.popleft()
        return action if batched else action[0]

    def features(self, pixels: np.ndarray, state: np.ndarray) -> Tensor:
        """Conditioning features (batch, To * (feature_dim + S)) of checked, batched histories."""
        normalized = torch.as_tensor(self.obs_normalizer.normalize(state), dtype=torch.float32)
        return self._network().features(torch.as_tensor(pixels), normalized)

    @torch.no_grad()
    def predict_action_chunk(self, obs, **options) -> np.ndarray:
        """The next ``n_action_steps`` actions from an observation history {"pixels": (To, H, W, 3) uint8,
        "state": (To, S)} or a batch of them (leading batch axis) -> (n_action_steps, action_dim) or
        (batch, n_action_steps, action_dim). The encoder runs once per chunk."""
        if self.obs_normalizer is None or self.action_normalizer is None:
            raise ValueError("policy: not fitted (no normalisation statistics); build it with from_episodes()")
        pixels, state, batched = self._check_image_obs(obs, self.n_obs_steps)
        actions = self._predict_normalized(self.features(pixels, state), **options)
        actions = self.action_normalizer.unnormalize(actions.clamp(-1, 1).double().cpu().numpy())
        return (actions if batched else actions[0]).astype(np.float32)

    # -------------------------------------------------------------- training
    @classmethod
    def from_episodes(cls, episodes: Episodes, **kwargs):
        """A policy sized and normalised for image ``episodes`` (``collect_demos(..., obs="image")``)."""
        if not isinstance(episodes, Episodes) or episodes.images is None:
            raise ValueError("episodes: expected an Episodes dataset with images (collect_demos(..., obs='image'))")
        if episodes.images.shape[1] != episodes.images.shape[2]:
            raise ValueError(f"episodes: expected square frames, got {episodes.images.shape[1:3]}")
        stats = cls._stats(episodes)
        return cls(state_dim=stats.pop("obs_dim"), image_size=int(episodes.images.shape[1]), **stats, **kwargs)

    def _image_windows(self, episodes: Episodes, horizon: int) -> _ImageWindows:
        if episodes.images is None or episodes.images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"episodes: expected frames of shape ({self.image_size}, {self.image_size}, 3), got "
                             f"{None if episodes.images is None else episodes.images.shape[1:]}")
        if episodes.obs_dim != self.obs_dim or episodes.action_dim != self.action_dim:
            raise ValueError(f"episodes: state/action dims {episodes.obs_dim}/{episodes.action_dim} differ from the "
                             f"policy's {self.obs_dim}/{self.action_dim}")
        to = self.n_obs_steps
        # the frame index rides along as one more observation feature, so the windows pad exactly as the state's
        indexed = Episodes(np.column_stack([episodes.obs, np.arange(len(episodes.obs))]), episodes.action,
                           episodes.episode_ends)
        obs, actions = sequence_windows(indexed, to - 1 + horizon, pad_before=to - 1,
                                        pad_after=self.n_action_steps - 1)
        index = torch.as_tensor(obs[:, :to, -1].round().astype(np.int64))
        state = torch.as_tensor(self.obs_normalizer.normalize(obs[:, :to, :-1]), dtype=torch.float32)
        targets = torch.as_tensor(self.action_normalizer.normalize(actions[:, to - 1:]), dtype=torch.float32)
        return _ImageWindows(torch.from_numpy(np.ascontiguousarray(episodes.images)), index, state, targets)


class ImageDiffusionPolicy(_ImageObservations, DiffusionPolicy):
    """Diffusion Policy on image observations (the paper's CNN variant with a vision encoder, sec. 3.3).

    Args:
        state_dim: size of the proprioception stacked with each frame; image_size: frames are (image_size,
            image_size, 3) uint8. encoder_channels, keypoints, feature_dim, encoder_downsample (its
            ``downsample``): the :class:`ImageEncoder`'s.
        The rest as :class:`DiffusionPolicy` (n_obs_steps, horizon, n_action_steps, the UNet, the schedule, the
        default sampler and the prediction).
    """

    def __init__(self, state_dim: int, action_dim: int, image_size: int = 64, n_obs_steps: int = 2,
                 horizon: int = 16, n_action_steps: int = 8, channels=(32, 64), encoder_channels=(8, 16, 32),
                 keypoints: int = 32, feature_dim: int = 64, time_embedding_dim: int = 32, kernel_size: int = 5,
                 n_groups: int = 8, num_train_timesteps: int = 100, obs_stats: dict | None = None,
                 action_stats: dict | None = None, solver: str = "ddim", steps: int = 10, grid: str = "trailing",
                 random_shift: int = 0, prediction: str = "eps", encoder_downsample: int = 2):
        super().__init__(state_dim, action_dim, n_obs_steps=n_obs_steps, horizon=horizon,
                         n_action_steps=n_action_steps, channels=channels, time_embedding_dim=time_embedding_dim,
                         kernel_size=kernel_size, n_groups=n_groups, num_train_timesteps=num_train_timesteps,
                         obs_stats=obs_stats, action_stats=action_stats, solver=solver, steps=steps, grid=grid,
                         prediction=prediction)
        self._setup_image(image_size, encoder_channels, keypoints, feature_dim, random_shift, encoder_downsample)
        # the state policy's UNet is conditioned on the raw history; this one on the image features and states
        self.unet = UNet1D(action_dim, channels=tuple(channels), cond_dim=self.cond_dim,
                           time_embedding_dim=time_embedding_dim, kernel_size=kernel_size, n_groups=n_groups)
        self._traced = TracedNetwork(self.unet)
        self._inference_denoiser = Denoiser(self._traced, self.schedule, self.prediction, clip_x0=1.0)

    def _network(self) -> _Conditioned:
        return _Conditioned(self.encoder, self.unet, self.random_shift)

    def _training_parts(self, episodes):
        data = self._image_windows(episodes, self.horizon)
        data.targets = data.targets.transpose(1, 2).contiguous()  # (windows, action_dim, horizon) for the UNet
        return self._network(), DiffusionLoss(self.schedule, prediction=self.prediction), data


class ImageMLPPolicy(_ImageObservations, MLPPolicy):
    """MLP behaviour cloning on image observations: the same encoder and features as
    :class:`ImageDiffusionPolicy`, an MLP head regressing ``n_action_steps`` actions (MSE), trained end to end
    (``random_shift`` as there)."""

    def __init__(self, state_dim: int, action_dim: int, image_size: int = 64, n_obs_steps: int = 2,
                 n_action_steps: int = 1, hidden=(256, 256, 256), encoder_channels=(8, 16, 32), keypoints: int = 32,
                 feature_dim: int = 64, obs_stats: dict | None = None, action_stats: dict | None = None,
                 random_shift: int = 0, encoder_downsample: int = 2):
        super().__init__(state_dim, action_dim, n_obs_steps=n_obs_steps, n_action_steps=n_action_steps,
                         hidden=hidden, obs_stats=obs_stats, action_stats=action_stats)
        self._setup_image(image_size, encoder_channels, keypoints, feature_dim, random_shift, encoder_downsample)
        self.net = mlp(self.cond_dim, list(hidden), n_action_steps * action_dim)

    def _network(self) -> _Conditioned:
        return _Conditioned(self.encoder, self.net, self.random_shift)

    def _training_parts(self, episodes):
        return self._network(), _image_mse_loss, self._image_windows(episodes, self.n_action_steps)
