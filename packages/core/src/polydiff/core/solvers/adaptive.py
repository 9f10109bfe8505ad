"""Adaptive step-size solvers with error control: the interval is [grid[-1], grid[0]] (inner points are ignored).

* ``adaptive_sde``: Jolicoeur-Martineau et al., 2021, "Gotta Go Fast When Generating Data with Score-Based
  Models", Algorithm 1: Euler-Maruyama and improved Euler share one Brownian increment; their difference,
  measured against a mixed tolerance delta = max(eps_abs, eps_rel max(|x'|, |x'_prev|)) in a scaled q-norm,
  accepts or rejects the step, and h <- min(t - t_end, safety h E^(-r)).
* ``dpm_solver_adaptive``: Lu et al., 2022, "DPM-Solver", Section 5 / Appendix (Algorithm 4 for the (1, 2)
  pair, Algorithm 5 for the (2, 3) pair): the same accept / reject control on a pair of DPM-Solvers in lambda,
  h <- min(theta h E^(-1/order), lambda_end - lambda).

Both keep one step size and time per sample (batch-first, as in Jolicoeur-Martineau et al.), so a sample's
result does not depend on the rest of its batch (the DPM-Solver reference code instead takes one h for the
whole batch from the largest per-sample error). The accept test is a ``torch.where``; the one host sync per
iteration is the "is any sample still running" check, which also reads whether the last error estimate was
finite: a model that returns NaN or inf is reported at once instead of shrinking the step until ``max_steps``.
A grid that ends at t = 0 is integrated down to ``schedule.t_min`` and finished with one denoising call
(x <- x0 prediction), since neither the SDE drift nor lambda is finite at t = 0.

With ``return_info=True`` both return ``(x, info)`` with info = {"nfe": batched model calls, "iterations":
accepted + rejected attempts, "accepted": (batch,) accepted steps per sample}; the callback receives the
iteration, state, per-sample t and h, the accept mask and the NFE so far.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..denoiser import append_dims
from ..sampling import check_inputs, noise_like, register_solver

__all__ = ["sample_adaptive_sde", "sample_dpm_solver_adaptive"]


def _interval(denoiser, x: Tensor, grid) -> tuple[Tensor, Tensor, Tensor, bool]:
    """(t_start, t_end, denoise_at_end, any_denoise), each (batch,) float64, from grid's first and last time."""
    grid, _ = check_inputs(denoiser, x, grid)
    batch = x.shape[0]
    t_start, t_last = (v.expand(batch) if v.ndim == 0 else v for v in (grid[0], grid[-1]))
    denoise = t_last == 0
    t_end = torch.where(denoise, torch.full_like(t_last, denoiser.schedule.t_min), t_last)
    if bool((t_end >= t_start).any()):
        raise ValueError(f"grid: the interval [grid[-1], grid[0]] must contain more than t = 0; a grid ending at 0 "
                         f"is integrated to schedule.t_min = {denoiser.schedule.t_min}, which must lie below grid[0]")
    return t_start, t_end, denoise, bool(denoise.any())


def _finish(denoiser, x: Tensor, t: Tensor, denoise: Tensor, any_denoise: bool, cond: dict, info: dict,
            return_info: bool):
    if any_denoise:
        x0, _ = denoiser.predict(x, t, **cond)
        x = torch.where(append_dims(denoise, x.ndim), x0, x)
        info["nfe"] += 1
    return (x, info) if return_info else x


def _rms(value: Tensor) -> Tensor:
    return value.reshape(value.shape[0], -1).square().mean(1).sqrt()


def _check_positive(**values) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name}: expected a value > 0, got {value}")


def _check_tolerances(abs_name: str, abs_value: float, rel_name: str, rel_value: float) -> None:
    for name, value in ((abs_name, abs_value), (rel_name, rel_value)):
        if not value >= 0:
            raise ValueError(f"{name}: expected a tolerance >= 0, got {value}")
    if abs_value == 0 and rel_value == 0:
        raise ValueError(f"{abs_name}, {rel_name}: at least one tolerance must be > 0")


