"""Denoising Diffusion Bridge Models (Zhou et al. 2024, "Denoising Diffusion Bridge Models") and Diffusion
Bridge Implicit Models (Zheng et al. 2025, "Diffusion Bridge Implicit Models").

A diffusion x_t = alpha_t x0 + sigma_t eps pinned at x_T = y has Gaussian bridge marginals (DDBM eq. 7-8)

    q(x_t | x0, y) = N(a_t y + b_t x0, c_t^2 I),   r_t = SNR_T / SNR_t = exp(2 (lambda_T - lambda_t)),
    a_t = (alpha_t / alpha_T) r_t,   b_t = alpha_t (1 - r_t),   c_t^2 = sigma_t^2 (1 - r_t).

So for a fixed end point y the shifted state u_t = x_t - a_t y = b_t x0 + c_t eps is an ordinary Gaussian
diffusion with alpha = b_t and sigma = c_t: ``BridgeSchedule`` is that schedule (its half-log-SNR is
lambda_t + log(1 - r_t) / 2, inverted in closed form) and ``BridgeDenoiser`` wraps a bridge network
``model(x_t, t_model, y, **cond) -> x0`` as a core Denoiser on u. Every core solver then runs on the bridge
after the first step out of the singular end point t = T (where b = c = 0); DBIM takes that first step by
sampling q(x_t | x0_hat, y) ("booting noise") and continues with DDIM(eta) — which is exactly DBIM's update
(their eq. 11) written in u. ``sample_ddbm_heun`` is DDBM's hybrid sampler: an Euler-Maruyama step of the
reverse bridge SDE followed by a Heun step of its probability-flow ODE (DDBM Algorithm 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..denoiser import Denoiser, Prediction, append_dims
from ..grids import check_grid
from ..sampling import coef, noise_like, step_range
from ..schedules import NoiseSchedule, _as_tensor
from ..solvers.ddim import sample_ddim

__all__ = ["BridgeSchedule", "BridgeDenoiser", "BridgeLoss", "sample_dbim", "sample_ddbm_heun"]


class BridgeSchedule(NoiseSchedule):
    """The shifted-state schedule (alpha = b_t, sigma = c_t) of ``base`` pinned at t_T (default base.t_max)."""

    def __init__(self, base: NoiseSchedule, t_T: float | None = None):
        self.base = base
        self.t_T = float(base.t_max if t_T is None else t_T)
        self.t_min, self.t_max = base.t_min, self.t_T
        self._lam_T = float(base.log_snr(torch.tensor(self.t_T, dtype=torch.float64)))
        self._log_alpha_T = float(base.log_alpha(torch.tensor(self.t_T, dtype=torch.float64)))

    def _log1m_r(self, t: Tensor) -> Tensor:
        return torch.log(-torch.expm1(2 * (self._lam_T - self.base.log_snr(t))))

    def log_alpha(self, t):
        t = _as_tensor(t)
        return self.base.log_alpha(t) + self._log1m_r(t)

    def log_snr(self, t):
        t = _as_tensor(t)
        return self.base.log_snr(t) + 0.5 * self._log1m_r(t)

    def t_from_log_snr(self, log_snr):
        log_snr = _as_tensor(log_snr)
        base_lam = 0.5 * torch.logaddexp(2 * log_snr, torch.full_like(log_snr, 2 * self._lam_T))
        return self.base.t_from_log_snr(base_lam)

    def shift(self, t) -> Tensor:
        """a_t, the weight of the end point y in the bridge mean."""
        t = _as_tensor(t)
        return torch.exp(self.base.log_alpha(t) - self._log_alpha_T + 2 * (self._lam_T - self.base.log_snr(t)))

    def model_input(self, t):
        return self.base.model_input(t)

    def config(self):
        return {"type": "bridge", "base": self.base.config(), "t_T": self.t_T}


class BridgeDenoiser(Denoiser):
    """A bridge network ``model(x_t, t_model, y, **cond) -> x0`` as a core Denoiser on the shifted state
    u = x_t - a_t y. y: (batch, ...) end points, the shape of x."""

    def __init__(self, model, schedule: BridgeSchedule, y: Tensor, **options):
        if not isinstance(schedule, BridgeSchedule):
            raise ValueError(f"schedule: expected a BridgeSchedule, got {type(schedule).__name__}")
        if not bool(torch.isfinite(y).all()):
            raise ValueError("y: contains NaN or inf")
        super().__init__(model, schedule, prediction="x0", **options)
        self.y = y

    def _evaluate(self, t: Tensor, x: Tensor, table: bool = False,
                  alpha_sigma: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        values = super()._evaluate(t, x, table, alpha_sigma)
        values["shift"] = append_dims(self.schedule.shift(t), x.ndim + (1 if table else 0)).to(x.dtype)
        return values

    def _call_model(self, u: Tensor, values: dict[str, Tensor], cond: dict) -> Prediction:
        if u.shape != self.y.shape:
            raise ValueError(f"x: expected the shape of y {tuple(self.y.shape)}, got {tuple(u.shape)}")
        t_model = values["t_model"]
        t_model = t_model.expand(u.shape[0]) if t_model.ndim == 0 else t_model
        x0 = self.model(u + values["shift"] * self.y, t_model, self.y, **cond)
        self.nfe += 1
        if x0.shape != u.shape:
            raise ValueError(f"model: output shape {tuple(x0.shape)} differs from input x {tuple(u.shape)}")
        return Prediction(x0=x0, x=u, alpha=values["alpha"], sigma=values["sigma"])


@dataclass(frozen=True)
class BridgeLoss:
    """x0-prediction bridge loss for paired data (x0, y): t ~ U(t_min, t_T - margin), x_t ~ q(x_t | x0, y),
    weight 1 (``weighting="simple"``) or SNR-scaled (``"snr"``: b_t^2 / c_t^2, clipped at ``max_weight``).
    Callable as ``loss(model, batch)`` with batch = (x0, y), the Trainer's signature."""

    schedule: BridgeSchedule
    weighting: str = "simple"
    margin: float = 1e-3
    max_weight: float = 5.0

    def __post_init__(self):
        if self.weighting not in ("simple", "snr"):
            raise ValueError(f"weighting: expected 'simple' or 'snr', got {self.weighting!r}")

    def __call__(self, model, batch, generator: torch.Generator | None = None) -> Tensor:
        x0, y = batch
        if x0.shape != y.shape:
            raise ValueError(f"batch: x0 {tuple(x0.shape)} and y {tuple(y.shape)} must have one shape")
        s = self.schedule
        u = torch.rand(x0.shape[0], generator=generator, dtype=torch.float64, device=x0.device)
        t = s.t_min + (s.t_T * (1 - self.margin) - s.t_min) * u
        b, c = (append_dims(v, x0.ndim).to(x0.dtype) for v in s.alpha_sigma(t))
        a = append_dims(s.shift(t), x0.ndim).to(x0.dtype)
        x_t = a * y + b * x0 + c * torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        error = (model(x_t, s.model_input(t).to(x0.dtype), y) - x0).pow(2)
        if self.weighting == "snr":
            error = error * (b / c).pow(2).clamp(max=self.max_weight)
        return error.mean()


