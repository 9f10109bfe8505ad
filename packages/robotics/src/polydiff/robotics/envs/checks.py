"""Input checks shared by the environments."""

from __future__ import annotations

import numpy as np


def check_action(action, size: int) -> np.ndarray:
    """``action`` as a float64 array of shape (size,); ValueError naming it when the shape is wrong or it holds
    NaN or inf."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (size,):
        raise ValueError(f"action: expected shape ({size},), got {action.shape}")
    if not np.all(np.isfinite(action)):
        raise ValueError("action: contains NaN or inf")
    return action