def _check_max_steps(max_steps) -> None:
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(f"max_steps: expected an integer >= 1, got {max_steps!r}")


@register_solver("adaptive_sde")
def sample_adaptive_sde(denoiser, x, grid, *, eps_abs: float = 0.0078, eps_rel: float = 0.05,
                        safety: float = 0.9, exponent: float = 0.9, h_init: float = 0.01, q: float = 2,
                        max_growth: float = 10.0,
                        extrapolate: bool = True, max_steps: int = 10_000, generator=None, cond=None,
                        callback=None, progress: bool = False, return_info: bool = False):
    """Reverse-SDE sampling with adaptive steps (Jolicoeur-Martineau et al., 2021, Algorithm 1).

    The reverse SDE is integrated on the rescaled state y = x / alpha, where every schedule is variance
    exploding, dy = sqrt(d u) dW with u = sigma_tilde^2 = (sigma / alpha)^2. A step from t to s = t - h, with
    du = u(t) - u(s) and one z ~ N(0, I):

        y'  = y - du eps(y, t) / sigma_tilde(t) + sqrt(du) z                  (Euler-Maruyama)
        y'' = y - du / 2 (eps(y, t) / sigma_tilde(t) + eps(y', s) / sigma_tilde(s)) + sqrt(du) z   (improved Euler)

    (this is the paper's pair with g^2 h replaced by its exact integral du, which also removes the VP drift
    f(t) x exactly). The error E = ||(x' - x'') / delta||_q (the q-norm divided by n^(1/q), q = 2 or inf) is
    measured on x = alpha y with delta = max(eps_abs, eps_rel max(|x'|, |x'_prev|)); a step is accepted when
    E <= 1, keeping x'' (``extrapolate``) or x', and h <- min(t - t_end, safety h E^(-exponent)).

    A rejected step draws a fresh z, so acceptance depends on the noise; with few coordinates per sample this
    biases the samples (measured on N(mu, 0.25 I), eps_rel = 0.02: mean pushed out by 0.14 in dim 2, 0.06 in
    dim 8, 0.01 in dim 64; the fixed-step limit is unbiased). Image-sized samples average it out, as the paper
    assumes.

    Args:
        x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch); only its first and last times are used.
        h_init: the first step, as a fraction of each sample's interval length t_start - t_end.
        max_growth: the most h may grow in one iteration (Hairer & Wanner's facmax; not in the paper's
            Algorithm 1). Without it a sample can oscillate between a rejected whole-interval step and an
            accepted tiny one whose error is ~0, as happens on EDM's [0.002, 80] (tested); ``math.inf`` turns
            it off.
        max_steps: iterations (accepted or rejected) allowed before a RuntimeError.
    Returns samples (batch, ...), or (samples, info) with ``return_info``. Two model calls per iteration.
    """
    _check_tolerances("eps_abs", eps_abs, "eps_rel", eps_rel)
    _check_positive(safety=safety, exponent=exponent, h_init=h_init)
    if not max_growth > 1:
        raise ValueError(f"max_growth: expected a factor > 1, got {max_growth}")
    if safety > 1:
        raise ValueError(f"safety: expected a factor in (0, 1], got {safety}")
    if q not in (2, math.inf):
        raise ValueError(f"q: expected 2 or math.inf, got {q!r}")
    _check_max_steps(max_steps)
    schedule, cond = denoiser.schedule, cond or {}
    t, t_end, denoise, any_denoise = _interval(denoiser, x, grid)
    norm = _rms if q == 2 else (lambda v: v.reshape(v.shape[0], -1).abs().amax(1))
    h = h_init * (t - t_end)
    alpha, sigma_tilde = schedule.alpha(t), schedule.sigma_tilde(t)
    y = x / append_dims(alpha.to(x.dtype), x.ndim)
    x_prev = x
    info = {"nfe": 0, "iterations": 0, "accepted": torch.zeros_like(t, dtype=torch.long)}
    c = lambda v: append_dims(v.to(x.dtype), x.ndim)  # noqa: E731  (per-sample coefficient over x)
    active = t > t_end
    healthy = None
    bar = _progress(progress, "adaptive_sde")
    while _running(active, healthy, "eps_abs", eps_abs):
        _check_budget(info, max_steps, t, "eps_abs / eps_rel")
        s = torch.where(h >= t - t_end, t_end, t - h)
        alpha_s, sigma_tilde_s = schedule.alpha(s), schedule.sigma_tilde(s)
        du = (sigma_tilde**2 - sigma_tilde_s**2).clamp_min(0)
        _, eps = denoiser.predict(c(alpha) * y, t, **cond)
        diffusion = c(du.sqrt()) * noise_like(y, generator)
        y_em = y - c(du / sigma_tilde) * eps + diffusion
        _, eps_em = denoiser.predict(c(alpha_s) * y_em, s, **cond)
        y_ie = y - c(du / 2) * (eps / c(sigma_tilde) + eps_em / c(sigma_tilde_s)) + diffusion
        x_em, x_ie = c(alpha_s) * y_em, c(alpha_s) * y_ie
        tolerance = torch.clamp_min(eps_rel * torch.maximum(x_em.abs(), x_prev.abs()), eps_abs)
        error = norm((x_em - x_ie) / tolerance).to(torch.float64)
        healthy = (torch.isfinite(error) | ~active).all()
        accept = (error <= 1) & active
        keep = c(accept) > 0
        y = torch.where(keep, y_ie if extrapolate else y_em, y)
        x_prev = torch.where(keep, x_em, x_prev)
        t = torch.where(accept, s, t)
        alpha, sigma_tilde = torch.where(accept, alpha_s, alpha), torch.where(accept, sigma_tilde_s, sigma_tilde)
        active = t > t_end
        factor = (safety * error.clamp_min(1e-30) ** -exponent).clamp_max(max_growth)
        h = torch.where(active, torch.minimum(h * factor, t - t_end), 0.0)
        _record(info, accept, 2, bar)
        if callback is not None:
            callback({"i": info["iterations"] - 1, "x": c(alpha) * y, "t": t, "h": h, "accepted": accept,
                      "nfe": info["nfe"]})
    if bar is not None:
        bar.close()
    return _finish(denoiser, c(alpha) * y, t, denoise, any_denoise, cond, info, return_info)


