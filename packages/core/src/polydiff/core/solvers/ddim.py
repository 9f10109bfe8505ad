"""DDIM (Song, Meng & Ermon, 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16)."""

from __future__ import annotations

from torch import Tensor

from ..sampling import check_inputs, noise_like, register_solver, solver_tables, step_range
from .dpm_solver import step_table

__all__ = ["sample_ddim", "ddim_noise_scale"]


def ddim_noise_scale(sigma_next: Tensor, log_snr: Tensor, log_snr_next: Tensor, eta) -> Tensor:
    """The std c of the fresh noise of a DDIM step t -> s (Song et al., 2021, eq. 16, with lambda = log(alpha /
    sigma)): c = eta sigma_s sqrt(1 - exp(2 (lambda_t - lambda_s))); eta = 1 is DDPM's posterior std.
    Elementwise over any shapes that broadcast; the one place polydiff writes this formula."""
    return eta * sigma_next * (-(2 * (log_snr - log_snr_next)).expm1()).clamp_min(0).sqrt()


@register_solver("ddim")
def sample_ddim(denoiser, x, grid, *, eta: float = 0.0, cond=None, generator=None, callback=None,
                progress: bool = False):
    """DDIM from x at grid[0] down to grid[-1]; eta = 0 is the deterministic (probability-flow) sampler and
    eta = 1 matches DDPM's posterior variance.

    x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z, with c = eta sigma_s sqrt(1 - exp(2 (lambda_t - lambda_s)))
    (eq. 16 written with lambda = log(alpha / sigma)).
    x: (batch, ...); grid: (N + 1,) or (N + 1, batch) decreasing times.
    """
    if eta < 0:
        raise ValueError(f"eta: expected eta >= 0, got {eta}")
    grid, coefficients = check_inputs(denoiser, x, grid)
    t, alpha, sigma, lam = coefficients
    cond = cond or {}

    def build():
        noise_scale = ddim_noise_scale(sigma[1:], lam[:-1], lam[1:], eta)
        eps_scale = (sigma[1:] ** 2 - noise_scale**2).clamp_min(0).sqrt()
        return tuple(step_table(v, x) for v in (alpha[1:], eps_scale, noise_scale))

    x0_scale, eps_scale, noise_scale = solver_tables(coefficients, x, ("ddim", float(eta)), build)
    for i in step_range(len(grid) - 1, progress, "ddim"):
        x0, eps = denoiser.predict(x, t[i], **cond)
        x = (x0_scale[i] * x0).addcmul_(eps_scale[i], eps)
        if eta > 0:
            x.addcmul_(noise_scale[i], noise_like(x, generator))
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x
