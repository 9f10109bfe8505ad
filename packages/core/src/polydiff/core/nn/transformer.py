"""Transformer denoisers with adaLN-zero conditioning (Peebles & Xie, 2023, "Scalable Diffusion Models with
Transformers", sec. 3.2): each block regresses shift, scale and a gate for its attention and MLP branches from the
conditioning vector (time + context embedding), all zero-initialised so every block starts as the identity.
Optional cross-attention to a context sequence (as in PixArt-alpha / Stable Diffusion's transformer) sits between
self-attention and the MLP.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..pretrained import PretrainedMixin
from .embeddings import SinusoidalEmbedding, check_positive_int, check_time
from .unet1d import TimeEmbedding

__all__ = ["Attention", "TransformerDenoiserBlock", "TransformerDenoiser"]


class Attention(nn.Module):
    """Multi-head (cross-)attention. forward(x: (batch, length, dim), context: (batch, m, context_dim) | None,
    context_mask: (batch, m) bool, True = attend | None) -> (batch, length, dim)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: {heads} must divide dim={dim}")
        self.config = {"dim": dim, "heads": heads, "context_dim": context_dim, "dropout": float(dropout)}
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim if context_dim is None else context_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        batch, length, dim = x.shape
        source = x if context is None else context
        split = lambda z: z.reshape(batch, z.shape[1], self.heads, dim // self.heads).transpose(1, 2)  # noqa: E731
        q = split(self.q(x))
        k, v = (split(z) for z in self.kv(source).chunk(2, dim=-1))
        mask = None if context_mask is None else context_mask[:, None, None, :]
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(h.transpose(1, 2).reshape(batch, length, dim))


def _modulate(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return h * (1 + scale[:, None]) + shift[:, None]


class TransformerDenoiserBlock(nn.Module):
    """A DiT block with adaLN-zero: x += gate_a * Attn(modulate(LN(x))); [x += CrossAttn(LN(x), context)];
    x += gate_m * MLP(modulate(LN(x))), with (shift, scale, gate) x 2 = Linear(SiLU(c)), zero-initialised.

    Args:
        dim: token width; heads: attention heads (divides dim); cond_dim: width of the conditioning vector c;
        mlp_ratio: MLP hidden width / dim; dropout: attention and MLP dropout;
        context_dim: width of the context tokens for cross-attention (None: no cross-attention).

    forward(x: (batch, length, dim), c: (batch, cond_dim), context: (batch, m, context_dim) | None,
            context_mask: (batch, m) bool | None) -> (batch, length, dim).
    """

    def __init__(self, dim: int, heads: int, cond_dim: int, mlp_ratio: float = 4, dropout: float = 0.0,
                 context_dim: int | None = None):
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(heads, "heads")
        check_positive_int(cond_dim, "cond_dim")
        if dim % heads:
            raise ValueError(f"heads: {heads} must divide dim={dim}")
        if not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio: expected a positive value, got {mlp_ratio}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
        if context_dim is not None:
            check_positive_int(context_dim, "context_dim")
        self.config = {"dim": dim, "heads": heads, "cond_dim": cond_dim, "mlp_ratio": float(mlp_ratio),
                       "dropout": float(dropout), "context_dim": context_dim}
        self.dim, self.cond_dim, self.context_dim = dim, cond_dim, context_dim
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attention = Attention(dim, heads, dropout=dropout)
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attention = Attention(dim, heads, context_dim, dropout)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None = None,
                context_mask: Tensor | None = None) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x: expected shape (batch, length, {self.dim}), got {tuple(getattr(x, 'shape', ()))}")
        if c.shape != (x.shape[0], self.cond_dim):
            raise ValueError(f"c: expected shape ({x.shape[0]}, {self.cond_dim}), got {tuple(c.shape)}")
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.modulation(c).chunk(6, dim=-1)
        x = x + gate_a[:, None] * self.attention(_modulate(self.norm1(x), shift_a, scale_a))
        if self.context_dim is not None:
            if context is None or context.ndim != 3 or context.shape[0] != x.shape[0] \
                    or context.shape[-1] != self.context_dim:
                raise ValueError(f"context: expected shape ({x.shape[0]}, m, {self.context_dim}), "
                                 f"got {None if context is None else tuple(context.shape)}")
            if context_mask is not None and context_mask.shape != context.shape[:2]:
                raise ValueError(f"context_mask: expected shape {tuple(context.shape[:2])}, "
                                 f"got {tuple(context_mask.shape)}")
            x = x + self.cross_attention(self.norm_cross(x), context, context_mask)
        elif context is not None:
            raise ValueError("context: this block was built with context_dim=None (no cross-attention)")
        return x + gate_m[:, None] * self.mlp(_modulate(self.norm2(x), shift_m, scale_m))


class TransformerDenoiser(PretrainedMixin, nn.Module):
    """A small DiT over a token sequence: Linear in + fixed sinusoidal positions, ``depth`` adaLN-zero blocks
    conditioned on c = time_mlp(t) [+ Linear(cond)], a final adaLN LayerNorm and a zero-initialised linear head
    (DiT's ``FinalLayer``, so a fresh model outputs zeros).

    Args:
        in_features: token width of x; out_features: token width of the output (default: in_features);
        dim, depth, heads, mlp_ratio, dropout: transformer size; cond_dim: width of a global conditioning vector
        (0: none); context_dim: width of a context sequence for cross-attention (None: none);
        time_embedding_dim: width of the time features (projected to dim); max_period: of the sinusoids.

    forward(x: (batch, length, in_features), t: (batch,) or scalar, cond: (batch, cond_dim) | None,
            context: (batch, m, context_dim) | None, context_mask: (batch, m) bool | None)
        -> (batch, length, out_features).
    """

    def __init__(self, in_features: int, out_features: int | None = None, dim: int = 128, depth: int = 4,
                 heads: int = 4, cond_dim: int = 0, context_dim: int | None = None, mlp_ratio: float = 4,
                 dropout: float = 0.0, time_embedding_dim: int = 128, max_period: float = 10000.0):
        super().__init__()
        check_positive_int(in_features, "in_features")
        out_features = in_features if out_features is None else check_positive_int(out_features, "out_features")
        check_positive_int(dim, "dim")
        check_positive_int(depth, "depth")
        check_positive_int(time_embedding_dim, "time_embedding_dim")
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, int) or cond_dim < 0:
            raise ValueError(f"cond_dim: expected an integer >= 0, got {cond_dim!r}")
        self.config = {"in_features": in_features, "out_features": out_features, "dim": dim, "depth": depth,
                       "heads": heads, "cond_dim": cond_dim, "context_dim": context_dim, "mlp_ratio": float(mlp_ratio),
                       "dropout": float(dropout), "time_embedding_dim": time_embedding_dim,
                       "max_period": float(max_period)}
        self.in_features, self.cond_dim, self.dim = in_features, cond_dim, dim
        self.proj = nn.Linear(in_features, dim)
        self.positions = SinusoidalEmbedding(dim, max_period)
        self.time_embedding = TimeEmbedding(time_embedding_dim, "sinusoidal", max_period)
        self.time_proj = nn.Linear(time_embedding_dim, dim)
        self.cond_proj = nn.Linear(cond_dim, dim) if cond_dim else None
        self.blocks = nn.ModuleList(TransformerDenoiserBlock(dim, heads, dim, mlp_ratio, dropout, context_dim)
                                    for _ in range(depth))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.head = nn.Linear(dim, out_features)
        for layer in (self.final_modulation[1], self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, t, cond: Tensor | None = None, context: Tensor | None = None,
                context_mask: Tensor | None = None) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (batch, length, {self.in_features}), "
                             f"got {tuple(getattr(x, 'shape', ()))}")
        batch, length, _ = x.shape
        t = check_time(t, batch, x.dtype, x.device)
        c = self.time_proj(self.time_embedding(t))
        if self.cond_proj is not None:
            if cond is None or cond.shape != (batch, self.cond_dim):
                raise ValueError(f"cond: expected shape ({batch}, {self.cond_dim}), "
                                 f"got {None if cond is None else tuple(cond.shape)}")
            c = c + self.cond_proj(cond.to(x.dtype))
        elif cond is not None:
            raise ValueError("cond: this TransformerDenoiser was built with cond_dim=0")
        positions = self.positions(torch.arange(length, device=x.device, dtype=x.dtype))
        h = self.proj(x) + positions[None]
        for block in self.blocks:
            h = block(h, c, context, context_mask)
        shift, scale = self.final_modulation(c).chunk(2, dim=-1)
        return self.head(_modulate(self.final_norm(h), shift, scale))