def _running(active: Tensor, healthy: Tensor | None, abs_name: str, abs_value: float) -> bool:
    """The loop's one host sync: whether any sample is still running. ``healthy`` (a 0-d bool tensor, None
    before the first attempt) says the last attempt's error estimate was finite for every running sample; a NaN
    there would only shrink the step until max_steps, so it is raised at once, naming the cause."""
    if healthy is None:
        return bool(active.any())
    running, finite = torch.stack([active.any(), healthy]).tolist()
    if not finite:
        # with an absolute tolerance > 0 the estimate's denominator is > 0: only a non-finite state makes it NaN
        cause = "" if abs_value > 0 else f", or {abs_name} = 0 met a state that is exactly 0 (0 / 0)"
        raise ValueError(f"model: returned NaN or inf during adaptive sampling (the step-size controller's error "
                         f"estimate is NaN){cause}; check the network's output")
    return running


def _check_budget(info: dict, max_steps: int, t: Tensor, tolerances: str) -> None:
    if info["iterations"] >= max_steps:
        raise RuntimeError(f"max_steps: {max_steps} iterations did not reach the end of the interval (largest t "
                           f"left {float(t.max())}); raise max_steps or loosen {tolerances}")


def _record(info: dict, accept: Tensor, nfe: int, bar) -> None:
    info["nfe"] += nfe
    info["iterations"] += 1
    info["accepted"] += accept.long()
    if bar is not None:
        bar.update(1)


