"""Couplings of a minibatch of data x0 with source samples x1 for flow matching.

``ot_coupling`` is the minibatch optimal-transport coupling of Tong et al. (2024, "Improving and Generalizing
Flow-Based Generative Models with Minibatch Optimal Transport") and Pooladian et al. (2023): with uniform weights
on two equal-size minibatches, the exact OT plan is a permutation, found by the assignment problem
(scipy's linear_sum_assignment); ``method="sinkhorn"`` samples pairs from an entropic plan (needs POT).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _check_pair(x0: Tensor, x1: Tensor) -> None:
    if x0.shape != x1.shape:
        raise ValueError(f"x1: expected the shape of x0 {tuple(x0.shape)}, got {tuple(x1.shape)}")
    if not (bool(torch.isfinite(x0).all()) and bool(torch.isfinite(x1).all())):
        raise ValueError("x0, x1: contain NaN or inf")


def independent_coupling(x0: Tensor, x1: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The product coupling: pairs as given (x0 and x1 are already independent draws)."""
    _check_pair(x0, x1)
    return x0, x1


def ot_coupling(x0: Tensor, x1: Tensor, method: str = "exact", reg: float = 0.05,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Re-pair (x0, x1) by the squared-Euclidean OT plan between the two minibatches (batch, ...).

    method: "exact" (a permutation of x1, the OT plan for uniform weights) or "sinkhorn" (pairs sampled from
    the entropic plan with regularisation ``reg`` relative to the mean cost).
    """
    _check_pair(x0, x1)
    a, b = x0.reshape(len(x0), -1).double(), x1.reshape(len(x1), -1).double()
    cost = torch.cdist(a, b).pow(2).cpu().numpy()
    if method == "exact":
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        order = torch.as_tensor(cols[np.argsort(rows)], device=x1.device)
        return x0, x1[order]
    if method == "sinkhorn":
        try:
            import ot
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ValueError("method: 'sinkhorn' needs the POT package (pip install pot)") from error
        n = len(a)
        plan = ot.sinkhorn(np.full(n, 1 / n), np.full(n, 1 / n), cost / cost.mean(), reg)
        probs = torch.as_tensor(plan.reshape(-1) / plan.sum())
        picks = torch.multinomial(probs, n, replacement=True, generator=generator)
        i, j = picks // n, picks % n
        return x0[i.to(x0.device)], x1[j.to(x1.device)]
    raise ValueError(f"method: expected 'exact' or 'sinkhorn', got {method!r}")
