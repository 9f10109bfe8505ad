"""DDIM (Song, Meng & Ermon, 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16)."""

from __future__ import annotations

from ..sampling import check_inputs, coef, noise_like, register_solver, step_range


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
    grid, (t, alpha, sigma, lam) = check_inputs(denoiser, x, grid)
    cond = cond or {}
    noise_scale = eta * sigma[1:] * (-(2 * (lam[:-1] - lam[1:])).expm1()).clamp_min(0).sqrt()
    for i in step_range(len(grid) - 1, progress, "ddim"):
        x0, eps = denoiser.predict(x, t[i], **cond)
        c = noise_scale[i]
        x = coef(alpha[i + 1], x) * x0 + coef((sigma[i + 1] ** 2 - c**2).clamp_min(0).sqrt(), x) * eps
        if eta > 0:
            x = x + coef(c, x) * noise_like(x, generator)
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x
