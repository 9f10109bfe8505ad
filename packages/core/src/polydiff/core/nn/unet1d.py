"""A 1-D temporal U-Net for sequences (action chunks, time series, waveforms at low rate).

The architecture of Chi et al. (2023), "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
``ConditionalUnet1D``: residual blocks of two (Conv1d -> GroupNorm -> Mish) layers, FiLM-conditioned between them on
[time embedding, global conditioning vector]; stride-2 convolutions down, transposed convolutions up, skip
connections concatenated on the way up.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..pretrained import PretrainedMixin
from .embeddings import FiLM, GaussianFourierEmbedding, SinusoidalEmbedding, check_positive_int, check_time

__all__ = ["UNet1D", "ResidualBlock1D", "TimeEmbedding"]


class TimeEmbedding(nn.Module):
    """Fixed features of t followed by an MLP (Linear -> Mish -> Linear, 4x wide), as in DDPM and Diffusion Policy.

    forward(t: (batch,)) -> (batch, dim).
    """

    def __init__(self, dim: int, kind: str = "sinusoidal", max_period: float = 10000.0, fourier_scale: float = 16.0):
        super().__init__()
        if kind == "sinusoidal":
            features = SinusoidalEmbedding(dim, max_period)
        elif kind == "fourier":
            features = GaussianFourierEmbedding(dim, fourier_scale)
        else:
            raise ValueError(f"time_embedding: expected 'sinusoidal' or 'fourier', got {kind!r}")
        self.config = {"dim": dim, "kind": kind, "max_period": float(max_period), "fourier_scale": float(fourier_scale)}
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(self.features(t))


class _ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int):
        super().__init__(nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, out_channels), nn.Mish())


class ResidualBlock1D(nn.Module):
    """conv block -> FiLM(c) -> conv block, plus a 1x1 (or identity) residual path.

    forward(x: (batch, in_channels, time), c: (batch, cond_dim)) -> (batch, out_channels, time).
    """

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int = 5, n_groups: int = 8):
        super().__init__()
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "cond_dim": cond_dim,
                       "kernel_size": kernel_size, "n_groups": n_groups}
        self.block1 = _ConvBlock(in_channels, out_channels, kernel_size, n_groups)
        # Diffusion Policy initialises its FiLM encoder like any linear layer, so t and cond act from step one
        self.film = FiLM(cond_dim, out_channels, zero_init=False)
        self.block2 = _ConvBlock(out_channels, out_channels, kernel_size, n_groups)
        self.residual = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.block2(self.film(self.block1(x), c)) + self.residual(x)

    def modulated(self, x: Tensor, scale_shift: Tensor) -> Tensor:
        """forward with the FiLM output already computed: ``scale_shift`` (batch, 2 * out_channels, 1) is
        ``self.film.linear(mish(c))``, as :class:`UNet1D` computes it for every block in one matrix product."""
        h = self.block1(x)
        scale, shift = scale_shift.chunk(2, dim=1)
        return self.block2(torch.addcmul(shift, h, scale).add_(h)) + self.residual(x)  # (1 + scale) h + shift


class UNet1D(PretrainedMixin, nn.Module):
    """Conditional 1-D U-Net (Diffusion Policy's ConditionalUnet1D).

    Args:
        in_channels: channels of x (e.g. action dimension).
        out_channels: channels of the output (default: in_channels).
        channels: widths of the levels; the time axis is halved ``len(channels) - 1`` times.
        cond_dim: size of the global conditioning vector (0: none).
        time_embedding_dim: width of the time embedding.
        kernel_size: odd convolution kernel size.
        n_groups: GroupNorm groups; must divide every width in ``channels``.
        time_embedding: "sinusoidal" (takes t on any scale, e.g. a training index) or "fourier".
        max_period: of the sinusoidal embedding.

    forward(x: (batch, in_channels, time), t: (batch,) or scalar, cond: (batch, cond_dim) | None)
        -> (batch, out_channels, time). Any time length works: x is padded on the right (edge values) to a
        multiple of 2^(len(channels) - 1) and the output is cropped back.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, channels=(64, 128, 256), cond_dim: int = 0,
                 time_embedding_dim: int = 128, kernel_size: int = 5, n_groups: int = 8,
                 time_embedding: str = "sinusoidal", max_period: float = 10000.0):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        out_channels = in_channels if out_channels is None else check_positive_int(out_channels, "out_channels")
        channels = tuple(channels)
        if not channels or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"channels: expected a non-empty sequence of positive integers, got {channels!r}")
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, int) or cond_dim < 0:
            raise ValueError(f"cond_dim: expected an integer >= 0, got {cond_dim!r}")
        check_positive_int(time_embedding_dim, "time_embedding_dim")
        if check_positive_int(kernel_size, "kernel_size") % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd integer, got {kernel_size}")
        check_positive_int(n_groups, "n_groups")
        if any(c % n_groups for c in channels):
            raise ValueError(f"n_groups: {n_groups} must divide every width in channels={list(channels)}")
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "channels": list(channels),
                       "cond_dim": cond_dim, "time_embedding_dim": time_embedding_dim, "kernel_size": kernel_size,
                       "n_groups": n_groups, "time_embedding": time_embedding, "max_period": float(max_period)}
        self.in_channels, self.out_channels, self.cond_dim = in_channels, out_channels, cond_dim
        self.multiple = 2 ** (len(channels) - 1)
        self.time_embedding = TimeEmbedding(time_embedding_dim, time_embedding, max_period)
        film_dim = time_embedding_dim + cond_dim
        block = lambda i, o: ResidualBlock1D(i, o, film_dim, kernel_size, n_groups)  # noqa: E731

        widths = (in_channels,) + channels
        self.down = nn.ModuleList()
        for level, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
            last = level == len(channels) - 1
            self.down.append(nn.ModuleList([block(w_in, w_out), block(w_out, w_out),
                                            nn.Identity() if last else nn.Conv1d(w_out, w_out, 3, 2, 1)]))
        self.mid = nn.ModuleList([block(channels[-1], channels[-1]), block(channels[-1], channels[-1])])
        self.up = nn.ModuleList()
        for w_in, w_out in reversed(list(zip(channels[:-1], channels[1:], strict=False))):
            self.up.append(nn.ModuleList([block(2 * w_out, w_in), block(w_in, w_in),
                                          nn.ConvTranspose1d(w_in, w_in, 4, 2, 1)]))
        self.head = nn.Sequential(_ConvBlock(channels[0], channels[0], kernel_size, n_groups),
                                  nn.Conv1d(channels[0], out_channels, 1))

    def forward(self, x: Tensor, t, cond: Tensor | None = None) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected shape (batch, {self.in_channels}, time), got {tuple(getattr(x, 'shape', ()))}")
        batch, _, length = x.shape
        t = check_time(t, batch, x.dtype, x.device)
        c = self.time_embedding(t)
        if self.cond_dim:
            if cond is None or cond.shape != (batch, self.cond_dim):
                raise ValueError(f"cond: expected shape ({batch}, {self.cond_dim}), "
                                 f"got {None if cond is None else tuple(cond.shape)}")
            c = torch.cat([c, cond.to(x.dtype)], dim=-1)
        elif cond is not None:
            raise ValueError("cond: this UNet1D was built with cond_dim=0 and takes no conditioning vector")
        pad = -length % self.multiple
        h = F.pad(x, (0, pad), mode="replicate") if pad else x
        # every block's FiLM reads the same c: one Mish and one matrix product give all their scales and shifts
        # (the per-block layers hold the weights; at batch 1 the dozen small products cost more than the convs)
        films = [block.film.linear for block in self._blocks()]
        modulation = F.linear(F.mish(c), torch.cat([f.weight for f in films]), torch.cat([f.bias for f in films]))
        scale_shift = iter(modulation.unsqueeze(-1).split([f.out_features for f in films], dim=1))
        skips = []
        for block1, block2, downsample in self.down:
            h = block2.modulated(block1.modulated(h, next(scale_shift)), next(scale_shift))
            skips.append(h)
            h = downsample(h)
        for mid in self.mid:
            h = mid.modulated(h, next(scale_shift))
        # as in Diffusion Policy, each up level joins the skip of the matching down level's output; the
        # full-resolution skip of the first level stays unused (the head sees the upsampled path only)
        for block1, block2, upsample in self.up:
            h = block1.modulated(torch.cat([h, skips.pop()], dim=1), next(scale_shift))
            h = upsample(block2.modulated(h, next(scale_shift)))
        return self.head(h)[..., :length]

    def _blocks(self) -> list[ResidualBlock1D]:
        """The residual blocks in the order forward calls them."""
        return [*(b for level in self.down for b in level[:2]), *self.mid, *(b for level in self.up for b in level[:2])]
