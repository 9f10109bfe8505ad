"""Sample-based distances used by tests and benchmarks across packages."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sliced_wasserstein"]


def sliced_wasserstein(x: Tensor, y: Tensor, num_projections: int = 256, p: int = 2,
                       generator: torch.Generator | None = None) -> float:
    """Sliced p-Wasserstein distance between two sample sets x: (n, d) and y: (m, d) (Rabin et al. 2011):
    the p-th root of the mean over random unit directions of the 1-D W_p^p between the projected samples,
    computed exactly from quantiles (sorted projections, linearly interpolated when n != m)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: expected (n, d) and (m, d) sample sets, got {tuple(x.shape)} and {tuple(y.shape)}")
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        raise ValueError("x, y: contain NaN or inf")
    x, y = x.double(), y.double()
    directions = torch.randn(x.shape[1], num_projections, generator=generator, dtype=torch.float64)
    directions = (directions / directions.norm(dim=0, keepdim=True)).to(x.device)
    px, py = (x @ directions).sort(dim=0).values, (y @ directions).sort(dim=0).values
    n = max(len(px), len(py))
    levels = (torch.arange(n, dtype=torch.float64, device=x.device) + 0.5) / n

    def quantiles(sorted_values: Tensor) -> Tensor:
        k = len(sorted_values)
        position = (levels * k - 0.5).clamp(0, k - 1)
        low = position.floor().long()
        high = (low + 1).clamp(max=k - 1)
        weight = (position - low)[:, None]
        return sorted_values[low] * (1 - weight) + sorted_values[high] * weight

    return float(((quantiles(px) - quantiles(py)).abs() ** p).mean() ** (1 / p))
