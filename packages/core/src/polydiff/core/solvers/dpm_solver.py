"""DPM-Solver (Lu et al., 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling in
Around 10 Steps"), noise-prediction form: singlestep orders 1-3 (Algorithms 1-2) and the multistep 2M/3M
updates of the authors' reference code (introduced with Lu et al., 2022b).

Both forms integrate the probability-flow ODE exactly in its linear part, working in lambda = log(alpha / sigma):
x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} e^{-lambda} eps dlambda, with the phi-functions
written through expm1. This module also holds the coefficient tables that DPM-Solver++ (dpmpp.py) shares: the
data-prediction updates are the same formulas with (alpha, sigma, h) -> (sigma, alpha, -h).

A multistep solver is a linear recurrence x_{i+1} = a_i x_i + sum_k c_{i,k} m_{i-k} over the model outputs m.
Every coefficient (order warm-up, lower order on the final steps, the step to sigma = 0) is computed once,
vectorised over the grid, before the loop; the loop itself is a few fused multiply-adds per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..sampling import check_inputs, register_solver, solver_tables, step_range
from .euler import table

__all__ = ["sample_dpm_solver_1", "sample_dpm_solver_2", "sample_dpm_solver_3", "sample_dpm_solver_2m",
           "sample_dpm_solver_3m", "step_table", "multistep_orders", "multistep_coefficients", "noise_first_order",
           "check_order"]


# ----------------------------------------------------------------------------------------- shared tables


def check_order(order, allowed: tuple[int, ...], name: str = "order") -> int:
    if isinstance(order, bool) or not isinstance(order, int) or order not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {order!r}")
    return order


def step_table(values: Tensor, x: Tensor) -> tuple[Tensor, ...]:
    """Per-step coefficients (N,) or (N, batch) as N tensors in x's dtype shaped to broadcast over x:
    (1, ..., 1) or (batch, 1, ..., 1). Unbinding once before the loop leaves no tensor indexing inside it."""
    return table(values.to(x.device), x).unbind(0)


def _previous(values: Tensor, lag: int, fill: Tensor) -> Tensor:
    """values shifted down by ``lag`` along dim 0, the first ``lag`` rows taken from ``fill``."""
    return torch.cat([fill.expand(lag, *values.shape[1:]), values[: values.shape[0] - lag]]) if lag else values


def multistep_orders(lam: Tensor, order: int, lower_order_final: bool, final_below: float) -> Tensor:
    """The order used on each step, (N,) or (N, batch) int64.

    min(order, i + 1) warms the history up; with ``lower_order_final`` and fewer than ``final_below`` steps the
    last steps use min(order, N - i) (diffusers' rule for stability with few steps); a step to sigma = 0
    (lambda = +inf, h = inf) is always first order, which then returns alpha_t * x0 exactly.
    """
    num_steps = lam.shape[0] - 1
    index = torch.arange(num_steps, device=lam.device).reshape(num_steps, *(1,) * (lam.ndim - 1))
    orders = (index + 1).clamp(max=order)
    if lower_order_final and num_steps < final_below:
        orders = torch.minimum(orders, num_steps - index)
    orders = orders.expand(num_steps, *lam.shape[1:])
    return torch.where(torch.isinf(lam[1:]), torch.ones_like(orders), orders)


def multistep_coefficients(lam: Tensor, outer: Tensor, ratio: Tensor, first: Tensor, orders: Tensor,
                           data_prediction: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(a, c0, c1, c2), each (N,) or (N, batch): x_{i+1} = a x_i + c0 m_i + c1 m_{i-1} + c2 m_{i-2}.

    With hh = h for the noise form (outer = sigma_t, ratio = alpha_t / alpha_s) and hh = -h for the data form
    (outer = alpha_t, ratio = sigma_t / sigma_s), the 3M update of the authors' reference code (Lu et al., 2022b;
    ``multistep_dpm_solver_third_update``) is, with D2 corrected (see the note below),
        x_t = ratio x_s + A D0 + B D1 + C D2,
        A = -outer expm1(hh),  B = -outer (expm1(hh) / hh - 1),  C = -outer ((expm1(hh) - hh) / hh^2 - 1/2),
    with D0 = m0, D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1, r0 = h_{i-1} / h, r1 = h_{i-2} / h,
    D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1) ~ h m' and D2 = 2 (D1_0 - D1_1) / (r0 + r1) ~ h^2 m''.
    2M uses A D0 + A / 2 D1_0 (the "midpoint" form). Order 1 is DDIM, ``first`` m0 alone: the caller gives that
    coefficient, finite on a step to sigma = 0 (h = inf), where every higher-order term is masked out.

    Note: the reference code and diffusers (0.42) use D2 = (D1_0 - D1_1) / (r0 + r1) ~ h^2 m'' / 2, half the
    divided difference that the phi_3 coefficient C multiplies (expand m to second order: the exact term is
    C h^2 m''); that leaves an O(h^3) local error and makes their 3M second order. Here D2 carries the factor 2,
    which the convergence test in tests/core/test_solvers_exponential.py shows to be third order.
    """
    h = lam[1:] - lam[:-1]
    safe_h = torch.where(torch.isfinite(h), h, torch.ones_like(h))
    # past step sizes, the missing ones (warm-up, masked below) replaced by the current one to stay finite
    h_1 = _previous(safe_h, 1, safe_h[:1])
    h_2 = _previous(safe_h, 2, safe_h[:1])
    hs = -safe_h if data_prediction else safe_h
    em1 = torch.expm1(hs)
    big_a = -outer * em1
    big_b = -outer * (em1 / hs - 1)
    big_c = -outer * ((em1 - hs) / hs**2 - 0.5)
    r0, r1 = h_1 / safe_h, h_2 / safe_h
    zero = torch.zeros_like(h)
    # second order (midpoint): A m0 + A / (2 r0) (m0 - m1)
    c0_2, c1_2 = big_a + big_a / (2 * r0), -big_a / (2 * r0)
    # third order, expanded over m0, m1, m2: coefficients of D1_0 (u0) and D1_1 (u1)
    u0 = big_b * (1 + r0 / (r0 + r1)) + 2 * big_c / (r0 + r1)
    u1 = -big_b * r0 / (r0 + r1) - 2 * big_c / (r0 + r1)
    c0_3, c1_3, c2_3 = big_a + u0 / r0, -u0 / r0 + u1 / r1, -u1 / r1
    c0 = torch.where(orders == 1, first, torch.where(orders == 2, c0_2, c0_3))
    c1 = torch.where(orders == 1, zero, torch.where(orders == 2, c1_2, c1_3))
    c2 = torch.where(orders == 3, c2_3, zero)
    return ratio, c0, c1, c2


def noise_first_order(alpha: Tensor, sigma: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
    """DDIM in the noise form, x_t = (alpha_t / alpha_s) x_s - sigma_t expm1(h) eps_s (Lu et al., 2022, DPM-Solver-1),
    as (a, b) per step; at sigma_t = 0 the eps coefficient tends to -alpha_t sigma_s / alpha_s."""
    h = lam[1:] - lam[:-1]
    ratio = alpha[1:] / alpha[:-1]
    limit = -ratio * sigma[:-1]
    return ratio, torch.where(torch.isfinite(h), -sigma[1:] * torch.expm1(h), limit)


# ------------------------------------------------------------------------------------------- multistep


def _multistep(denoiser, x, grid, order, lower_order_final, cond, callback, progress, name):
    grid, coefficients = check_inputs(denoiser, x, grid)
    t, alpha, sigma, lam = coefficients
    cond = cond or {}

    def build():
        orders = multistep_orders(lam, order, lower_order_final, final_below=15)
        ratio, first = noise_first_order(alpha, sigma, lam)
        return tuple(step_table(v, x) for v in multistep_coefficients(lam, sigma[1:], ratio, first, orders,
                                                                      data_prediction=False))

    ratio, c0, c1, c2 = solver_tables(coefficients, x, ("dpm_solver_m", order, lower_order_final), build)
    eps_1 = eps_2 = None
    for i in step_range(len(t) - 1, progress, name):
        x0, eps = denoiser.predict(x, t[i], **cond)
        eps_1 = eps if eps_1 is None else eps_1
        eps_2 = eps_1 if eps_2 is None else eps_2
        x = ratio[i] * x  # a fresh tensor: the in-place updates below never touch the caller's x
        x.addcmul_(c0[i], eps).addcmul_(c1[i], eps_1)
        if order == 3:
            x.addcmul_(c2[i], eps_2)
        eps_1, eps_2 = eps, eps_1
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x


@register_solver("dpm_solver_2m")
def sample_dpm_solver_2m(denoiser, x, grid, *, lower_order_final: bool = True, cond=None, generator=None,
                         callback=None, progress: bool = False):
    """Multistep DPM-Solver-2 in the noise form (Lu et al., 2022b, reference code, "midpoint" form;
    diffusers' ``algorithm_type="dpmsolver", solver_order=2``). One model call per step.

    x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch) decreasing times. Returns x at grid[-1].
    """
    return _multistep(denoiser, x, grid, 2, lower_order_final, cond, callback, progress, "dpm_solver_2m")


@register_solver("dpm_solver_3m")
def sample_dpm_solver_3m(denoiser, x, grid, *, lower_order_final: bool = True, cond=None, generator=None,
                         callback=None, progress: bool = False):
    """Multistep DPM-Solver-3 in the noise form (Lu et al., 2022b, reference code). One model call per step;
    shapes as for dpm_solver_2m. Third order: its second-difference term is twice diffusers'
    ``algorithm_type="dpmsolver", solver_order=3`` one, which is second order (see ``multistep_coefficients``).
    The first-order first step costs order in the limit h -> 0; it is negligible at practical step counts."""
    return _multistep(denoiser, x, grid, 3, lower_order_final, cond, callback, progress, "dpm_solver_3m")


# ------------------------------------------------------------------------------------------ singlestep


def _singlestep(denoiser, x, grid, order, cond, callback, progress):
    grid, (t, alpha, sigma, lam) = check_inputs(denoiser, x, grid)
    schedule = denoiser.schedule
    cond = cond or {}
    h = lam[1:] - lam[:-1]
    finite = torch.isfinite(h)
    # a step to sigma = 0 would put its intermediate points at lambda = inf: it is taken first order instead
    orders = [order] * (len(t) - 1)
    if order > 1 and not bool(finite[-1].all()):
        orders[-1] = 1
    safe_h = torch.where(finite, h, torch.ones_like(h))
    ratio, first = noise_first_order(alpha, sigma, lam)
    # intermediate points s_k = t(lambda_s + r_k h), with r_k recomputed from the schedule's lambda there so that
    # every coefficient belongs to the time the model is actually called at
    stages = []
    for r_nominal in {1: (), 2: (0.5,), 3: (1 / 3, 2 / 3)}[order]:
        t_k = schedule.t_from_log_snr(lam[:-1] + r_nominal * safe_h)
        alpha_k, sigma_k = schedule.alpha_sigma(t_k)
        r_k = (schedule.log_snr(t_k) - lam[:-1]) / safe_h
        stages.append((t_k, alpha_k / alpha[:-1], -sigma_k * torch.expm1(r_k * safe_h), r_k, sigma_k))
    if order == 2:  # Algorithm 1: x_t = a x - sigma_t expm1(h) eps_s - sigma_t expm1(h) / (2 r1) (eps_s1 - eps_s)
        (t_1, ratio_1, first_1, r_1, _), = stages
        last = first / (2 * r_1)
    elif order == 3:  # Algorithm 2: u2 corrects with (eps_s1 - eps_s), x_t with (eps_s2 - eps_s)
        (t_1, ratio_1, first_1, r_1, _), (t_2, ratio_2, first_2, r_2, sigma_2) = stages
        coupling = -sigma_2 * r_2 / r_1 * (torch.expm1(r_2 * safe_h) / (r_2 * safe_h) - 1)
        last = -sigma[1:] / r_2 * (torch.expm1(safe_h) / safe_h - 1)
    ratio, first = step_table(ratio, x), step_table(first, x)
    if order >= 2:
        ratio_1, first_1, last = step_table(ratio_1, x), step_table(first_1, x), step_table(last, x)
    if order == 3:
        ratio_2, first_2, coupling = step_table(ratio_2, x), step_table(first_2, x), step_table(coupling, x)
    for i in step_range(len(t) - 1, progress, f"dpm_solver_{order}"):
        x0, eps = denoiser.predict(x, t[i], **cond)
        x_next = (ratio[i] * x).addcmul_(first[i], eps)  # DPM-Solver-1 (DDIM)
        if orders[i] == 2:
            u_1 = (ratio_1[i] * x).addcmul_(first_1[i], eps)
            _, eps_1 = denoiser.predict(u_1, t_1[i], **cond)
            x_next.addcmul_(last[i], eps_1 - eps)
        elif orders[i] == 3:
            u_1 = (ratio_1[i] * x).addcmul_(first_1[i], eps)
            _, eps_1 = denoiser.predict(u_1, t_1[i], **cond)
            u_2 = (ratio_2[i] * x).addcmul_(first_2[i], eps).addcmul_(coupling[i], eps_1 - eps)
            _, eps_2 = denoiser.predict(u_2, t_2[i], **cond)
            x_next.addcmul_(last[i], eps_2 - eps)
        x = x_next
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x


@register_solver("dpm_solver_1")
def sample_dpm_solver_1(denoiser, x, grid, *, cond=None, generator=None, callback=None,
                        progress: bool = False):
    """DPM-Solver-1 (Lu et al., 2022): the exponential Euler step in lambda, identical to DDIM.
    One model call per step. x: (batch, ...); grid: (N + 1,) or (N + 1, batch) decreasing times."""
    return _singlestep(denoiser, x, grid, 1, cond, callback, progress)


@register_solver("dpm_solver_2")
def sample_dpm_solver_2(denoiser, x, grid, *, cond=None, generator=None, callback=None,
                        progress: bool = False):
    """Singlestep DPM-Solver-2 (Lu et al., 2022, Algorithm 1, r1 = 1/2): an intermediate point at the
    lambda-midpoint, two model calls per step (one on a step to sigma = 0, which is first order)."""
    return _singlestep(denoiser, x, grid, 2, cond, callback, progress)


@register_solver("dpm_solver_3")
def sample_dpm_solver_3(denoiser, x, grid, *, cond=None, generator=None, callback=None,
                        progress: bool = False):
    """Singlestep DPM-Solver-3 (Lu et al., 2022, Algorithm 2, r1 = 1/3, r2 = 2/3): intermediate points at a third
    and two thirds of the step in lambda, three model calls per step (one on a step to sigma = 0)."""
    return _singlestep(denoiser, x, grid, 3, cond, callback, progress)
