"""D3PM transition matrices and their beta schedules (Austin et al., 2021, "Structured Denoising Diffusion
Models in Discrete State-Spaces", Section 3 and Appendix A.2).

Row convention: ``Q[i, j] = q(x_t = j | x_{t-1} = i)``, so a one-hot row vector moves as ``x_t ~ Cat(x_{t-1} Q_t)``
and the cumulative matrix is ``Qbar_t = Q_1 Q_2 ... Q_t`` (``Qbar_0 = I``). All matrices are float64.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..schedules import linear_betas

__all__ = ["TRANSITIONS", "d3pm_betas", "uniform_matrix", "absorbing_matrix", "gaussian_matrix",
           "transition_matrices", "cumulative_matrices"]

TRANSITIONS = ("uniform", "absorbing", "gaussian")


def _check_steps(num_steps) -> None:
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps: expected an integer >= 1, got {num_steps!r}")


def d3pm_betas(schedule: str, num_steps: int) -> np.ndarray:
    """The schedules of D3PM (Austin et al., 2021, Section 4 / Appendix B), float64 (num_steps,):

    - ``"cosine"``: alpha-bar(t) = cos((t/T + 0.008) / 1.008 * pi / 2) (no square, as in the D3PM code; the
      uniform transition's default), beta_t = min(1 - abar_t / abar_{t-1}, 0.999);
    - ``"jsd"``: beta_t = 1 / (T - t + 1) (Sohl-Dickstein et al., 2015; the absorbing default; it masks every
      token at t = T and leaves each unmasked with probability 1 - t / T);
    - ``"linear"``: beta from 0.02 to 1.0 (the discretized-Gaussian default; ``polydiff.core.schedules.linear_betas``).
    """
    _check_steps(num_steps)
    if schedule == "cosine":
        steps = np.arange(num_steps + 1, dtype=np.float64) / num_steps
        alpha_bar = np.cos((steps + 0.008) / 1.008 * np.pi / 2)
        return np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], 0.999)
    if schedule == "jsd":
        return 1.0 / np.arange(num_steps, 0, -1, dtype=np.float64)
    if schedule == "linear":
        if num_steps == 1:
            return np.array([1.0])
        return linear_betas(num_steps, 0.02, 1.0)
    raise ValueError(f"schedule: expected one of 'cosine', 'jsd', 'linear', got {schedule!r}")


def uniform_matrix(beta: float, num_classes: int) -> np.ndarray:
    """Q = (1 - beta) I + beta / K 1 1^T (Austin et al., 2021, Section 3.1 / Appendix A.2.1)."""
    return (1 - beta) * np.eye(num_classes) + beta / num_classes * np.ones((num_classes, num_classes))


def absorbing_matrix(beta: float, num_classes: int, mask_index: int) -> np.ndarray:
    """Q = (1 - beta) I + beta 1 e_m^T: every state jumps to the mask m with probability beta; m stays
    (Austin et al., 2021, Appendix A.2.2)."""
    q = (1 - beta) * np.eye(num_classes)
    q[:, mask_index] += beta
    return q


def gaussian_matrix(beta: float, num_classes: int) -> np.ndarray:
    """Discretized Gaussian over ordinal classes (Austin et al., 2021, Appendix A.2.1, eq. 16):
    Q[i, j] = exp(-4 (i - j)^2 / ((K - 1)^2 beta)) / sum_{n=-(K-1)}^{K-1} exp(-4 n^2 / ((K - 1)^2 beta)) for
    i != j, and Q[i, i] = 1 - sum_{j != i} Q[i, j]. Symmetric and doubly stochastic (stationary law uniform)."""
    k = num_classes
    n = np.arange(-(k - 1), k, dtype=np.float64)
    log_w = -4.0 * n**2 / ((k - 1) ** 2 * beta)
    weights = np.exp(log_w - log_w.max())  # log_w.max() = 0 at n = 0, kept for clarity
    weights /= weights.sum()
    index = np.arange(k)
    q = weights[(index[None, :] - index[:, None]) + (k - 1)]
    np.fill_diagonal(q, 0.0)
    np.fill_diagonal(q, 1.0 - q.sum(1))
    return q


def transition_matrices(kind: str, betas, num_classes: int, mask_index: int | None = None) -> Tensor:
    """One-step matrices Q_1 .. Q_T as a float64 tensor (T, K, K)."""
    if kind not in TRANSITIONS:
        raise ValueError(f"kind: expected one of {TRANSITIONS}, got {kind!r}")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size < 1 or not np.all(np.isfinite(betas)) or np.any(betas <= 0) \
            or np.any(betas > 1):
        raise ValueError("betas: expected a 1-D array of values in (0, 1]")
    if kind == "uniform":
        mats = [uniform_matrix(b, num_classes) for b in betas]
    elif kind == "absorbing":
        if mask_index is None or not 0 <= mask_index < num_classes:
            raise ValueError(f"mask_index: expected an index in [0, {num_classes}), got {mask_index!r}")
        mats = [absorbing_matrix(b, num_classes, mask_index) for b in betas]
    else:
        if num_classes < 2:
            raise ValueError("num_classes: the gaussian transition needs at least 2 classes")
        mats = [gaussian_matrix(b, num_classes) for b in betas]
    return torch.from_numpy(np.stack(mats))


def cumulative_matrices(q: Tensor) -> Tensor:
    """Qbar_0 = I, Qbar_t = Qbar_{t-1} Q_t: (T + 1, K, K) float64 from q (T, K, K)."""
    out = [torch.eye(q.shape[-1], dtype=torch.float64)]
    for step in q.to(torch.float64):
        out.append(out[-1] @ step)
    return torch.stack(out)