def _progress(progress: bool, desc: str):
    from ..progress import on_terminal, progress_bar

    if not progress or not on_terminal():
        return None
    return progress_bar(desc=desc, leave=False)


def _dpm_solver_1(x: Tensor, eps: Tensor, alpha_ratio: Tensor, sigma_r: Tensor, step: Tensor) -> Tensor:
    """DPM-Solver-1 (Lu et al., 2022, eq. 3.7) from x_s over ``step`` in lambda: (alpha_r / alpha_s) x_s -
    sigma_r (e^step - 1) eps_s; per-sample (batch,) coefficients."""
    return append_dims(alpha_ratio.to(x.dtype), x.ndim) * x - append_dims(
        (sigma_r * torch.expm1(step)).to(x.dtype), x.ndim) * eps


@register_solver("dpm_solver_adaptive")
def sample_dpm_solver_adaptive(denoiser, x, grid, *, order: int = 3, rtol: float = 0.05, atol: float = 0.0078,
                               h_init: float = 0.05, theta: float = 0.9, t_err: float = 1e-5,
                               max_steps: int = 10_000, cond=None, generator=None, callback=None,
                               progress: bool = False, return_info: bool = False):
    """DPM-Solver with adaptive step size (Lu et al., 2022, Algorithms 4 and 5), per sample.

    Each attempt from lambda_s to lambda_t = lambda_s + h computes a lower- and a higher-order DPM-Solver
    update that share their model calls: order 2 pairs DPM-Solver-1 with DPM-Solver-2 (r1 = 1/2; 2 calls),
    order 3 pairs DPM-Solver-2 (r1 = 1/3) with DPM-Solver-3 (r1 = 1/3, r2 = 2/3; 3 calls). With
    delta = max(atol, rtol max(|x_lower|, |x_prev|)) and E = ||(x_higher - x_lower) / delta||_2 / sqrt(n), the
    step is accepted when E <= 1 (x <- x_higher, x_prev <- x_lower) and h <- min(theta h E^(-1/order),
    lambda_end - lambda_s). A sample stops when |t - t_end| <= t_err.

    The updates (DPM-Solver eq. 3.7 and Algorithms 1-2 in the noise-prediction form), with h = lambda_t -
    lambda_s, u_r the state at lambda_s + r h and D_r = eps(u_r) - eps(x_s):
        first(x_s -> t)   = (alpha_t / alpha_s) x_s - sigma_t (e^h - 1) eps_s
        second(r1)        = first - sigma_t / (2 r1) (e^h - 1) D_r1
        third(r1, r2)     = first - sigma_t / r2 ((e^h - 1) / h - 1) D_r2, where u_r2 is
                            first(x_s -> r2) - sigma_r2 r2 / r1 ((e^(r2 h) - 1) / (r2 h) - 1) D_r1

    Args:
        x: (batch, ...) at grid[0]; grid: (N + 1,) or (N + 1, batch); only its first and last times are used.
        h_init: the first step in lambda. max_steps: attempts allowed before a RuntimeError.
        t_err: a sample stops within t_err of the end; it must be below the interval's length.
        generator: accepted and unused (the solver is deterministic).
    Returns samples (batch, ...), or (samples, info) with ``return_info``.
    """
    if order not in (2, 3):
        raise ValueError(f"order: expected 2 or 3, got {order!r}")
    _check_tolerances("atol", atol, "rtol", rtol)
    _check_positive(h_init=h_init, theta=theta, t_err=t_err)
    if theta > 1:
        raise ValueError(f"theta: expected a safety factor in (0, 1], got {theta}")
    _check_max_steps(max_steps)
    schedule, cond = denoiser.schedule, cond or {}
    t, t_end, denoise, any_denoise = _interval(denoiser, x, grid)
    shortest = float((t - t_end).min())
    if t_err >= shortest:
        raise ValueError(f"t_err: {t_err} is not below the length of the interval, {shortest} (the solver would "
                         "stop before its first step and return its input)")
    lam, lam_end = schedule.log_snr(t), schedule.log_snr(t_end)
    alpha, sigma = schedule.alpha_sigma(t)
    h = torch.minimum(torch.full_like(lam, h_init), lam_end - lam)
    r1, r2 = (0.5, None) if order == 2 else (1 / 3, 2 / 3)
    c = lambda v: append_dims(v.to(x.dtype), x.ndim)  # noqa: E731  (per-sample coefficient over x)

    def at(lam_r: Tensor, last: Tensor | None = None):
        """(t, alpha, sigma) at lambda_r; exactly t_end where ``last``."""
        t_r = schedule.t_from_log_snr(lam_r)
        t_r = t_r if last is None else torch.where(last, t_end, t_r)
        return (t_r, *schedule.alpha_sigma(t_r))

    x_prev = x
    info = {"nfe": 0, "iterations": 0, "accepted": torch.zeros_like(t, dtype=torch.long)}
    active = (t - t_end).abs() > t_err
    healthy = None
    bar = _progress(progress, "dpm_solver_adaptive")
    while _running(active, healthy, "atol", atol):
        _check_budget(info, max_steps, t, "atol / rtol")
        # finished samples take a dummy step of 1e-3 in lambda (masked out below) so no coefficient is 0 / 0
        step = torch.where(active, h, 1e-3)
        last = active & (h >= lam_end - lam)
        lam_next = torch.where(last, lam_end, lam + step)
        t_next, alpha_next, sigma_next = at(lam_next, last)
        _, eps = denoiser.predict(x, t, **cond)
        t_1, alpha_1, sigma_1 = at(lam + r1 * step)
        u_1 = _dpm_solver_1(x, eps, alpha_1 / alpha, sigma_1, r1 * step)
        _, eps_1 = denoiser.predict(u_1, t_1, **cond)
        x_first = _dpm_solver_1(x, eps, alpha_next / alpha, sigma_next, step)
        x_second = x_first - c(sigma_next / (2 * r1) * torch.expm1(step)) * (eps_1 - eps)
        if order == 2:
            x_lower, x_higher = x_first, x_second
        else:
            t_2, alpha_2, sigma_2 = at(lam + r2 * step)
            phi_2 = torch.expm1(r2 * step) / (r2 * step) - 1
            u_2 = _dpm_solver_1(x, eps, alpha_2 / alpha, sigma_2, r2 * step) - c(sigma_2 * r2 / r1 * phi_2) * (
                eps_1 - eps)
            _, eps_2 = denoiser.predict(u_2, t_2, **cond)
            x_lower = x_second
            x_higher = x_first - c(sigma_next / r2 * (torch.expm1(step) / step - 1)) * (eps_2 - eps)
        tolerance = torch.clamp_min(rtol * torch.maximum(x_lower.abs(), x_prev.abs()), atol)
        error = _rms((x_higher - x_lower) / tolerance).to(torch.float64)
        healthy = (torch.isfinite(error) | ~active).all()
        accept = (error <= 1) & active
        keep = c(accept) > 0
        x = torch.where(keep, x_higher, x)
        x_prev = torch.where(keep, x_lower, x_prev)
        t, lam = torch.where(accept, t_next, t), torch.where(accept, lam_next, lam)
        alpha, sigma = torch.where(accept, alpha_next, alpha), torch.where(accept, sigma_next, sigma)
        active = (t - t_end).abs() > t_err
        h = torch.where(active, torch.minimum(theta * h * error.clamp_min(1e-10) ** (-1 / order), lam_end - lam),
                        0.0)
        _record(info, accept, order, bar)
        if callback is not None:
            callback({"i": info["iterations"] - 1, "x": x, "t": t, "h": h, "accepted": accept,
                      "nfe": info["nfe"]})
    if bar is not None:
        bar.close()
    return _finish(denoiser, x, t, denoise, any_denoise, cond, info, return_info)
