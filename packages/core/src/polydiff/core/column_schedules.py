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
(alpha_j(s) - alpha_j(t)) / (1 - alpha_j(t)) from t to s, drawing the value from the predicted x_0 law. With
``churn`` > 0 it is TabDiff's mixed-type stochastic sampler: before each step, fresh noise and re-masking move
every column back to a slightly later time (EDM's churn, Algorithm 2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .schedules import check_real

__all__ = ["PowerMeanSchedule", "PowerMaskingSchedule", "sample_columns", "churn_time"]


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

    def inverse(self, sigma: Tensor) -> Tensor:
        """The time at which each column reaches ``sigma`` (batch, columns): (sigma^(1/rho_i) - sigma_min^(1/rho_i))
        / (sigma_max^(1/rho_i) - sigma_min^(1/rho_i)), beyond [0, 1] for sigma outside [sigma_min, sigma_max]."""
        rho = self.rho.to(sigma.dtype)
        low, high = self.sigma_min ** (1 / rho), self.sigma_max ** (1 / rho)
        return (sigma ** (1 / rho) - low) / (high - low)


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


def churn_time(t: float, gamma: float, sigma: PowerMeanSchedule | None) -> float:
    """The time a stochastic step first moves back to from ``t`` (TabDiff's mixed-type stochastic sampler, after
    EDM's churn): the latest time at which no numerical column's noise exceeds (1 + gamma) sigma_i(t), i.e. the
    smallest of the columns' inverse times (t (1 + gamma) without numerical columns); ``t`` itself when that lies
    beyond 1 or gamma is 0."""
    if gamma <= 0:
        return t
    if sigma is None:
        back = t * (1 + gamma)
    else:
        with torch.no_grad():
            level = sigma(torch.tensor([t], dtype=torch.float64)).double() * (1 + gamma)
            back = float(sigma.inverse(level).min())
    return t if back > 1 else max(back, t)


def sample_columns(model: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, list[Tensor]]], noise: Tensor,
                   num_classes: list[int], sigma: PowerMeanSchedule | None, masking: PowerMaskingSchedule | None,
                   steps: int = 50, *, heun: bool = True, churn: float = 0.0,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Joint sampling of numerical and categorical columns on the uniform grid t_i = 1 - i / steps.

    model(x (batch, d), z (batch, C) long, t (batch,)) -> (x0 (batch, d), [logits (batch, K_j)] * C): the data
    prediction of every numerical column and the x_0 logits of every categorical column (over its K_j values; the
    mask is not a value). z holds K_j for a masked column j. noise: (batch, d) standard normal, scaled here to
    sigma(1) = sigma_max (d may be 0). Returns (x (batch, d), z (batch, C) long) at t = 0, every column unmasked.

    churn: TabDiff's stochastic sampler (its default S_churn = 1; 0, the default here, is the deterministic
    sampler). Each step first moves back from t_i to t_hat = :func:`churn_time` (t_i, gamma) with gamma =
    min(churn / steps, sqrt(2) - 1): every numerical column gets fresh noise of variance sigma_i(t_hat)^2 -
    sigma_i(t_i)^2, and every unmasked categorical entry is masked again with probability (m_j(t_hat) -
    m_j(t_i)) / (1 - m_j(t_i)), m_j the masked probability; the step then runs from t_hat to t_(i+1).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    if isinstance(churn, bool) or not isinstance(churn, (int, float)) or not churn >= 0 or churn == float("inf"):
        raise ValueError(f"churn: expected a finite value >= 0, got {churn!r}")
    gamma = min(churn / steps, 2**0.5 - 1)
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
        back = churn_time(float(times[i]), gamma, sigma if d else None)
        if back > float(times[i]):
            t_now = torch.tensor(float(times[i]), dtype=noise.dtype, device=device)
            t_back = torch.tensor(back, dtype=noise.dtype, device=device)
            if d:
                extra = (sigma(t_back) ** 2 - sigma(t_now) ** 2).clamp_min(0).sqrt()
                x = x + extra * torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
            if num_classes:
                m_now, m_back = masking.masked_probability(t_now), masking.masked_probability(t_back)
                remask = (m_back - m_now) / (1 - m_now)  # (1, C)
                draw = torch.rand(z.shape, generator=generator, device=device, dtype=remask.dtype) < remask
                z = torch.where(draw & (z != masks), masks.expand_as(z), z)
            t = t_back.expand(batch)
        else:
            t = times[i].expand(batch)
        s = times[i + 1].expand(batch)
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