def _check_bridge(denoiser, y, grid) -> Tensor:
    if not isinstance(denoiser, BridgeDenoiser):
        raise ValueError(f"denoiser: expected a BridgeDenoiser, got {type(denoiser).__name__}")
    if y.shape != denoiser.y.shape:
        raise ValueError(f"y: expected the denoiser's end points of shape {tuple(denoiser.y.shape)}")
    grid = check_grid(grid)
    if grid.ndim != 1:
        raise ValueError("grid: bridge samplers take a 1-D grid")
    return grid.to(device=y.device, dtype=torch.float64)


def sample_dbim(denoiser: BridgeDenoiser, y: Tensor, grid: Tensor, *, eta: float = 0.0,
                generator: torch.Generator | None = None, cond: dict | None = None, callback=None,
                progress: bool = False) -> Tensor:
    """DBIM: from the end point y at grid[0] (= t_T) to data at grid[-1].

    Step 1 boots from the singular end point: x0_hat = D(y, T), u ~ N(b x0_hat, c^2 I) at grid[1]. The remaining
    steps are DDIM(eta) on u (DBIM eq. 11; eta = 0 is the deterministic implicit sampler, eta = 1 the Markovian
    DDBM-like one). Returns x at grid[-1]: (batch, ...).
    """
    grid = _check_bridge(denoiser, y, grid)
    schedule: BridgeSchedule = denoiser.schedule
    cond = cond or {}
    u = torch.zeros_like(y)
    x0 = denoiser.predict(u, grid[0], **cond).x0 if float(grid[0]) < schedule.t_T else \
        denoiser.model(y, schedule.model_input(grid[0]).to(y.dtype).expand(y.shape[0]), y, **cond)
    b, c = schedule.alpha_sigma(grid[1])
    u = coef(b, y) * x0 + coef(c, y) * noise_like(y, generator)
    if len(grid) > 2:
        u = sample_ddim(denoiser, u, grid[1:], eta=eta, cond=cond, generator=generator, callback=callback,
                        progress=progress)
    return u + coef(schedule.shift(grid[-1]), y) * y


