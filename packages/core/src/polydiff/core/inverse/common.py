"""Shared plumbing of the inverse-problem samplers: input checks, the resampling ("time travel") path, and the
two moves every sampler makes on a core time grid — a DDIM step down and a forward-diffusion jump back up."""

from __future__ import annotations

import torch
from torch import Tensor

from ..sampling import GridCoefficients, check_inputs, coef, noise_like
from ..solvers.ddim import ddim_noise_scale as solver_noise_scale
from .operators import LinearOperator

__all__ = ["check_problem", "resampling_path", "ddim_noise_scale", "ddim_step", "renoise", "path_nfe"]


def check_problem(denoiser, x: Tensor, grid, operator, y: Tensor) -> tuple[Tensor, GridCoefficients, Tensor]:
    """Validate (denoiser, x, grid) with core's ``check_inputs``, then the operator and the measurement.
    y: (batch, *operator.output_shape) or (1, ...) shared by the batch. Returns (grid, coefficients, y in x's
    real dtype, complex for a complex operator). Raises ValueError naming the argument."""
    grid, coefficients = check_inputs(denoiser, x, grid)
    if not isinstance(operator, LinearOperator):
        raise ValueError(f"operator: expected a polydiff LinearOperator, got {type(operator).__name__}")
    if tuple(x.shape[1:]) != operator.input_shape:
        raise ValueError(f"operator: {type(operator).__name__} acts on samples of shape {operator.input_shape}, "
                         f"but x has shape {tuple(x.shape)}")
    y = operator.check_y(y, x.shape[0], "y")
    y = y.to(device=x.device, dtype=torch.complex128 if x.dtype == torch.float64 else torch.complex64) \
        if y.is_complex() else y.to(device=x.device, dtype=x.dtype)
    return grid, coefficients, y


def resampling_path(num_steps: int, jump_length: int = 1, jump_n_sample: int = 1) -> list[tuple[int, int]]:
    """The grid-index moves (i, j) of RePaint's resampling schedule (Lugmayr et al., 2022, sec. 4.2 and its
    reference ``get_schedule_jump``), also DDNM+'s time travel (Wang et al., 2023, sec. 3.3): denoise one step
    (j = i + 1); every ``jump_length`` steps counted from the clean end, jump back up ``jump_length`` steps
    (j = i - jump_length) and denoise again, ``jump_n_sample - 1`` times per jump point.
    jump_n_sample = 1 gives the plain path 0 -> 1 -> ... -> num_steps."""
    for name, value in (("num_steps", num_steps), ("jump_length", jump_length), ("jump_n_sample", jump_n_sample)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    remaining = {num_steps - t: jump_n_sample - 1 for t in range(0, num_steps - jump_length, jump_length)}
    path, index = [], 0
    while index < num_steps:
        path.append((index, index + 1))
        index += 1
        if remaining.get(index, 0) > 0:
            remaining[index] -= 1
            path.append((index, index - jump_length))
            index -= jump_length
    return path


def path_nfe(path: list[tuple[int, int]]) -> int:
    """Number of denoising moves (network calls) of a path."""
    return sum(j > i for i, j in path)


def ddim_noise_scale(coefficients: GridCoefficients, eta: float) -> Tensor:
    """Fresh-noise std c_i of each DDIM step i -> i + 1 (Song et al., 2021, eq. 16, in log-SNR form as in
    ``polydiff.core.solvers.ddim``); eta = 1 is DDPM's posterior std. (N,) or (N, batch)."""
    if not eta >= 0:
        raise ValueError(f"eta: expected eta >= 0, got {eta}")
    _, _, sigma, lam = coefficients
    return solver_noise_scale(sigma[1:], lam[:-1], lam[1:], eta)


def ddim_step(x0: Tensor, eps: Tensor, alpha_next: Tensor, sigma_next: Tensor, c: Tensor,
              noise: Tensor | None) -> Tensor:
    """x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z (z = ``noise``; None when c = 0)."""
    x = coef(alpha_next, x0) * x0 + coef((sigma_next**2 - c**2).clamp_min(0).sqrt(), x0) * eps
    return x if noise is None else x + coef(c, x0) * noise


def renoise(x: Tensor, coefficients: GridCoefficients, source: int, target: int,
            generator: torch.Generator | None) -> Tensor:
    """Forward diffusion q(x_target | x_source) from grid index ``source`` up to the noisier index ``target``:
    x_target = (alpha_target / alpha_source) x + sqrt(sigma_target^2 - (alpha_target / alpha_source)^2
    sigma_source^2) z."""
    _, alpha, sigma, _ = coefficients
    ratio = alpha[target] / alpha[source]
    std = (sigma[target] ** 2 - ratio**2 * sigma[source] ** 2).clamp_min(0).sqrt()
    return coef(ratio, x) * x + coef(std, x) * noise_like(x, generator)
