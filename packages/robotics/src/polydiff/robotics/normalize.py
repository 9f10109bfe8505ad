"""Min-max normalisation to [-1, 1] per feature (Diffusion Policy's ``LinearNormalizer`` in "limits" mode)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["MinMaxNormalizer"]


class MinMaxNormalizer:
    """x -> 2 (x - low) / (high - low) - 1 per feature (last axis); a constant feature (high - low below
    ``eps``) maps to 0 and back to its value. Built from data with :meth:`fit`; ``to_dict`` / ``from_dict`` for
    JSON configs. Works on numpy arrays and torch tensors (same type out as in)."""

    def __init__(self, low, high, eps: float = 1e-6):
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        if low.ndim != 1 or low.shape != high.shape or low.size == 0:
            raise ValueError(f"low, high: expected two 1-D arrays of the same length, got {low.shape} and {high.shape}")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))) or np.any(high < low):
            raise ValueError("low, high: expected finite values with high >= low")
        self.low, self.high, self.eps = low, high, float(eps)
        span = high - low
        self.constant = span < eps
        self.scale = np.where(self.constant, 1.0, 2.0 / np.where(self.constant, 1.0, span))
        self.offset = np.where(self.constant, -low, -1.0 - low * self.scale)

    @classmethod
    def fit(cls, data) -> MinMaxNormalizer:
        """From data (..., features): per-feature min and max over every other axis."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim < 1 or data.size == 0 or not np.all(np.isfinite(data)):
            raise ValueError("data: expected a non-empty finite array (..., features)")
        flat = data.reshape(-1, data.shape[-1])
        return cls(flat.min(0), flat.max(0))

    @property
    def dim(self) -> int:
        return self.low.size

    def _check(self, x, name: str):
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"{name}: expected last axis of size {self.dim}, got shape {tuple(x.shape)}")

    def _coefficients(self, x):
        if isinstance(x, Tensor):
            return (torch.as_tensor(self.scale, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.offset, dtype=x.dtype, device=x.device))
        return self.scale, self.offset

    def normalize(self, x):
        """Data -> [-1, 1] (constant features -> 0)."""
        self._check(x, "x")
        scale, offset = self._coefficients(x)
        return x * scale + offset

    def unnormalize(self, z):
        """[-1, 1] -> data (the exact inverse of :meth:`normalize`)."""
        self._check(z, "z")
        scale, offset = self._coefficients(z)
        return (z - offset) / scale

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist(), "eps": self.eps}

    @classmethod
    def from_dict(cls, values: dict) -> MinMaxNormalizer:
        return cls(values["low"], values["high"], values.get("eps", 1e-6))
