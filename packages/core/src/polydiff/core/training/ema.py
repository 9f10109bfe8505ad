"""Exponential moving average of a model's weights, with the warm-up decay schedule used by diffusion models.

decay(k) = 1 - (1 + k / inv_gamma) ** -power, clipped to [min_decay, max_decay], where k counts the optimizer
steps after ``warmup`` (diffusion_policy's ``EMAModel``; the schedule is @crowsonkb's). Before that the EMA copies
the model (decay 0). power = 2/3 reaches 0.999 after ~31.6k steps, power = 3/4 after ~10k.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA", "ema_decay"]


def ema_decay(step: int, *, max_decay: float, power: float = 2 / 3, inv_gamma: float = 1.0,
              min_decay: float = 0.0, warmup: int = 0) -> float:
    """Decay used for the EMA update made after optimizer step ``step`` (1-based)."""
    k = step - warmup
    if k <= 0:
        return 0.0
    value = 1.0 - (1.0 + k / inv_gamma) ** -power
    return max(min_decay, min(value, max_decay))


class EMA:
    """Holds ``ema_model`` (a deep copy of ``model`` in eval mode, no grads) and updates it in place.

    Floating-point parameters and buffers are averaged: ema <- decay * ema + (1 - decay) * model
    (``torch._foreach_lerp_`` with weight 1 - decay); integer buffers (BatchNorm's counters) are copied.
    """

    def __init__(self, model: nn.Module, *, max_decay: float, power: float = 2 / 3, inv_gamma: float = 1.0,
                 min_decay: float = 0.0, warmup: int = 0):
        self.ema_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.max_decay, self.power, self.inv_gamma = max_decay, power, inv_gamma
        self.min_decay, self.warmup = min_decay, warmup
        self.decay = 0.0
        self._pairs = None

    def _tensors(self, model: nn.Module):
        if self._pairs is None or self._pairs[0] is not model:
            ema_state = self.ema_model.state_dict(keep_vars=True)
            state = model.state_dict(keep_vars=True)
            if ema_state.keys() != state.keys():
                raise ValueError("model: its state_dict keys differ from the EMA copy's")
            floats = [(ema_state[k], state[k]) for k in state if state[k].is_floating_point()]
            others = [(ema_state[k], state[k]) for k in state if not state[k].is_floating_point()]
            self._pairs = (model, [e for e, _ in floats], [m for _, m in floats], others)
        return self._pairs[1:]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        """EMA update after optimizer step ``step`` (1-based); returns the decay used."""
        self.decay = ema_decay(step, max_decay=self.max_decay, power=self.power, inv_gamma=self.inv_gamma,
                               min_decay=self.min_decay, warmup=self.warmup)
        ema_floats, model_floats, others = self._tensors(model)
        ema_floats = [t.data for t in ema_floats]
        model_floats = [t.data for t in model_floats]
        if self.decay == 0.0:
            torch._foreach_copy_(ema_floats, model_floats)
        else:
            torch._foreach_lerp_(ema_floats, model_floats, 1.0 - self.decay)
        for ema_tensor, tensor in others:
            ema_tensor.data.copy_(tensor.data)
        return self.decay