def sample_ddbm_heun(denoiser: BridgeDenoiser, y: Tensor, grid: Tensor, *, churn_step_ratio: float = 0.33,
                     generator: torch.Generator | None = None, cond: dict | None = None, callback=None,
                     progress: bool = False) -> Tensor:
    """DDBM's hybrid sampler (Algorithm 1): for each interval [t_i, t_{i+1}] an Euler-Maruyama step of the
    reverse bridge SDE to t_hat = t_i + churn_step_ratio (t_{i+1} - t_i), then a Heun step of the bridge
    probability-flow ODE from t_hat to t_{i+1} (Euler on the last step). Starts at x = y; grid[0] should be
    t_T (the first SDE step leaves the singular end point). Works in x (unshifted); drifts in time t:

        f = d log alpha / dt,  g^2 = -2 sigma^2 d lambda / dt,
        h = grad log p(x_T = y | x_t) = (alpha_T / alpha_t) (y - (alpha_T / alpha_t) x) / sigma_{T|t}^2,
        s = (a_t y + b_t x0_hat - x) / c_t^2,
        SDE drift  f x - g^2 (s - h),   ODE drift  f x - g^2 (s / 2 - h).
    """
    if not 0 <= churn_step_ratio < 1:
        raise ValueError(f"churn_step_ratio: expected a value in [0, 1), got {churn_step_ratio}")
    grid = _check_bridge(denoiser, y, grid)
    schedule: BridgeSchedule = denoiser.schedule
    base = schedule.base
    cond = cond or {}
    # keep the first evaluation off the singular end point (sigma_{T|t} = 0 there)
    start = torch.minimum(grid[0], torch.tensor(schedule.t_T * (1 - 1e-4), dtype=torch.float64, device=y.device))
    grid = torch.cat([start[None], grid[1:]])

    def drifts(x, t):
        t = t.reshape(())
        log_alpha = base.log_alpha(t)
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            d_log_alpha = torch.autograd.grad(base.log_alpha(tt), tt)[0]
            tt = t.detach().clone().requires_grad_(True)
            d_lam = torch.autograd.grad(base.log_snr(tt), tt)[0]
        sigma = base.sigma(t)
        g2 = -2 * sigma**2 * d_lam
        ratio = torch.exp(schedule._log_alpha_T - log_alpha)  # alpha_T / alpha_t
        var_T_given_t = math.exp(2 * schedule._log_alpha_T) * (math.exp(-2 * schedule._lam_T)
                                                             - torch.exp(-2 * base.log_snr(t)))
        u = x - coef(schedule.shift(t), x) * y
        x0 = denoiser.predict(u, t, **cond).x0
        b, c = schedule.alpha_sigma(t)
        score = (coef(b, x) * x0 - u) / coef(c**2, x)
        h = coef(ratio / var_T_given_t, x) * (y - coef(ratio, x) * x)
        return coef(d_log_alpha, x) * x, coef(g2, x), score, h, x0

    x = y.clone()
    n = len(grid) - 1
    for i in step_range(n, progress, "ddbm"):
        t, t_next = grid[i], grid[i + 1]
        if churn_step_ratio > 0:
            t_hat = t + churn_step_ratio * (t_next - t)
            fx, g2, score, h, _ = drifts(x, t)
            dt = (t_hat - t).to(x.dtype)
            x = x + (fx - g2 * (score - h)) * dt + (g2 * (-dt)).sqrt() * noise_like(x, generator)
            t = t_hat
        fx, g2, score, h, x0 = drifts(x, t)
        d = fx - g2 * (score / 2 - h)
        dt = (t_next - t).to(x.dtype)
        if i == n - 1:
            x = x + d * dt
        else:
            x_euler = x + d * dt
            fx2, g22, score2, h2, _ = drifts(x_euler, t_next)
            x = x + (d + fx2 - g22 * (score2 / 2 - h2)) / 2 * dt
        if callback is not None:
            callback({"i": i, "x": x, "t": t_next, "x0": x0})
    return x
