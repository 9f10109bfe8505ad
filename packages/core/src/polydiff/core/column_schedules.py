"""Learnable per-column noise schedules for mixed-type data and their joint sampler (Shi et al., 2025, "TabDiff:
a Mixed-type Diffusion Model for Tabular Data Generation", sec. 3.2-3.4).

Every numerical column i has its own variance-exploding noise level, the power mean of the EDM schedule

    sigma_i(t) = (sigma_min^(1/rho_i) + t (sigma_max^(1/rho_i) - sigma_min^(1/rho_i)))^rho_i,   t in [0, 1],

and every categorical column j its own masking schedule (MDLM's absorbing state, the mask)

    alpha_j(t) = 1 - (1 - eps) t^k_j          (the probability that the column is still visible at t),

with rho_i > 0 and k_j > 0 parameters learned with the denoiser: ``x_t = x_0 + sigma(t) eps`` is differentiable in
rho, and the masked-diffusion weight -alpha_j'(t) / (1 - alpha_j(t)) = k_j / t in k. Both are ``nn.Module``s whose
``forward`` is the schedule, so they train in the same optimizer as the network.

:func:`sample_columns` walks t from 1 to 0 on a grid: Heun's second-order step of the probability-flow ODE
dx_i/dt = (x_i - D_i(x, z, t)) sigma_i'(t) / sigma_i(t) for the numerical block (EDM's Algorithm 1, per column),
and MDLM's ancestral unmasking per categorical column, unmask with probability
(alpha_j(s) - alpha_j(t)) / (1 - alpha_j(t)) from t to s, drawing the value from the predicted x_0 law.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .schedules import check_real

__all__ = ["PowerMeanSchedule", "PowerMaskingSchedule", "sample_columns"]


def _check_columns(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def _column_values(name: str, value, count: int) -> Tensor:
    """A positive scalar, or one positive value per column, as a float64 (count,) tensor."""
    values = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if values.numel() == 1:
        values = values.expand(count)
    if values.numel() != count or not bool(torch.isfinite(values).all()) or not bool((values > 0).all()):
        raise ValueError(f"{name}: expected a positive finite number or {count} of them, got {value!r}")
    return values.clone()


def _times(t, like: Tensor) -> Tensor:
    """t as a (batch, 1) column of like's dtype and device."""
    return torch.as_tensor(t, dtype=like.dtype, device=like.device).reshape(-1, 1)


class PowerMeanSchedule(nn.Module):
    """sigma_i(t) for ``num_columns`` numerical columns with learnable rho_i (TabDiff eq. 5).

    rho: the initial rho of every column (a number or one per column; EDM's 7). ``forward(t)``: t (batch,) in
    [0, 1] -> sigma (batch, num_columns); ``derivative(t)`` is d sigma / dt in closed form. sigma(0) = sigma_min and
    sigma(1) = sigma_max for every rho.
    """

    def __init__(self, num_columns: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho=7.0,
                 learnable: bool = True):
        super().__init__()
        self.num_columns = _check_columns("num_columns", num_columns)
        self.sigma_min = check_real("sigma_min", sigma_min, low=0.0, low_open=True)
        self.sigma_max = check_real("sigma_max", sigma_max)
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min, sigma_max: expected 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        log_rho = _column_values("rho", rho, num_columns).log().float()
        self.log_rho = nn.Parameter(log_rho, requires_grad=bool(learnable))

    @property
    def rho(self) -> Tensor:
        return self.log_rho.exp()

    def _parts(self, t) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        rho = self.rho
        t = _times(t, rho)
        low, high = self.sigma_min ** (1 / rho), self.sigma_max ** (1 / rho)
        return t, rho, low + t * (high - low), high - low

    def forward(self, t) -> Tensor:
        _, rho, base, _ = self._parts(t)
        return base ** rho

    def derivative(self, t) -> Tensor:
        """d sigma_i / dt = rho_i base^(rho_i - 1) (sigma_max^(1/rho_i) - sigma_min^(1/rho_i)), (batch, columns)."""
        _, rho, base, span = self._parts(t)
        return rho * base ** (rho - 1) * span


