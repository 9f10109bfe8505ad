"""Zero-shot inverse-problem samplers on a pretrained diffusion model: sample x ~ p(x | y) for y = A x + n.

Each is a plain loop over a core time grid (``(batch, ...)`` x from grid[0], strictly decreasing times, per-sample
grids allowed) with the denoiser's (x0, eps) prediction and a DDIM step (eta = 1: DDPM ancestral):
    RePaint   (Lugmayr et al., 2022)   replace the row-space part by the noised measurement, with resampling
    ILVR      (Choi et al., 2021)      the same low-pass replacement phi_N = A^+ A, no resampling, over a t range
    DDNM      (Wang et al., 2023)      null-space projection of the x0 prediction, eq. 13
    DDNM+     (Wang et al., 2023)      noise-aware projection with scaled lambda_t / gamma_t, eq. 17-19, time travel
    DPS       (Chung et al., 2023)     gradient of ||y - A x0(x_t)||^2 through the denoiser, Algorithm 1
    DiffPIR   (Zhu et al., 2023)       half-quadratic split: closed-form data step on x0 (module ``diffpir``)
``callback`` receives {"i", "x", "t", "x0"} after every denoising move. End the grid at t = 0 (``final_zero``) to
return the final corrected x0 itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..sampling import coef, noise_like, step_range
from .common import check_problem, ddim_noise_scale, ddim_step, renoise, resampling_path
from .diffpir import sample_diffpir

__all__ = ["sample_repaint", "sample_ilvr", "sample_ddnm", "sample_ddnm_plus", "sample_dps", "INVERSE_METHODS"]


def _replace_row_space(x: Tensor, operator, y_pinv: Tensor, alpha: Tensor, sigma: Tensor, generator) -> Tensor:
    """x <- phi(alpha A^+ y + sigma z) + (I - phi) x with phi = A^+ A: the known part, noised to the level of x."""
    known = coef(alpha, x) * y_pinv + coef(sigma, x) * operator._pinv(operator._forward(noise_like(x, generator)))
    return x - operator._pinv(operator._forward(x)) + known


@torch.no_grad()
def sample_repaint(denoiser, x, grid, operator, y, *, jump_length: int = 10, jump_n_sample: int = 10,
                   eta: float = 1.0, cond=None, generator=None, callback=None, progress: bool = False):
    """RePaint (Lugmayr et al., 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic Models", Alg. 1):
    each step x_{s} = phi(alpha_s A^+ y + sigma_s z) + (I - phi) DDIM(x_t), phi = A^+ A (the mask for inpainting),
    and the resampling schedule of :func:`resampling_path` (jump back ``jump_length`` grid steps by forward
    diffusion, ``jump_n_sample`` times). NFE = ``path_nfe(resampling_path(N, jump_length, jump_n_sample))``.
    x: (batch, *operator.input_shape); y: (batch or 1, *operator.output_shape)."""
    grid, coefficients, y = check_problem(denoiser, x, grid, operator, y)
    t, alpha, sigma, _ = coefficients
    noise_scale, y_pinv, cond = ddim_noise_scale(coefficients, eta), operator._pinv(y), cond or {}
    path = resampling_path(len(grid) - 1, jump_length, jump_n_sample)
    for step in step_range(len(path), progress, "repaint"):
        i, j = path[step]
        if j < i:
            x = renoise(x, coefficients, i, j, generator)
            continue
        x0, eps = denoiser.predict(x, t[i], **cond)
        x = ddim_step(x0, eps, alpha[j], sigma[j], noise_scale[i], noise_like(x, generator) if eta > 0 else None)
        x = _replace_row_space(x, operator, y_pinv, alpha[j], sigma[j], generator)
        if callback is not None:
            callback({"i": step, "x": x, "t": t[i], "x0": x0})
    return x


@torch.no_grad()
def sample_ilvr(denoiser, x, grid, operator, y, *, t_stop: float = 0.0, eta: float = 1.0, cond=None,
                generator=None, callback=None, progress: bool = False):
    """ILVR (Choi et al., 2021, "ILVR: Conditioning Method for Denoising Diffusion Probabilistic Models", Alg. 1):
    x_{s} = phi_N(y_s) + (I - phi_N)(x'_s) with x'_s the unconditional step, y_s = alpha_s A^+ y + sigma_s z the
    noised reference and phi_N = A^+ A the low-pass filter (for :class:`Downsample`: average-pool then
    nearest-upsample by the factor N). Refinement is applied while the target time is >= ``t_stop``
    (the paper's conditioning range; 0: every step)."""
    grid, coefficients, y = check_problem(denoiser, x, grid, operator, y)
    t, alpha, sigma, _ = coefficients
    noise_scale, y_pinv, cond = ddim_noise_scale(coefficients, eta), operator._pinv(y), cond or {}
    refine = t[1:] >= t_stop  # decided before the loop: no host sync inside
    for i in step_range(len(grid) - 1, progress, "ilvr"):
        x0, eps = denoiser.predict(x, t[i], **cond)
        x_next = ddim_step(x0, eps, alpha[i + 1], sigma[i + 1], noise_scale[i],
                           noise_like(x, generator) if eta > 0 else None)
        refined = _replace_row_space(x_next, operator, y_pinv, alpha[i + 1], sigma[i + 1], generator)
        x = torch.where(coef(refine[i], x_next).bool(), refined, x_next)
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x


@torch.no_grad()
def sample_ddnm(denoiser, x, grid, operator, y, *, eta: float = 0.85, cond=None, generator=None, callback=None,
                progress: bool = False):
    """DDNM (Wang et al., 2023, "Zero-Shot Image Restoration Using Denoising Diffusion Null-Space Model", eq. 13,
    Alg. 1): the x0 prediction is projected onto the measurement-consistent set,
    x0_hat = A^+ y + (I - A^+ A) x0 = x0 - A^+ (A x0 - y), then a DDIM step (eta; DDNM's reference code uses 0.85)
    with the network's eps. Noise-free: with a grid ending at t = 0, A x = y holds exactly."""
    grid, coefficients, y = check_problem(denoiser, x, grid, operator, y)
    t, alpha, sigma, _ = coefficients
    noise_scale, cond = ddim_noise_scale(coefficients, eta), cond or {}
    for i in step_range(len(grid) - 1, progress, "ddnm"):
        x0, eps = denoiser.predict(x, t[i], **cond)
        x0 = x0 - operator._pinv(operator._forward(x0) - y)
        x = ddim_step(x0, eps, alpha[i + 1], sigma[i + 1], noise_scale[i],
                      noise_like(x, generator) if eta > 0 else None)
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x


@torch.no_grad()
def sample_ddnm_plus(denoiser, x, grid, operator, y, *, eta: float = 0.85, travel_length: int = 1,
                     travel_repeat: int = 1, sigma_y: float | None = None, cond=None, generator=None,
                     callback=None, progress: bool = False):
    """DDNM+ (Wang et al., 2023, sec. 3.3, eq. 17-19): for noisy y = A x + n, n of std sigma_y (default
    ``operator.sigma_y``), x0_hat = x0 - lambda A^+ (A x0 - y), and the step adds fresh noise of std gamma instead
    of c, so that alpha_s lambda A^+ n plus the fresh noise has the step's std c:
        c >= alpha_s sigma_y:  lambda = 1,                       gamma = sqrt(c^2 - (alpha_s sigma_y)^2)
        otherwise:             lambda = c / (alpha_s sigma_y),   gamma = 0.
    Time travel (sec. 3.3, "Time-Travel Trick"): every ``travel_length`` steps jump back by forward diffusion and
    redo them, ``travel_repeat`` times in all (the path of :func:`resampling_path`). sigma_y = 0 and no travel
    is DDNM."""
    grid, coefficients, y = check_problem(denoiser, x, grid, operator, y)
    sigma_y = operator.sigma_y if sigma_y is None else float(sigma_y)
    if not sigma_y >= 0:
        raise ValueError(f"sigma_y: expected a value >= 0, got {sigma_y}")
    t, alpha, sigma, _ = coefficients
    c, cond = ddim_noise_scale(coefficients, eta), cond or {}
    measured = alpha[1:] * sigma_y  # std of alpha_s A^+ n
    lam = torch.where(measured > c, c / measured.clamp_min(1e-300), torch.ones_like(c))
    gamma = (c**2 - (lam * measured) ** 2).clamp_min(0).sqrt()
    path = resampling_path(len(grid) - 1, travel_length, travel_repeat)
    for step in step_range(len(path), progress, "ddnm+"):
        i, j = path[step]
        if j < i:
            x = renoise(x, coefficients, i, j, generator)
            continue
        x0, eps = denoiser.predict(x, t[i], **cond)
        x0 = x0 - coef(lam[i], x0) * operator._pinv(operator._forward(x0) - y)
        drift = ddim_step(x0, eps, alpha[j], sigma[j], c[i], None)  # fresh noise of std gamma, not c, below
        x = drift + coef(gamma[i], x0) * noise_like(x, generator) if eta > 0 else drift
        if callback is not None:
            callback({"i": step, "x": x, "t": t[i], "x0": x0})
    return x


def sample_dps(denoiser, x, grid, operator, y, *, zeta: float = 1.0, eta: float = 1.0, cond=None, generator=None,
               callback=None, progress: bool = False):
    """DPS (Chung et al., 2023, "Diffusion Posterior Sampling for General Noisy Inverse Problems", Alg. 1):
    x_s = DDIM(x_t) - zeta_t grad_{x_t} ||y - A x0(x_t)||^2 with zeta_t = zeta / ||y - A x0(x_t)|| per sample
    (the paper's step normalisation), the gradient taken through the denoiser by autograd. The model must be
    differentiable in x."""
    grid, coefficients, y = check_problem(denoiser, x, grid, operator, y)
    if not zeta >= 0:
        raise ValueError(f"zeta: expected zeta >= 0, got {zeta}")
    t, alpha, sigma, _ = coefficients
    noise_scale, cond = ddim_noise_scale(coefficients, eta), cond or {}
    x = x.detach()
    for i in step_range(len(grid) - 1, progress, "dps"):
        with torch.enable_grad():
            x_in = x.requires_grad_(True)
            x0, eps = denoiser.predict(x_in, t[i], **cond)
            squared = (operator._forward(x0) - y).abs().pow(2).flatten(1).sum(1)
            norm = squared.detach().sqrt().clamp_min(torch.finfo(x.dtype).tiny)
            grad = torch.autograd.grad((squared / norm).sum(), x_in)[0]
        with torch.no_grad():
            x = ddim_step(x0.detach(), eps.detach(), alpha[i + 1], sigma[i + 1], noise_scale[i],
                          noise_like(x, generator) if eta > 0 else None) - zeta * grad
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0.detach()})
    return x


INVERSE_METHODS = {"repaint": sample_repaint, "ilvr": sample_ilvr, "ddnm": sample_ddnm,
                   "ddnm_plus": sample_ddnm_plus, "dps": sample_dps, "diffpir": sample_diffpir}
