"""DiffPIR (Zhu et al., CVPR 2023, "Denoising Diffusion Models for Plug-and-Play Image Restoration", Alg. 1): a
half-quadratic split that alternates the diffusion model's x0 prediction (the prior step) with a closed-form
data step, then moves to the next time of the grid with the eps implied by the *corrected* x0.

At grid index i (time t, coefficients alpha_t, sigma_t; sigma_bar_t = sigma_t / alpha_t):

    x0      = D(x_t, t)                                             (denoiser)
    x0_hat  = argmin_x ||y - A x||^2 + rho_t ||x - x0||^2,   rho_t = lam sigma_y^2 / sigma_bar_t^2
            = x0 - A^+ (A x0 - y) / (1 + rho_t)                      (A^H = A^+: orthonormal rows)
    eps_hat = (x_t - alpha_t x0_hat) / sigma_t
    x_s     = alpha_s x0_hat + sigma_s (sqrt(1 - zeta) eps_hat + sqrt(zeta) z)

Noise-free (sigma_y = 0, the default when the operator has none): rho_t = 0 and the data step is DDNM's exact
projection onto {A x = y} (any operator with a pseudo-inverse); ending the grid at t = 0 returns x0_hat itself,
so A x = y holds to rounding. With sigma_y > 0 the closed form needs A A^H = I on A's range (``Mask`` with a 0/1
mask, ``SubsampledFourier``); other operators are refused. zeta = 0 is deterministic. Starting the grid at an
intermediate time from ``alpha x_init + sigma z`` (a warm start, as DiffPIR does for some tasks) is the caller's
choice of (x, grid).
"""

from __future__ import annotations

import math

import torch

from ..sampling import coef, noise_like, step_range
from .common import check_problem

__all__ = ["sample_diffpir", "diffpir_rho"]


def diffpir_rho(alpha, sigma, sigma_y: float, lam: float):
    """rho_t = lam sigma_y^2 alpha_t^2 / sigma_t^2, the weight of the prior in DiffPIR's data step."""
    return lam * sigma_y**2 * alpha**2 / sigma**2


def _check_partial_isometry(operator, x) -> None:
    probe = torch.randn((1,) + tuple(x.shape[1:]), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    measured = operator._forward(probe.to(x.dtype))
    adjoint, pinv = operator._adjoint(measured), operator._pinv(measured)
    scale = float(pinv.abs().max()) or 1.0
    if not torch.allclose(adjoint, pinv, atol=1e-4 * scale, rtol=1e-4):
        raise ValueError(f"operator: DiffPIR's closed-form data step with sigma_y > 0 needs A^H = A^+ "
                         f"(orthonormal rows, e.g. Mask or SubsampledFourier); {type(operator).__name__} is not")


@torch.no_grad()
def sample_diffpir(denoiser, x, grid, operator, y, *, zeta: float = 0.3, lam: float = 1.0,
                   sigma_y: float | None = None, cond=None, generator=None, callback=None, progress: bool = False):
    """DiffPIR from x at grid[0] down the grid (module docstring). zeta in [0, 1]: share of fresh noise in each
    step (0: deterministic); lam > 0: the data term's weight against the prior; sigma_y >= 0: measurement noise std
    (default ``operator.sigma_y``). ``callback`` receives {"i", "x", "t", "x0"} (x0: the data-consistent one)."""
    grid, coefficients, y = check_problem(denoiser, x, grid, operator, y)
    if not (isinstance(zeta, (int, float)) and 0 <= zeta <= 1):
        raise ValueError(f"zeta: expected a value in [0, 1], got {zeta!r}")
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam: expected a finite value > 0, got {lam!r}")
    sigma_y = operator.sigma_y if sigma_y is None else sigma_y
    if not (isinstance(sigma_y, (int, float)) and math.isfinite(sigma_y) and sigma_y >= 0):
        raise ValueError(f"sigma_y: expected a finite value >= 0, got {sigma_y!r}")
    if sigma_y > 0:
        _check_partial_isometry(operator, x)
    t, alpha, sigma, _ = coefficients
    cond = cond or {}
    keep, fresh = math.sqrt(1 - zeta), math.sqrt(zeta)
    for i in step_range(len(grid) - 1, progress, "diffpir"):
        x0, _ = denoiser.predict(x, t[i], **cond)
        weight = 1 / (1 + diffpir_rho(alpha[i], sigma[i], float(sigma_y), float(lam)))
        x0 = x0 - coef(weight, x0) * operator._pinv(operator._forward(x0) - y)
        eps = (x - coef(alpha[i], x) * x0) / coef(sigma[i], x)
        direction = keep * eps + fresh * noise_like(x, generator) if zeta > 0 else eps
        x = coef(alpha[i + 1], x0) * x0 + coef(sigma[i + 1], x0) * direction
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x
