"""Monotonic alignment search (Kim et al., 2020, Glow-TTS, Algorithm 1) in numba, as Grad-TTS uses it.

Given log-likelihoods value[i, j] of mel frame j under phoneme i, find the monotonic, surjective alignment
(frame 0 -> phoneme 0, frame T-1 -> phoneme N-1, each next frame on the same or the next phoneme) with the
largest total log-likelihood:
    Q[i, j] = value[i, j] + max(Q[i, j-1], Q[i-1, j-1])
then backtrack from (N-1, T-1). No Cython: numba compiles it on first use (cached on disk).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["monotonic_alignment", "maximum_path", "alignment_score"]

_NEG = -1e9


def _search(value: np.ndarray, path: np.ndarray, n: int, t: int) -> None:
    q = np.full((n, t), _NEG, dtype=np.float64)
    for j in range(t):
        for i in range(max(0, n - (t - j)), min(n, j + 1)):
            if j == 0:
                q[i, j] = value[i, j] if i == 0 else _NEG
                continue
            stay = q[i, j - 1]
            move = q[i - 1, j - 1] if i > 0 else _NEG
            q[i, j] = value[i, j] + (stay if stay >= move else move)
    i = n - 1
    for j in range(t - 1, -1, -1):
        path[i, j] = 1
        if j > 0 and i > 0 and (i == j or q[i - 1, j - 1] > q[i, j - 1]):
            i -= 1


_COMPILED = {}


def _compiled():
    if "fn" not in _COMPILED:
        import numba

        _COMPILED["fn"] = numba.njit(cache=True, nogil=True)(_search)
    return _COMPILED["fn"]


def monotonic_alignment(value: np.ndarray) -> np.ndarray:
    """The best monotonic alignment of a (phonemes N, frames T) score matrix, N <= T, as a 0/1 int32 (N, T)."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 2:
        raise ValueError(f"value: expected a (phonemes, frames) matrix, got shape {value.shape}")
    n, t = value.shape
    if n < 1 or t < n:
        raise ValueError(f"value: needs 1 <= phonemes <= frames, got {n} phonemes and {t} frames")
    if not np.isfinite(value).all():
        raise ValueError("value: contains NaN or inf")
    path = np.zeros((n, t), dtype=np.int32)
    _compiled()(np.ascontiguousarray(value), path, n, t)
    return path


def alignment_score(value: np.ndarray, path: np.ndarray) -> float:
    return float((np.asarray(value) * np.asarray(path)).sum())


def maximum_path(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Batched MAS: value (batch, N, T) and a 0/1 mask (batch, N, T) of the valid phoneme x frame region;
    returns the 0/1 alignment (batch, N, T) as value's dtype (no gradient)."""
    scores = value.detach().cpu().double().numpy()
    valid = mask.detach().cpu().numpy().astype(bool)
    out = np.zeros(scores.shape, dtype=np.float32)
    for b in range(scores.shape[0]):
        n = int(valid[b, :, 0].sum())
        t = int(valid[b, 0, :].sum())
        if n and t:
            out[b, :n, :t] = monotonic_alignment(scores[b, :n, :t])
    return torch.from_numpy(out).to(device=value.device, dtype=value.dtype)
