"""A non-causal dilated-convolution WaveNet denoiser for 1-D signals with a slow conditioning sequence.

The network of DiffWave (Kong et al., 2021, sec. 3 and Fig. 2): a stack of residual layers, each a dilated
convolution of the signal plus a per-layer projection of the diffusion-time embedding, plus a per-layer
projection of the conditioner, a gated tanh * sigmoid unit, and 1x1 convolutions to the residual and the skip
paths; the skip sum (scaled by 1 / sqrt(layers)) goes through ReLU, 1x1, ReLU, 1x1 (zero-initialised) to the
output.

The conditioner ``cond`` (batch, cond_channels, frames) runs at ``hop`` signal samples per frame (a mel
spectrogram: the STFT hop). Instead of upsampling the conditioner with transposed convolutions to the signal
rate and projecting it there (DiffWave), every projection is applied at the frame rate after a small
convolutional encoder, and only the projected features are linearly interpolated to the sample positions
n / hop (a 1x1 convolution commutes with linear interpolation, so this equals projecting the interpolated
conditioner); the per-sample cost of conditioning is one interpolation, and any hop size works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pretrained import PretrainedMixin
from .embeddings import SinusoidalEmbedding, check_positive_int, check_time

__all__ = ["WaveNetDenoiser", "interpolate_frames"]


def interpolate_frames(features: Tensor, length: int, hop: int) -> Tensor:
    """Linear interpolation of frame features (batch, channels, frames) to ``length`` samples at positions
    n / hop, n = 0 .. length - 1 (frame k sits at sample k * hop); positions past the last frame hold it."""
    frames = features.shape[-1]
    position = torch.arange(length, device=features.device, dtype=torch.float64) / hop
    left = position.floor().long().clamp(max=frames - 1)
    right = (left + 1).clamp(max=frames - 1)
    weight = (position - left.to(torch.float64)).clamp(0, 1).to(features.dtype)
    return torch.lerp(features[..., left], features[..., right], weight)


class _ResidualLayer(nn.Module):
    def __init__(self, channels: int, dilation: int, kernel_size: int):
        super().__init__()
        self.dilated = nn.Conv1d(channels, 2 * channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                                 dilation=dilation)
        self.time = nn.Linear(channels, channels)
        self.output = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, h: Tensor, time: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        y = self.dilated(h + self.time(time)[..., None])
        if cond is not None:
            y = y + cond
        gate, filt = y.chunk(2, dim=1)
        y = self.output(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (h + residual) / math.sqrt(2.0), skip


class WaveNetDenoiser(nn.Module, PretrainedMixin):
    """model(x (batch, channels, length), t (batch,), cond=None (batch, cond_channels, frames)) -> like x.

    Args:
        channels: signal channels (1 for a waveform).
        residual_channels: width C of every residual layer.
        layers: residual layers; the dilation of layer i is 2 ** (i % dilation_cycle).
        dilation_cycle: dilations restart after this many layers.
        kernel_size: odd size of the dilated convolutions.
        cond_channels: channels of the conditioner (0: unconditional).
        hop: signal samples per conditioner frame; ``cond`` needs at least ceil(length / hop) frames.
        cond_hidden: width of the frame-rate conditioner encoder (two convolutions of kernel 3).
        time_dim: width of the diffusion-time embedding.
    """

    def __init__(self, channels: int = 1, residual_channels: int = 64, layers: int = 20, dilation_cycle: int = 10,
                 kernel_size: int = 3, cond_channels: int = 0, hop: int = 256, cond_hidden: int = 128,
                 time_dim: int = 128):
        super().__init__()
        for name, value in (("channels", channels), ("residual_channels", residual_channels), ("layers", layers),
                            ("dilation_cycle", dilation_cycle), ("kernel_size", kernel_size), ("hop", hop),
                            ("cond_hidden", cond_hidden), ("time_dim", time_dim)):
            check_positive_int(value, name)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd size, got {kernel_size}")
        if isinstance(cond_channels, bool) or not isinstance(cond_channels, int) or cond_channels < 0:
            raise ValueError(f"cond_channels: expected an int >= 0, got {cond_channels!r}")
        self.config = {"channels": channels, "residual_channels": residual_channels, "layers": layers,
                       "dilation_cycle": dilation_cycle, "kernel_size": kernel_size, "cond_channels": cond_channels,
                       "hop": hop, "cond_hidden": cond_hidden, "time_dim": time_dim}
        self.channels, self.layers, self.hop, self.cond_channels = channels, layers, hop, cond_channels
        self.input = nn.Conv1d(channels, residual_channels, 1)
        self.embedding = SinusoidalEmbedding(time_dim)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, 4 * residual_channels), nn.SiLU(),
                                      nn.Linear(4 * residual_channels, residual_channels), nn.SiLU())
        self.blocks = nn.ModuleList(_ResidualLayer(residual_channels, 2 ** (i % dilation_cycle), kernel_size)
                                    for i in range(layers))
        if cond_channels:
            self.cond_encoder = nn.Sequential(nn.Conv1d(cond_channels, cond_hidden, 3, padding=1), nn.SiLU(),
                                              nn.Conv1d(cond_hidden, cond_hidden, 3, padding=1), nn.SiLU())
            self.cond_projection = nn.Conv1d(cond_hidden, 2 * residual_channels * layers, 1)
        self.skip = nn.Conv1d(residual_channels, residual_channels, 1)
        self.out = nn.Conv1d(residual_channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def encode_cond(self, cond: Tensor, length: int) -> Tensor:
        """The per-layer conditioner features at the signal rate: (batch, layers, 2C, length)."""
        if cond.ndim != 3 or cond.shape[1] != self.cond_channels:
            raise ValueError(f"cond: expected (batch, {self.cond_channels}, frames), got {tuple(cond.shape)}")
        needed = -(-length // self.hop)
        if cond.shape[-1] < needed:
            raise ValueError(f"cond: {cond.shape[-1]} frames cover fewer than {length} samples at hop {self.hop} "
                             f"(need >= {needed})")
        features = self.cond_projection(self.cond_encoder(cond))
        features = interpolate_frames(features, length, self.hop)
        return features.reshape(cond.shape[0], self.layers, -1, length)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if x.ndim != 3 or x.shape[1] != self.channels:
            raise ValueError(f"x: expected (batch, {self.channels}, length), got {tuple(x.shape)}")
        t = check_time(t, x.shape[0], x.dtype, x.device)
        if self.cond_channels and cond is None:
            raise ValueError("cond: this network was built with cond_channels > 0 and needs a conditioner")
        if not self.cond_channels and cond is not None:
            raise ValueError("cond: this network is unconditional (cond_channels=0)")
        features = self.encode_cond(cond.to(x.dtype), x.shape[-1]) if cond is not None else None
        time = self.time_mlp(self.embedding(t))
        h = F.relu(self.input(x))
        skips = 0
        for i, block in enumerate(self.blocks):
            h, skip = block(h, time, None if features is None else features[:, i])
            skips = skips + skip
        h = F.relu(self.skip(skips / math.sqrt(self.layers)))
        return self.out(h)
