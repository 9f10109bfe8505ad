"""Time embeddings and FiLM conditioning shared by every polydiff network.

* :class:`SinusoidalEmbedding` — the fixed sin/cos features of the Transformer (Vaswani et al., 2017, sec. 3.5)
  as DDPM uses them for the diffusion time (Ho et al., 2020, appendix B).
* :class:`GaussianFourierEmbedding` — random Fourier features with fixed frequencies (Tancik et al., 2020;
  Song et al., 2021, score SDE's ``GaussianFourierProjection``).
* :class:`FiLM` — feature-wise linear modulation (Perez et al., 2018) from a conditioning vector, written as
  ``(1 + scale) * h + shift`` and zero-initialised so a fresh layer is the identity.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SinusoidalEmbedding", "GaussianFourierEmbedding", "FiLM", "check_time", "check_positive_int"]


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def check_time(t, batch: int, dtype: torch.dtype, device) -> Tensor:
    """Return t as a (batch,) tensor of ``dtype``; a scalar is broadcast. Raises ValueError naming ``t``."""
    t = torch.as_tensor(t, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"t: expected a scalar or shape ({batch},) matching the batch, got {tuple(t.shape)}")
    return t.to(dtype)


class SinusoidalEmbedding(nn.Module):
    """emb(t) = [sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})], w_k = max_period^(-k / h),
    h = dim // 2; an odd ``dim`` gets one trailing zero.

    forward(t: (batch,) float) -> (batch, dim), in t's dtype (float32 for integer t).
    """

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        check_positive_int(dim, "dim")
        if dim < 2:
            raise ValueError(f"dim: expected at least 2, got {dim}")
        if not max_period > 1:
            raise ValueError(f"max_period: expected a value > 1, got {max_period}")
        self.config = {"dim": dim, "max_period": float(max_period)}
        self.dim, self.max_period = dim, float(max_period)

    def forward(self, t: Tensor) -> Tensor:
        if not isinstance(t, Tensor) or t.ndim != 1:
            raise ValueError(f"t: expected a 1-D tensor (batch,), got {getattr(t, 'shape', type(t))}")
        dtype = t.dtype if t.is_floating_point() else torch.float32
        half = self.dim // 2
        # frequencies in float64 so the float32 result is exact to rounding even for large max_period
        k = torch.arange(half, device=t.device, dtype=torch.float64)
        freqs = torch.exp(-math.log(self.max_period) * k / half)
        args = t.to(torch.float64)[:, None] * freqs[None]
        emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
        if self.dim % 2:
            emb = torch.nn.functional.pad(emb, (0, 1))
        return emb.to(dtype)


class GaussianFourierEmbedding(nn.Module):
    """emb(t) = [sin(2 pi t w), cos(2 pi t w)] with w ~ N(0, scale^2) of size dim // 2, drawn once from ``seed``
    and kept as a buffer (not trained). Suits continuous t, e.g. log(sigma) for VE/EDM models.

    forward(t: (batch,) float) -> (batch, dim).
    """

    def __init__(self, dim: int, scale: float = 16.0, seed: int = 0):
        super().__init__()
        check_positive_int(dim, "dim")
        if dim % 2:
            raise ValueError(f"dim: expected an even number, got {dim}")
        if not scale > 0:
            raise ValueError(f"scale: expected a positive value, got {scale}")
        self.config = {"dim": dim, "scale": float(scale), "seed": int(seed)}
        generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("weight", torch.randn(dim // 2, generator=generator, dtype=torch.float64) * scale)

    def forward(self, t: Tensor) -> Tensor:
        if not isinstance(t, Tensor) or t.ndim != 1:
            raise ValueError(f"t: expected a 1-D tensor (batch,), got {getattr(t, 'shape', type(t))}")
        dtype = t.dtype if t.is_floating_point() else torch.float32
        args = 2 * math.pi * t.to(torch.float64)[:, None] * self.weight.to(torch.float64)[None]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1).to(dtype)


class FiLM(nn.Module):
    """h -> (1 + scale(c)) * h + shift(c), with [scale, shift] = Linear(Mish(c)) (Diffusion Policy's
    ``cond_encoder``). The linear layer is zero-initialised (``zero_init=True``) so the layer starts as identity.

    forward(h: (batch, channels, *rest), c: (batch, cond_dim)) -> same shape as h.
    """

    def __init__(self, cond_dim: int, channels: int, zero_init: bool = True):
        super().__init__()
        check_positive_int(cond_dim, "cond_dim")
        check_positive_int(channels, "channels")
        self.config = {"cond_dim": cond_dim, "channels": channels, "zero_init": bool(zero_init)}
        self.channels = channels
        self.activation = nn.Mish()
        self.linear = nn.Linear(cond_dim, 2 * channels)
        if zero_init:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        if h.ndim < 2 or h.shape[1] != self.channels:
            raise ValueError(f"h: expected shape (batch, {self.channels}, ...), got {tuple(h.shape)}")
        if c.ndim != 2 or c.shape != (h.shape[0], self.linear.in_features):
            raise ValueError(f"c: expected shape ({h.shape[0]}, {self.linear.in_features}), got {tuple(c.shape)}")
        scale, shift = self.linear(self.activation(c)).chunk(2, dim=-1)
        shape = scale.shape + (1,) * (h.ndim - 2)
        return (1 + scale.reshape(shape)) * h + shift.reshape(shape)
