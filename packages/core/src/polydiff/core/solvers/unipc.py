"""UniPC (Zhao et al., 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion
Models"), data-prediction form: the multistep predictor UniP-p and the corrector UniC, which raises the order
to p + 1 at no extra model call by reusing the model output at the new point.

Both updates are linear in the model outputs, so every coefficient is computed once, vectorised over the grid,
before the loop: x_{i+1} = a x_i^c + sum_k p_{i,k} m_{i-k} (predictor) and
x_{i+1}^c = a x_i^c + k_new m_{i+1} + sum_k k_{i,k} m_{i-k} (corrector), where m are x0 predictions and x^c the
corrected states. The final step to sigma = 0 (h = inf) is taken first order and never corrected, so it returns
alpha_t x0 with no NaN, for "bh1" too (diffusers multiplies B(h) = -inf by zero there).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..sampling import check_inputs, register_solver, solver_tables, step_range
from .dpm_solver import check_order, multistep_orders, step_table

__all__ = ["sample_unipc", "unipc_coefficients"]

VARIANTS = ("bh1", "bh2")


def unipc_coefficients(lam: Tensor, alpha: Tensor, sigma: Tensor, orders: Tensor, variant: str):
    """Predictor (a, p0, p1, p2) and corrector (k_new, k0, k1, k2) tables, each (N,) or (N, batch).

    For the step s -> t with h = lambda_t - lambda_s, hh = -h, history nodes r_k = (lambda_{s-k} - lambda_s) / h
    and B(h) = hh ("bh1") or expm1(hh) ("bh2"), UniPC solves R rho = b with R_{jk} = r_k^j (nodes r_1.., 1) and
    b_j = j! g_j / B(h), g_1 = expm1(hh) / hh - 1, g_{j+1} = g_j / hh - 1 / (j + 1)! (Zhao et al., 2023,
    section 3 and the authors' code).
    Predictor of order p: x_t = (sigma_t / sigma_s) x_s - alpha_t expm1(hh) m0
        - alpha_t B(h) sum_{k<p} rho_k (m_k - m0) / r_k, rho = 1/2 for p = 2 (the authors' choice), else the
        leading (p - 1) x (p - 1) system; corrector: the same with the p x p system over (r_1.., 1) and the new
        output m_t in the last slot.
    """
    h = lam[1:] - lam[:-1]
    finite = torch.isfinite(h)
    safe_h = torch.where(finite, h, torch.ones_like(h))
    # missing history (warm-up) is filled with the current step size; those entries are masked out by order
    h_1 = torch.cat([safe_h[:1], safe_h[:-1]])
    h_2 = torch.cat([safe_h[:1], h_1[:-1]])
    r_1, r_2 = -h_1 / safe_h, -(h_1 + h_2) / safe_h
    hh = -safe_h
    h_phi_1 = torch.expm1(hh)
    b_h = hh if variant == "bh1" else h_phi_1
    g, b = h_phi_1 / hh - 1, []
    for j in range(1, 4):
        b.append(g * math.factorial(j) / b_h)
        g = g / hh - 1 / math.factorial(j + 1)
    alpha_t = alpha[1:]
    scale = -alpha_t * b_h
    base = -alpha_t * torch.expm1(lam[:-1] - lam[1:])  # -alpha_t expm1(-h): alpha_t at h = inf
    zero = torch.zeros_like(h)

    # predictor: order 2 uses rho = 1/2; order 3 solves [[1, 1], [r1, r2]] rho = (b1, b2)
    rho_1 = (b[0] * r_2 - b[1]) / (r_2 - r_1)
    rho_2 = b[0] - rho_1
    p1 = torch.where(orders == 2, scale * 0.5 / r_1, torch.where(orders == 3, scale * rho_1 / r_1, zero))
    p2 = torch.where(orders == 3, scale * rho_2 / r_2, zero)
    p0 = base - p1 - p2

    # corrector: order 1 uses rho = 1/2; order q solves the q x q Vandermonde system over (r_1, .., 1)
    k_new_1 = scale * 0.5
    nodes_2 = torch.stack([r_1, torch.ones_like(r_1)], -1)
    nodes_3 = torch.stack([r_1, r_2, torch.ones_like(r_1)], -1)
    rho_c2 = torch.linalg.solve(_vandermonde(nodes_2), torch.stack(b[:2], -1))
    rho_c3 = torch.linalg.solve(_vandermonde(nodes_3), torch.stack(b[:3], -1))
    k_new = torch.where(orders == 1, k_new_1, torch.where(orders == 2, scale * rho_c2[..., 1],
                                                          scale * rho_c3[..., 2]))
    k1 = torch.where(orders == 1, zero, torch.where(orders == 2, scale * rho_c2[..., 0], scale * rho_c3[..., 0]) / r_1)
    k2 = torch.where(orders == 3, scale * rho_c3[..., 1] / r_2, zero)
    k0 = base - k1 - k2 - k_new
    ratio = sigma[1:] / sigma[:-1]
    return (ratio, p0, p1, p2), (k_new, k0, k1, k2)


def _vandermonde(nodes: Tensor) -> Tensor:
    """(..., q) nodes -> (..., q, q) with row j holding nodes ** j."""
    powers = torch.arange(nodes.shape[-1], device=nodes.device, dtype=nodes.dtype)
    return nodes.unsqueeze(-2) ** powers.unsqueeze(-1)


@register_solver("unipc")
def sample_unipc(denoiser, x, grid, *, order: int = 2, variant: str = "bh2", use_corrector: bool = True,
                 lower_order_final: bool = True, cond=None, generator=None, callback=None,
                 progress: bool = False):
    """UniPC-p with UniC from x at grid[0] down to grid[-1]; one model call per step.

    order: predictor order p in {1, 2, 3} (the first steps warm up with orders 1, 2, ..); with the corrector the
        method has order p + 1. variant: "bh1" (B(h) = h, recommended under 10 steps unguided) or "bh2"
        (B(h) = e^h - 1). lower_order_final: on step i use order min(p, N - i), as diffusers' UniPC does for
        every step count. A step to sigma = 0 is first order. The corrector is skipped after the final step.
    Equals diffusers' ``UniPCMultistepScheduler(solver_order=p, solver_type=variant)`` on the same times.
    x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch) decreasing times. Returns x at grid[-1].

    The corrected state is never formed: x_i^c = x_i + k_new m_i + sum_k (k_k - p_k) m_{i-1-k} (both updates
    start from a x_{i-1}^c) is folded into the next predictor, x_{i+1} = a x_i + sum_k c_k m_{i-k}, so a step
    costs p + 2 fused multiply-adds over x.
    """
    check_order(order, (1, 2, 3))
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
    grid, coefficients = check_inputs(denoiser, x, grid)
    t, alpha, sigma, lam = coefficients
    cond = cond or {}

    def build():
        orders = multistep_orders(lam, order, lower_order_final, final_below=math.inf)
        (ratio, p0, p1, p2), (k_new, k0, k1, k2) = unipc_coefficients(lam, alpha, sigma, orders, variant)
        if use_corrector:  # the corrector of step i - 1, carried by the predictor of step i
            previous = lambda v: torch.cat([torch.zeros_like(v[:1]), v[:-1]])  # noqa: E731
            c0, c1 = p0 + ratio * previous(k_new), p1 + ratio * previous(k0 - p0)
            c2, c3 = p2 + ratio * previous(k1 - p1), ratio * previous(k2 - p2)
        else:
            c0, c1, c2, c3 = p0, p1, p2, torch.zeros_like(p0)
        return tuple(step_table(v, x) for v in (ratio, c0, c1, c2, c3))

    ratio, c0, c1, c2, c3 = solver_tables(coefficients, x, ("unipc", order, variant, bool(use_corrector),
                                                            bool(lower_order_final)), build)
    terms = order + 1 if use_corrector else order  # model outputs m_i, m_{i-1}, .. with nonzero weight
    m_1 = m_2 = m_3 = None
    for i in step_range(len(t) - 1, progress, "unipc"):
        x0, _ = denoiser.predict(x, t[i], **cond)
        if i == 0:
            m_1 = m_2 = m_3 = x0  # their coefficients are zero until the history fills up
        x_next = ratio[i] * x
        x_next.addcmul_(c0[i], x0)
        if terms > 1:
            x_next.addcmul_(c1[i], m_1)
        if terms > 2:
            x_next.addcmul_(c2[i], m_2)
        if terms > 3:
            x_next.addcmul_(c3[i], m_3)
        m_1, m_2, m_3 = x0, m_1, m_2
        x = x_next
        if callback is not None:
            callback({"i": i, "x": x, "t": t[i], "x0": x0})
    return x
