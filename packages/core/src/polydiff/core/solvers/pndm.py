"""Pseudo numerical methods (Liu et al., 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds"):
PNDM = pseudo Runge-Kutta warm start + pseudo linear multistep, and PLMS with a pseudo-Heun warm start.

Both move with the transfer part phi(x, e, s -> t) = (alpha_t / alpha_s) x - sigma_t expm1(h) e (their eq. 9,
i.e. DDIM) and change only the noise estimate e fed to it. phi is exact Euler in the scaled variables
(x / alpha, sigma / alpha), so the multistep weights are those of Adams-Bashforth in sigma / alpha: on grids uniform
in sigma / alpha (``make_grid(..., "karras", rho=1)``) PNDM is fourth order; elsewhere the fixed weights cost order.
The pseudo Runge-Kutta midpoint is taken halfway in sigma / alpha (the paper halves the time index) so that the
warm start is exactly classical RK4 in those variables.
"""

from __future__ import annotations

import torch

from ..sampling import check_inputs, register_solver, step_range
from .dpm_solver import noise_first_order, step_table

__all__ = ["sample_pndm", "sample_plms"]

# Adams-Bashforth weights of the newest, previous, ... noise estimate (the paper's PLMS and its lower orders)
_ADAMS_BASHFORTH = {1: (1.0,), 2: (1.5, -0.5), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def _pseudo_multistep(denoiser, x, grid, runge_kutta_steps, cond, callback, progress, name):
    grid, (t, alpha, sigma, lam) = check_inputs(denoiser, x, grid)
    schedule = denoiser.schedule
    cond = cond or {}
    ratio, transfer = noise_first_order(alpha, sigma, lam)
    ratio, transfer = step_table(ratio, x), step_table(transfer, x)
    if runge_kutta_steps:
        sigma_tilde = torch.exp(-lam)  # sigma / alpha: 0 at t = 0
        t_mid = schedule.t_from_sigma_tilde((sigma_tilde[:-1] + sigma_tilde[1:]) / 2)
        alpha_mid, sigma_mid = schedule.alpha_sigma(t_mid)
        ratio_mid = step_table(alpha_mid / alpha[:-1], x)
        transfer_mid = step_table(-sigma_mid * torch.expm1(schedule.log_snr(t_mid) - lam[:-1]), x)
    history: list[torch.Tensor] = []  # noise estimates at the accepted points, newest first
    for i in step_range(len(t) - 1, progress, name):
        x0, eps = denoiser.predict(x, t[i], **cond)
        if i < runge_kutta_steps:  # pseudo Runge-Kutta (PRK): three more model calls in the step
            _, eps_2 = denoiser.predict(torch.addcmul(ratio_mid[i] * x, transfer_mid[i], eps), t_mid[i], **cond)
            _, eps_3 = denoiser.predict(torch.addcmul(ratio_mid[i] * x, transfer_mid[i], eps_2), t_mid[i], **cond)
            _, eps_4 = denoiser.predict(torch.addcmul(ratio[i] * x, transfer[i], eps_3), t[i + 1], **cond)
            direction = (eps + 2 * eps_2 + 2 * eps_3 + eps_4) / 6
        elif runge_kutta_steps == 0 and i == 0:  # PLMS warm start: pseudo improved Euler (one more call)
            _, eps_2 = denoiser.predict(torch.addcmul(ratio[i] * x, transfer[i], eps), t[i + 1], **cond)
            direction = (eps + eps_2) / 2
        else:  # pseudo linear multistep (PLMS), lower order while the history fills up
            weights = _ADAMS_BASHFORTH[min(len(history) + 1, 4)]
            direction = weights[0] * eps
            for weight, past in zip(weights[1:], history, strict=True):
                direction.add_(past, alpha=weight)
        history = [eps, *history[:2]]
        x = (ratio[i] * x).addcmul_(transfer[i], direction)
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x


@register_solver("pndm")
def sample_pndm(denoiser, x, grid, *, cond=None, generator=None, callback=None,
                progress: bool = False):
    """PNDM (Liu et al., 2022): three pseudo Runge-Kutta steps (4 model calls each), then the
    fourth-order pseudo linear multistep method (1 call per step).

    x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch) decreasing times. Returns x at grid[-1].
    """
    return _pseudo_multistep(denoiser, x, grid, 3, cond, callback, progress, "pndm")


@register_solver("plms")
def sample_plms(denoiser, x, grid, *, cond=None, generator=None, callback=None,
                progress: bool = False):
    """PLMS: the pseudo linear multistep method with a pseudo improved-Euler first step (2 calls) and
    Adams-Bashforth orders 2, 3 on the next steps, then 4 (diffusers' ``PNDMScheduler(skip_prk_steps=True)``).
    N + 1 model calls in all. Shapes as for :func:`sample_pndm`."""
    return _pseudo_multistep(denoiser, x, grid, 0, cond, callback, progress, "plms")
