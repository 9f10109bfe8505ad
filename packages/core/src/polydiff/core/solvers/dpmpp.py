"""DPM-Solver++ (Lu et al., 2022b, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models"): multistep exponential integrators in the data-prediction form, and the 2M SDE variant.

The data form integrates x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^{lambda} x0 dlambda.
Its step to sigma = 0 (h = inf) is exact and NaN-free: sigma_t / sigma_s = 0 and -expm1(-h) = 1, so the last
step returns alpha_t x0. The coefficient tables are shared with the noise form in :mod:`.dpm_solver`.
"""

from __future__ import annotations

import torch

from ..sampling import check_inputs, noise_like, register_solver, solver_tables, step_range
from .dpm_solver import multistep_coefficients, multistep_orders, step_table

__all__ = ["sample_dpmpp_2m", "sample_dpmpp_3m", "sample_dpmpp_2m_sde"]


def _dpmpp_multistep(denoiser, x, grid, order, lower_order_final, cond, callback, progress, name):
    grid, coefficients = check_inputs(denoiser, x, grid)
    t, alpha, sigma, lam = coefficients
    cond = cond or {}

    def build():
        orders = multistep_orders(lam, order, lower_order_final, final_below=15)
        ratio = sigma[1:] / sigma[:-1]
        first = -alpha[1:] * torch.expm1(lam[:-1] - lam[1:])  # alpha_t (1 - e^{-h}), = alpha_t at h = inf
        return tuple(step_table(v, x) for v in multistep_coefficients(
            lam, alpha[1:], ratio, first, orders, data_prediction=True))

    ratio, c0, c1, c2 = solver_tables(coefficients, x, ("dpmpp", order, lower_order_final), build)
    x0_1 = x0_2 = None
    for i in step_range(len(t) - 1, progress, name):
        x0, _ = denoiser.predict(x, t[i], **cond)
        x0_1 = x0 if x0_1 is None else x0_1  # warm-up: the coefficients of missing history are zero
        x0_2 = x0_1 if x0_2 is None else x0_2
        x = ratio[i] * x  # a fresh tensor: the in-place updates below never touch the caller's x
        x.addcmul_(c0[i], x0).addcmul_(c1[i], x0_1)
        if order == 3:
            x.addcmul_(c2[i], x0_2)
        x0_1, x0_2 = x0, x0_1
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x


@register_solver("dpmpp_2m")
def sample_dpmpp_2m(denoiser, x, grid, *, lower_order_final: bool = True, cond=None, generator=None,
                    callback=None, progress: bool = False):
    """DPM-Solver++(2M) (Lu et al., 2022b, Algorithm 2): one model call per step,
    x_t = (sigma_t / sigma_s) x_s + alpha_t (1 - e^{-h}) ((1 + 1 / (2 r)) x0_s - 1 / (2 r) x0_prev), r = h_prev / h.

    The first step is first order; with ``lower_order_final`` and fewer than 15 steps the last step is too
    (diffusers' ``lower_order_final``), and a step to sigma = 0 always is. Equals diffusers'
    ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)`` on the same times.
    x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch) decreasing times. Returns x at grid[-1].
    Deterministic: ``generator`` is accepted and unused.
    """
    return _dpmpp_multistep(denoiser, x, grid, 2, lower_order_final, cond, callback, progress, "dpmpp_2m")


@register_solver("dpmpp_3m")
def sample_dpmpp_3m(denoiser, x, grid, *, lower_order_final: bool = True, cond=None, generator=None,
                    callback=None, progress: bool = False):
    """DPM-Solver++(3M) (Lu et al., 2022b; the third-order multistep of the authors' code, data form): one model
    call per step, orders 1, 2, 3, 3, ...; with ``lower_order_final`` and fewer than 15 steps the last two steps
    use orders 2 and 1. Shapes as for :func:`sample_dpmpp_2m`; ``generator`` is unused.

    Unlike diffusers' ``solver_order=3`` (and the reference code) this is third order: their second-difference
    term is half the one the phi_3 coefficient needs (see :func:`.dpm_solver.multistep_coefficients`), so their
    3M converges at order 2 and its trajectories differ from these at O(h^3) per step."""
    return _dpmpp_multistep(denoiser, x, grid, 3, lower_order_final, cond, callback, progress, "dpmpp_3m")


@register_solver("dpmpp_2m_sde")
def sample_dpmpp_2m_sde(denoiser, x, grid, *, eta: float = 1.0, lower_order_final: bool = True, cond=None,
                        generator=None, callback=None, progress: bool = False):
    """SDE-DPM-Solver++(2M) (Lu et al., 2022b, appendix; diffusers' ``algorithm_type="sde-dpmsolver++"``,
    "midpoint" form), with eta scaling the injected noise as in k-diffusion (eta = 0 is DPM-Solver++(2M)):

        x_t = (sigma_t / sigma_s) e^{-eta h} x_s + alpha_t (1 - e^{-(1 + eta) h}) (x0_s + D / 2)
              + sigma_t sqrt(1 - e^{-2 eta h}) z,     D = (x0_s - x0_prev) / r  (zero on first-order steps).

    One model call per step; ``generator`` seeds z. Shapes as for :func:`sample_dpmpp_2m`.
    """
    if not isinstance(eta, (int, float)) or eta < 0:
        raise ValueError(f"eta: expected a number >= 0, got {eta!r}")
    grid, coefficients = check_inputs(denoiser, x, grid)
    t, alpha, sigma, lam = coefficients
    cond = cond or {}

    def build():
        h = lam[1:] - lam[:-1]
        finite = torch.isfinite(h)
        safe_h = torch.where(finite, h, torch.ones_like(h))  # at h = inf (sigma_t = 0) only alpha_t x0 remains
        orders = multistep_orders(lam, 2, lower_order_final, final_below=15)
        r = torch.cat([safe_h[:1], safe_h[:-1]]) / safe_h
        zero = torch.zeros_like(h)
        ratio = torch.where(finite, sigma[1:] / sigma[:-1] * torch.exp(-eta * safe_h), zero)
        big_a = -alpha[1:] * torch.expm1(-(1 + eta) * h)
        second = torch.where(orders == 2, big_a / (2 * r), zero)
        noise_scale = torch.where(finite, sigma[1:] * (-torch.expm1(-2 * eta * safe_h)).clamp_min(0).sqrt(), zero)
        return tuple(step_table(v, x) for v in (ratio, big_a + second, -second, noise_scale))

    ratio, c0, c1, noise_scale = solver_tables(coefficients, x, ("dpmpp_2m_sde", float(eta), lower_order_final),
                                               build)
    x0_1 = None
    for i in step_range(len(t) - 1, progress, "dpmpp_2m_sde"):
        x0, _ = denoiser.predict(x, t[i], **cond)
        x0_1 = x0 if x0_1 is None else x0_1
        x = ratio[i] * x
        x.addcmul_(c0[i], x0).addcmul_(c1[i], x0_1)
        if eta > 0:
            x.addcmul_(noise_scale[i], noise_like(x, generator))
        x0_1 = x0
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x