class PowerMaskingSchedule(nn.Module):
    """alpha_j(t) = 1 - (1 - eps) t^k_j for ``num_columns`` categorical columns with learnable k_j (TabDiff eq. 7).

    ``forward(t)``: t (batch,) -> alpha (batch, num_columns); ``loss_weight(t)`` = -alpha'/(1 - alpha) = k / t,
    the weight of the masked-diffusion NELBO (MDLM eq. 10) per column.
    """

    def __init__(self, num_columns: int, k=1.0, eps: float = 1e-3, learnable: bool = True):
        super().__init__()
        self.num_columns = _check_columns("num_columns", num_columns)
        self.eps = check_real("eps", eps, low=0.0, high=1.0, high_open=True)
        self.log_k = nn.Parameter(_column_values("k", k, num_columns).log().float(), requires_grad=bool(learnable))

    @property
    def k(self) -> Tensor:
        return self.log_k.exp()

    def masked_probability(self, t) -> Tensor:
        """1 - alpha_j(t), (batch, columns)."""
        k = self.k
        return (1 - self.eps) * _times(t, k) ** k

    def forward(self, t) -> Tensor:
        return 1 - self.masked_probability(t)

    def loss_weight(self, t) -> Tensor:
        """-alpha_j'(t) / (1 - alpha_j(t)) = k_j / t for t in (0, 1], (batch, columns)."""
        k = self.k
        return k / _times(t, k)


def sample_columns(model: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, list[Tensor]]], noise: Tensor,
                   num_classes: list[int], sigma: PowerMeanSchedule | None, masking: PowerMaskingSchedule | None,
                   steps: int = 50, *, heun: bool = True, generator: torch.Generator | None = None
                   ) -> tuple[Tensor, Tensor]:
    """Joint sampling of numerical and categorical columns on the uniform grid t_i = 1 - i / steps.

    model(x (batch, d), z (batch, C) long, t (batch,)) -> (x0 (batch, d), [logits (batch, K_j)] * C): the data
    prediction of every numerical column and the x_0 logits of every categorical column (over its K_j values; the
    mask is not a value). z holds K_j for a masked column j. noise: (batch, d) standard normal, scaled here to
    sigma(1) = sigma_max (d may be 0). Returns (x (batch, d), z (batch, C) long) at t = 0, every column unmasked.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    if not isinstance(noise, Tensor) or noise.ndim != 2 or not noise.is_floating_point():
        raise ValueError("noise: expected a floating-point tensor (batch, numerical columns)")
    batch, d = noise.shape
    if d and (sigma is None or sigma.num_columns != d):
        raise ValueError(f"sigma: expected a PowerMeanSchedule over the {d} numerical columns of noise")
    num_classes = list(num_classes)
    if num_classes and (masking is None or masking.num_columns != len(num_classes)):
        raise ValueError(f"masking: expected a PowerMaskingSchedule over {len(num_classes)} categorical columns")
    device = noise.device
    masks = torch.tensor(num_classes, dtype=torch.long, device=device)
    z = masks.expand(batch, len(num_classes)).clone()
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=noise.dtype, device=device)
    x = noise * sigma(times[:1])[0] if d else noise
    for i in range(steps):
        t, s = times[i].expand(batch), times[i + 1].expand(batch)
        x0, logits = model(x, z, t)
        if d:
            sigma_t, sigma_s = sigma(t), sigma(s)
            slope = (x - x0) / sigma_t
            x_next = x + (sigma_s - sigma_t) * slope
            if heun and i < steps - 1:  # EDM: no correction on the step that lands on sigma_min
                x0_next, _ = model(x_next, z, s)
                x_next = x + (sigma_s - sigma_t) * (slope + (x_next - x0_next) / sigma_s) / 2
            x = x_next
        if num_classes:
            masked_t, masked_s = masking.masked_probability(t), masking.masked_probability(s)
            unmask = (masked_t - masked_s) / masked_t  # (batch, C): P(unmasked at s | masked at t)
            draw = torch.rand(z.shape, generator=generator, device=device, dtype=unmask.dtype) < unmask
            for j, column_logits in enumerate(logits):
                still = z[:, j] == masks[j]
                pick = still & draw[:, j]
                if bool(pick.any()):
                    value = torch.multinomial(torch.softmax(column_logits.double(), -1), 1,
                                              generator=generator).squeeze(1)
                    z[:, j] = torch.where(pick, value, z[:, j])
    return x, z
