"""Flow matching and stochastic interpolants (Lipman et al. 2023; Albergo & Vanden-Eijnden 2023; Liu et al. 2023).

The path is a core schedule: x_t = alpha(t) x0 + sigma(t) x1 (+ gamma(t) z), with t = 0 data and t = 1 source.
``FlowSchedule`` gives the linear path (rectified flow), ``VPCosineSchedule(s=0)`` the cosine (VP) path. The
network predicts the velocity u = alpha' x0 + sigma' x1 (+ gamma' z); the conditional target is exact.

Sampling reuses the core: ``FlowMatching.denoiser(model)`` is a Denoiser with ``prediction="flow"``, so every
core solver runs it. For a Gaussian source ``polydiff.core.sample`` starts from noise; for another source call
a solver function directly with x = source samples at grid[0].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..denoiser import Denoiser, append_dims
from ..grids import make_grid
from ..sampling import list_solvers
from ..schedules import FlowSchedule, NoiseSchedule
from .couplings import independent_coupling, ot_coupling

__all__ = ["FlowMatching", "reflow_pairs", "straightness"]


@dataclass(frozen=True)
class FlowMatching:
    """Conditional flow-matching loss over a path schedule and a coupling.

    Args:
        schedule: the interpolation path (alpha, sigma); FlowSchedule() is the linear path.
        coupling: "independent", "ot" (exact minibatch OT) or "sinkhorn".
        gamma: scale of the stochastic-interpolant latent, gamma(t) = gamma * sqrt(t (1 - t)) (0: deterministic).
        source: "gaussian" (x1 ~ N(0, I) drawn here) or "data" (batches carry their own (x0, x1) pairs).

    Calling ``loss(model, batch)`` (the Trainer's loss signature) draws t ~ U(t_min, t_max) per sample and
    returns the mean squared error between model(x_t, model_input(t)) and the conditional velocity.
    """

    schedule: NoiseSchedule = field(default_factory=FlowSchedule)
    coupling: str = "independent"
    gamma: float = 0.0
    source: str = "gaussian"

    def __post_init__(self):
        if self.coupling not in ("independent", "ot", "sinkhorn"):
            raise ValueError(f"coupling: expected 'independent', 'ot' or 'sinkhorn', got {self.coupling!r}")
        if self.gamma < 0:
            raise ValueError(f"gamma: expected >= 0, got {self.gamma}")
        if self.source not in ("gaussian", "data"):
            raise ValueError(f"source: expected 'gaussian' or 'data', got {self.source!r}")

    def pair(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(x0, x1) for a batch: a tensor of data (Gaussian source) or an (x0, x1) tuple (data source)."""
        if self.source == "data":
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError("batch: source='data' expects (x0, x1) pairs")
            x0, x1 = batch
        else:
            x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
            x1 = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        if self.coupling == "independent":
            return independent_coupling(x0, x1)
        return ot_coupling(x0, x1, method="exact" if self.coupling == "ot" else "sinkhorn", generator=generator)

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(x_t, target velocity) at per-sample times t: (batch,)."""
        alpha, sigma = (append_dims(v.to(x0.dtype), x0.ndim) for v in self.schedule.alpha_sigma(t))
        d_alpha, d_sigma = (append_dims(v.to(x0.dtype), x0.ndim) for v in self.schedule.derivatives(t))
        x_t = alpha * x0 + sigma * x1
        target = d_alpha * x0 + d_sigma * x1
        if self.gamma > 0:
            tt = append_dims(t.to(x0.dtype), x0.ndim)
            root = torch.sqrt(tt * (1 - tt))
            x_t = x_t + self.gamma * root * z
            target = target + self.gamma * (1 - 2 * tt) / (2 * root) * z
        return x_t, target

    def __call__(self, model, batch, generator: torch.Generator | None = None) -> Tensor:
        x0, x1 = self.pair(batch, generator)
        s = self.schedule
        u = torch.rand(x0.shape[0], generator=generator, dtype=torch.float64, device=x0.device)
        t = s.t_min + (s.t_max - s.t_min) * u
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) if self.gamma else None
        x_t, target = self.interpolate(x0, x1, t, z)
        prediction = model(x_t, s.model_input(t).to(x0.dtype))
        return (prediction - target).pow(2).mean()

    def denoiser(self, model) -> Denoiser:
        """A core Denoiser for a velocity model trained with this loss (runs on every core solver)."""
        return Denoiser(model, self.schedule, prediction="flow")


@torch.no_grad()
def reflow_pairs(denoiser: Denoiser, x1: Tensor, solver: str = "dpmpp_2m", steps: int = 20,
                 grid: str = "logsnr") -> tuple[Tensor, Tensor]:
    """Rectified flow's reflow step (Liu et al. 2023, Algorithm 1): solve the learned ODE from the source samples
    x1 to x0 = ODE(x1) and return the deterministic coupling (x0, x1), to train the next, straighter flow with
    ``FlowMatching(source="data")``."""
    table = list_solvers()
    if solver not in table:
        raise ValueError(f"solver: unknown solver {solver!r}; choices: {list(table)}")
    times = make_grid(denoiser.schedule, steps, grid, device=x1.device)
    x0 = table[solver](denoiser, x1, times)
    return x0, x1


def straightness(denoiser: Denoiser, x1: Tensor, steps: int = 50) -> float:
    """Mean squared deviation of the learned velocity from the straight line x1 -> x0 (Liu et al. 2023, eq. 5):
    0 for a perfectly straight flow. Uses Euler on a uniform grid."""
    s = denoiser.schedule
    times = torch.linspace(s.t_max, s.t_min, steps + 1, dtype=torch.float64, device=x1.device)
    x, velocities = x1.clone(), []
    for i in range(steps):
        t = times[i].expand(x.shape[0])
        x0, eps = denoiser.predict(x, t)
        d_alpha, d_sigma = (append_dims(v.to(x.dtype), x.ndim) for v in s.derivatives(t))
        velocity = d_alpha * x0 + d_sigma * eps
        velocities.append(velocity)
        x = x + (times[i + 1] - times[i]).to(x.dtype) * velocity
    chord = (x1 - x) / (times[0] - times[-1]).to(x.dtype)
    return float(sum((chord - v).pow(2).mean() for v in velocities) / steps)
