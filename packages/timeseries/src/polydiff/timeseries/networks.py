"""Denoising networks over (batch, series, time) windows, built from core's DiT blocks.

:class:`CSDINetwork` (Tashiro et al., 2021, "CSDI: Conditional Score-based Diffusion Models for Probabilistic Time
Series Imputation", sec. 4 and fig. 6): every (series k, time l) entry is a token holding the noisy value where
the entry is a target, the observed value and the observation mask where it is conditioned on, and side
information (calendar / exogenous covariates, a time position embedding, a learned series embedding). Each
residual layer attends over time within a series (a core ``TransformerDenoiserBlock``) and then over series at
each time step (a second block, skipped for one series); the diffusion time conditions every block through
adaLN-zero. With ``conditional=False`` the observation channels are dropped: an unconditional model for
TSDiff-style self-guidance.

:class:`DiffusionTSNetwork` (Yuan & Qiao, 2024, "Diffusion-TS: Interpretable Diffusion for General Time Series
Generation", sec. 3.2): a transformer over time whose x0 prediction is the sum of a polynomial trend, a Fourier
season and a residual, each from its own head, so ``components()`` can return them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from polydiff.core.nn import TransformerDenoiserBlock
from polydiff.core.nn.embeddings import SinusoidalEmbedding
from polydiff.core.nn.unet1d import TimeEmbedding
from polydiff.core.pretrained import PretrainedMixin

__all__ = ["CSDINetwork", "DiffusionTSNetwork"]


def _positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


class CSDINetwork(nn.Module, PretrainedMixin):
    """forward(x: (batch, series, time) noisy values, t: (batch,) model time, observed: (batch, series, time)
    conditioning values (0 where not observed), mask: (batch, series, time) 1 = observed, side: (batch,
    covariates, time) | None) -> (batch, series, time).

    Args:
        num_series: series per window (1: univariate; the feature-axis attention is skipped);
        num_covariates: side-information channels per time step; dim, depth, heads: transformer size;
        conditional: feed the observations (CSDI) or not (an unconditional model for self-guidance).
    """

    def __init__(self, num_series: int = 1, num_covariates: int = 0, dim: int = 64, depth: int = 2, heads: int = 4,
                 conditional: bool = True, dropout: float = 0.0):
        super().__init__()
        _positive(num_series, "num_series")
        _positive(dim, "dim")
        _positive(depth, "depth")
        if isinstance(num_covariates, bool) or not isinstance(num_covariates, int) or num_covariates < 0:
            raise ValueError(f"num_covariates: expected an integer >= 0, got {num_covariates!r}")
        self.config = {"num_series": num_series, "num_covariates": num_covariates, "dim": dim, "depth": depth,
                       "heads": heads, "conditional": bool(conditional), "dropout": float(dropout)}
        self.num_series, self.num_covariates, self.conditional = num_series, num_covariates, bool(conditional)
        inputs = (3 if conditional else 1) + num_covariates
        self.proj = nn.Linear(inputs, dim)
        self.positions = SinusoidalEmbedding(dim)
        self.series_embedding = nn.Embedding(num_series, dim)
        self.time_embedding = TimeEmbedding(dim, "sinusoidal")
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_blocks = nn.ModuleList(TransformerDenoiserBlock(dim, heads, dim, 2, dropout) for _ in range(depth))
        self.series_blocks = nn.ModuleList(TransformerDenoiserBlock(dim, heads, dim, 2, dropout)
                                           for _ in range(depth if num_series > 1 else 0))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor, t, observed: Tensor | None = None, mask: Tensor | None = None,
                side: Tensor | None = None) -> Tensor:
        batch, series, length = x.shape
        if series != self.num_series:
            raise ValueError(f"x: expected {self.num_series} series, got shape {tuple(x.shape)}")
        channels = [x]
        if self.conditional:
            if observed is None or mask is None:
                raise ValueError("observed, mask: a conditional CSDINetwork needs both")
            channels = [x * (1 - mask), observed * mask, mask]
        features = torch.stack(channels, -1)  # (batch, series, time, c)
        if self.num_covariates:
            if side is None or side.shape != (batch, self.num_covariates, length):
                raise ValueError(f"side: expected shape ({batch}, {self.num_covariates}, {length}), got "
                                 f"{None if side is None else tuple(side.shape)}")
            features = torch.cat([features, side.transpose(1, 2)[:, None].expand(batch, series, length, -1)], -1)
        h = self.proj(features.to(x.dtype))
        position = self.positions(torch.arange(length, device=x.device, dtype=x.dtype))
        h = h + position[None, None] + self.series_embedding.weight[None, :, None]
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype).expand(batch)
        c = self.time_mlp(self.time_embedding(t))
        dim = h.shape[-1]
        for index, block in enumerate(self.time_blocks):
            h = block(h.reshape(batch * series, length, dim), c.repeat_interleave(series, 0))
            h = h.reshape(batch, series, length, dim)
            if self.num_series > 1:
                hs = h.transpose(1, 2).reshape(batch * length, series, dim)
                hs = self.series_blocks[index](hs, c.repeat_interleave(length, 0))
                h = hs.reshape(batch, length, series, dim).transpose(1, 2)
        return self.head(self.norm(h)).squeeze(-1)


class DiffusionTSNetwork(nn.Module, PretrainedMixin):
    """Diffusion-TS's interpretable x0 predictor over windows (batch, series, time).

    A stack of core DiT blocks over time tokens (all series of a time step in one token) feeds three heads:
    trend = polynomial basis of degree ``trend_degree`` in normalised time with coefficients regressed from the
    pooled tokens (sec. 3.2, "trend synthesis"); season = sum of ``num_frequencies`` Fourier terms whose amplitudes
    and phases are regressed from the pooled tokens (sec. 3.2, "seasonality and error synthesis", at fixed DFT
    frequencies instead of the paper's top-k selection); residual = a per-token linear head. forward returns
    trend + season + residual; ``components`` returns the three parts.

    forward(x: (batch, series, time), t: (batch,), observed, mask, side: as :class:`CSDINetwork`, used only when
    ``num_covariates`` > 0 (side) — Diffusion-TS is unconditional: forecasting and infill are done by
    reconstruction guidance at sampling time) -> (batch, series, time).
    """

    def __init__(self, num_series: int = 1, length: int = 24, num_covariates: int = 0, dim: int = 64,
                 depth: int = 2, heads: int = 4, trend_degree: int = 3, num_frequencies: int = 8):
        super().__init__()
        for value, name in ((num_series, "num_series"), (length, "length"), (dim, "dim"), (depth, "depth"),
                            (trend_degree, "trend_degree"), (num_frequencies, "num_frequencies")):
            _positive(value, name)
        self.config = {"num_series": num_series, "length": length, "num_covariates": num_covariates, "dim": dim,
                       "depth": depth, "heads": heads, "trend_degree": trend_degree,
                       "num_frequencies": num_frequencies}
        self.num_series, self.length, self.num_covariates = num_series, length, num_covariates
        self.proj = nn.Linear(num_series + num_covariates, dim)
        self.positions = SinusoidalEmbedding(dim)
        self.time_embedding = TimeEmbedding(dim, "sinusoidal")
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(TransformerDenoiserBlock(dim, heads, dim, 2) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.trend_head = nn.Linear(dim, num_series * (trend_degree + 1))
        frequencies = min(num_frequencies, max(1, length // 2))
        self.season_head = nn.Linear(dim, num_series * frequencies * 2)
        self.residual_head = nn.Linear(dim, num_series)
        grid = torch.linspace(0, 1, length, dtype=torch.float64)
        self.register_buffer("trend_basis", torch.stack([grid**p for p in range(trend_degree + 1)]).float(),
                             persistent=False)
        steps = torch.arange(length, dtype=torch.float64)
        k = torch.arange(1, frequencies + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * steps[None] / length
        self.register_buffer("season_basis", torch.cat([torch.cos(angle), torch.sin(angle)]).float(),
                             persistent=False)
        for head in (self.trend_head, self.season_head, self.residual_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def components(self, x: Tensor, t, observed=None, mask=None, side: Tensor | None = None):
        """(trend, season, residual), each (batch, series, time)."""
        batch, series, length = x.shape
        if series != self.num_series or length != self.length:
            raise ValueError(f"x: expected shape (batch, {self.num_series}, {self.length}), got {tuple(x.shape)}")
        tokens = x.transpose(1, 2)
        if self.num_covariates:
            if side is None or side.shape != (batch, self.num_covariates, length):
                raise ValueError(f"side: expected shape ({batch}, {self.num_covariates}, {length})")
            tokens = torch.cat([tokens, side.transpose(1, 2).to(x.dtype)], -1)
        h = self.proj(tokens) + self.positions(torch.arange(length, device=x.device, dtype=x.dtype))[None]
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype).expand(batch)
        c = self.time_mlp(self.time_embedding(t))
        for block in self.blocks:
            h = block(h, c)
        h = self.norm(h)
        pooled = h.mean(1)
        trend = torch.einsum("bsp,pl->bsl", self.trend_head(pooled).reshape(batch, series, -1),
                             self.trend_basis.to(x.dtype))
        season = torch.einsum("bsf,fl->bsl", self.season_head(pooled).reshape(batch, series, -1),
                              self.season_basis.to(x.dtype))
        residual = self.residual_head(h).transpose(1, 2)
        return trend, season, residual

    def forward(self, x: Tensor, t, observed=None, mask=None, side: Tensor | None = None) -> Tensor:
        trend, season, residual = self.components(x, t, side=side)
        return trend + season + residual
