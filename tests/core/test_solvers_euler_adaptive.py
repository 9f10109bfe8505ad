"""Euler / Heun / Euler-ancestral, adaptive_sde, dpm_solver_adaptive, paradigms and ddim_inversion against exact
answers: an isotropic Gaussian mixture with closed-form eps, a DOP853 reference of its probability-flow ODE,
diffusers' EulerDiscreteScheduler on the same model, and the sequential solvers ParaDiGMS must reproduce."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from polydiff.core import Denoiser, DiscreteSchedule, EDMSchedule, VPLinearSchedule, make_grid, sample
from polydiff.core.bench.gmm import GaussianMixture
from polydiff.core.solvers.adaptive import sample_adaptive_sde, sample_dpm_solver_adaptive
from polydiff.core.solvers.ddim import sample_ddim
from polydiff.core.solvers.euler import sample_euler, sample_euler_ancestral, sample_heun
from polydiff.core.solvers.inversion import sample_ddim_inversion
from polydiff.core.solvers.paradigms import sample_paradigms

torch.set_num_threads(1)
F64 = torch.float64


class Mixture:
    """sum_k w_k N(mu_k, s_k^2 I). Noised by x = alpha x0 + sigma eps, the rescaled y = x / alpha is the mixture
    of N(mu_k, (s_k^2 + sigma_tilde^2) I), sigma_tilde = sigma / alpha, and eps = -sigma_tilde grad log p(y)."""

    def __init__(self, means, stds, weights):
        means = torch.as_tensor(means, dtype=F64)
        variances = torch.as_tensor(stds, dtype=F64)[:, None].expand(means.shape) ** 2
        self.mixture = GaussianMixture(torch.as_tensor(weights, dtype=F64), means, variances)

    def eps(self, y: torch.Tensor, sigma_tilde: torch.Tensor) -> torch.Tensor:
        """y: (batch, d); sigma_tilde: (batch,) or (1,)."""
        return self.mixture.eps(y, 1.0, sigma_tilde)

    def denoiser(self, schedule) -> Denoiser:
        """An eps-prediction Denoiser; the model reads its time back from ``schedule.model_input``."""
        n = getattr(schedule, "num_train_timesteps", None)

        def model(x, t_model):
            t = (t_model.to(F64) + 1) / n if n else t_model.to(F64)
            alpha, sigma = schedule.alpha_sigma(t)
            return self.eps(x.to(F64) / alpha[:, None], sigma / alpha).to(x.dtype)

        return Denoiser(model, schedule, "eps")

    def flow(self, y0: np.ndarray, sigma_start: float, sigma_end: float) -> np.ndarray:
        """The PF-ODE dy / d sigma_tilde = eps(y, sigma_tilde) per row, DOP853 at rtol 1e-10."""
        def rhs(s, y):
            return self.eps(torch.from_numpy(y)[None], torch.tensor([s], dtype=F64))[0].numpy()

        return np.stack([solve_ivp(rhs, (sigma_start, sigma_end), row, method="DOP853", rtol=1e-10,
                                   atol=1e-12).y[:, -1] for row in y0])


MIXTURE = Mixture([[1.0, 0.5], [-1.0, -0.3], [0.2, -1.2]], [0.4, 0.5, 0.3], [0.3, 0.5, 0.2])


def ode_reference(schedule, x: torch.Tensor, t_start: float, t_end: float) -> torch.Tensor:
    alpha, sigma_tilde = (schedule.alpha(torch.tensor([t_start, t_end], dtype=F64)),
                          schedule.sigma_tilde(torch.tensor([t_start, t_end], dtype=F64)))
    y = MIXTURE.flow((x / alpha[0]).numpy(), float(sigma_tilde[0]), float(sigma_tilde[1]))
    return torch.from_numpy(y) * alpha[1]


def fitted_order(steps, errors) -> float:
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


# ------------------------------------------------------------------------------------------- Euler / Heun


@pytest.mark.parametrize("schedule, t_start, t_end", [(VPLinearSchedule(), 1.0, 1e-2), (EDMSchedule(), 20.0, 0.05)])
def test_euler_and_heun_convergence_orders(schedule, t_start, t_end):
    denoiser = MIXTURE.denoiser(schedule)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * float(
        schedule.sigma(t_start) ** 2 + schedule.alpha(t_start) ** 2) ** 0.5
    reference = ode_reference(schedule, x, t_start, t_end)
    steps = [8, 16, 32, 64]
    orders = {}
    for solver in (sample_euler, sample_heun):
        errors = [float((solver(denoiser, x, make_grid(schedule, n, "logsnr", t_start=t_start, t_end=t_end))
                         - reference).abs().max()) for n in steps]
        orders[solver.solver_name] = fitted_order(steps, errors)
    assert abs(orders["euler"] - 1) <= 0.4, orders
    assert abs(orders["heun"] - 2) <= 0.4, orders


@pytest.mark.parametrize("spacing, steps, final", [("linspace", 10, "zero"), ("leading", 20, "zero"),
                                                   ("trailing", 25, "sigma_min"), ("linspace", 28, "zero")])
def test_euler_matches_diffusers_euler_discrete(spacing, steps, final):
    from diffusers import EulerDiscreteScheduler

    schedule = DiscreteSchedule.linear()
    denoiser = MIXTURE.denoiser(schedule)
    scheduler = EulerDiscreteScheduler(timestep_spacing=spacing, final_sigmas_type=final)
    scheduler.set_timesteps(steps)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    state = noise * scheduler.init_noise_sigma  # diffusers' state is x / alpha
    theirs = []
    for timestep in scheduler.timesteps:
        model_input = scheduler.scale_model_input(state, timestep)
        output = denoiser.model(model_input, timestep.expand(16).float())
        state = scheduler.step(output, timestep, state).prev_sample
        theirs.append(state)
    # our grid: integer timestep n sits at t = (n + 1) / 1000; the final sigma is 0 or alpha-bar[0]'s
    times = torch.cat([(scheduler.timesteps.to(F64) + 1) / 1000, torch.tensor([0.0 if final == "zero" else 1e-3],
                                                                               dtype=F64)])
    assert torch.equal(make_grid(schedule, steps, spacing, final_zero=final == "zero"), times)
    alpha = schedule.alpha(times)
    ours = []
    sample_euler(denoiser, noise * scheduler.init_noise_sigma * alpha[0].float(), times,
                 callback=lambda info: ours.append(info["x"]))
    for x, state, a, sigma in zip(ours, theirs, alpha[1:], scheduler.sigmas[1:], strict=True):
        assert float(((x / a.float() - state) / (1 + sigma)).abs().max()) <= 1e-5


def test_euler_ancestral_matches_diffusers_with_the_same_generator():
    from diffusers import EulerAncestralDiscreteScheduler

    schedule = DiscreteSchedule.linear()
    denoiser = MIXTURE.denoiser(schedule)
    scheduler = EulerAncestralDiscreteScheduler(timestep_spacing="leading")
    scheduler.set_timesteps(20)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
    state, generator = noise * scheduler.init_noise_sigma, torch.Generator().manual_seed(5)
    for timestep in scheduler.timesteps:
        output = denoiser.model(scheduler.scale_model_input(state, timestep), timestep.expand(16).float())
        state = scheduler.step(output, timestep, state, generator=generator).prev_sample
    times = torch.cat([(scheduler.timesteps.to(F64) + 1) / 1000, torch.zeros(1, dtype=F64)])
    ours = sample_euler_ancestral(denoiser, noise * scheduler.init_noise_sigma * schedule.alpha(times[0]).float(),
                                  times, generator=torch.Generator().manual_seed(5))
    assert float((ours - state).abs().max()) <= 1e-5


@pytest.mark.parametrize("spacing, steps", [("leading", 10), ("linspace", 10), ("trailing", 20)])
def test_heun_matches_diffusers_heun_discrete(spacing, steps):
    from diffusers import HeunDiscreteScheduler

    schedule = DiscreteSchedule.linear()
    denoiser = MIXTURE.denoiser(schedule)
    # HeunDiscreteScheduler's default betas are Stable Diffusion's; ask for DDPM's linear ones
    scheduler = HeunDiscreteScheduler(timestep_spacing=spacing, beta_start=1e-4, beta_end=0.02)
    scheduler.set_timesteps(steps)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(2))
    state = noise * scheduler.init_noise_sigma
    for timestep in scheduler.timesteps:  # each step's two model calls are listed as two timesteps
        output = denoiser.model(scheduler.scale_model_input(state, timestep), timestep.expand(16).float())
        state = scheduler.step(output, timestep, state).prev_sample
    steps_start = torch.cat([scheduler.timesteps[:1], scheduler.timesteps[1::2]])
    times = torch.cat([(steps_start.to(F64) + 1) / 1000, torch.zeros(1, dtype=F64)])
    ours = sample_heun(denoiser, noise * scheduler.init_noise_sigma * schedule.alpha(times[0]).float(), times)
    assert denoiser.nfe == len(scheduler.timesteps) == 2 * steps - 1
    assert float((ours - state).abs().max()) <= 1e-5


def test_heun_skips_the_correction_on_the_step_to_zero_and_per_sample_grids_agree():
    schedule = VPLinearSchedule()
    denoiser = MIXTURE.denoiser(schedule)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    grid = make_grid(schedule, 10, "karras", final_zero=True)
    out = sample_heun(denoiser, x, grid)
    assert denoiser.nfe == 2 * 10 - 1
    assert torch.isfinite(out).all()
    # a per-sample grid whose columns all equal the 1-D grid gives the same samples
    torch.testing.assert_close(sample_heun(denoiser, x, grid[:, None].expand(11, 6)), out, rtol=0, atol=1e-12)
    # columns ending at 0 for some samples only: those samples take an Euler last step, the others Heun
    mixed = torch.stack([grid, torch.cat([grid[:-1], torch.tensor([1e-3], dtype=F64)])] * 3, 1)
    out_mixed = sample_heun(denoiser, x, mixed)
    torch.testing.assert_close(out_mixed[0::2], out[0::2], rtol=0, atol=1e-12)
    positive = sample_heun(denoiser, x[1::2], mixed[:, 1])
    torch.testing.assert_close(out_mixed[1::2], positive, rtol=0, atol=1e-12)


def test_churn_is_reproducible_and_inactive_outside_s_tmin_s_tmax():
    schedule = VPLinearSchedule()
    denoiser = MIXTURE.denoiser(schedule)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    grid = make_grid(schedule, 12, "karras", final_zero=True)
    plain = sample_heun(denoiser, x, grid)
    churned = [sample_heun(denoiser, x, grid, s_churn=5.0, generator=torch.Generator().manual_seed(9))
               for _ in range(2)]
    torch.testing.assert_close(churned[0], churned[1], rtol=0, atol=0)
    assert float((churned[0] - plain).abs().max()) > 1e-3
    # no sigma_tilde of this grid exceeds 1e6, so s_tmin = 1e6 disables churn
    torch.testing.assert_close(sample_heun(denoiser, x, grid, s_churn=5.0, s_tmin=1e6, s_tmax=1e7), plain,
                               rtol=0, atol=0)


def test_euler_ancestral_eta_zero_is_euler_and_through_sample():
    schedule = DiscreteSchedule.linear()
    denoiser = MIXTURE.denoiser(schedule)
    noise = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    grid = make_grid(schedule, 15, "logsnr", final_zero=True)
    torch.testing.assert_close(sample_euler_ancestral(denoiser, noise, grid, eta=0.0),
                               sample_euler(denoiser, noise, grid), rtol=0, atol=1e-12)
    out = sample(denoiser, noise, "euler_ancestral", steps=15, final_zero=True,
                 generator=torch.Generator().manual_seed(0))
    assert out.shape == noise.shape and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------------ adaptive


def gaussian_denoiser(dim: int, schedule=None):
    mean = torch.linspace(-1, 1, dim, dtype=F64)
    schedule = schedule or VPLinearSchedule()
    return Mixture([mean.tolist()], [0.5], [1.0]).denoiser(schedule), mean


def test_adaptive_sde_gaussian_moments_at_a_tight_tolerance():
    # dim 64: the accept test is a norm over many coordinates, so it barely depends on the Brownian draw; in
    # very low dimension the z-dependent rejection of Algorithm 1 biases the samples (measured: mean off by
    # 0.14 in dim 2 at eps_rel 0.02), see the fixed-step test below for the discretisation alone.
    dim, n, std = 64, 2000, 0.5
    denoiser, mean = gaussian_denoiser(dim)
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0), dtype=F64)
    out = sample_adaptive_sde(denoiser, x, torch.tensor([1.0, 0.0], dtype=F64), eps_rel=0.03, eps_abs=0.006,
                              generator=torch.Generator().manual_seed(1))
    # 5 standard errors: mean std / sqrt(n) = 0.011; covariance entries at most std^2 sqrt(2 / n) = 0.0079
    assert float((out.mean(0) - mean).abs().max()) <= 5 * std / math.sqrt(n)
    assert float((torch.cov(out.T) - std**2 * torch.eye(dim, dtype=F64)).abs().max()) <= 6 * std**2 * math.sqrt(2 / n)


def test_adaptive_sde_fixed_step_limit_is_unbiased():
    # huge eps_abs accepts every step and max_growth ~ 1 keeps h = 1/256 of the interval: the pure
    # Euler-Maruyama / improved-Euler pair on the rescaled SDE
    denoiser, _ = gaussian_denoiser(2)
    mean, n = torch.tensor([-1.0, 1.0], dtype=F64), 10000
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    out, info = sample_adaptive_sde(denoiser, x, torch.tensor([1.0, 0.0], dtype=F64), eps_rel=1e-9, eps_abs=1e9,
                                    h_init=1 / 256, max_growth=1 + 1e-9, generator=torch.Generator().manual_seed(1),
                                    return_info=True)
    assert info["iterations"] == 256 and info["nfe"] == 2 * 256 + 1 == denoiser.nfe
    assert float((out.mean(0) - mean).abs().max()) <= 5 * 0.5 / math.sqrt(n)
    assert float((out.std(0) - 0.5).abs().max()) <= 5 * 0.5 / math.sqrt(2 * n)


@pytest.mark.parametrize("schedule", [VPLinearSchedule(), EDMSchedule()])
def test_adaptive_nfe_falls_as_the_tolerance_loosens(schedule):
    denoiser, _ = gaussian_denoiser(16, schedule)
    start = float(schedule.t_max)
    scale = float(schedule.alpha(start) ** 2 + schedule.sigma(start) ** 2) ** 0.5
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0), dtype=F64) * scale
    grid = torch.tensor([start, 0.0], dtype=F64)
    sde_nfe = [sample_adaptive_sde(denoiser, x, grid, eps_rel=tol, eps_abs=tol / 5, return_info=True,
                                   generator=torch.Generator().manual_seed(1))[1]["nfe"] for tol in (0.01, 0.03, 0.1)]
    dpm_nfe = [sample_dpm_solver_adaptive(denoiser, x, grid, rtol=tol, atol=tol / 5, return_info=True)[1]["nfe"]
               for tol in (0.001, 0.01, 0.1)]
    assert sde_nfe[0] > sde_nfe[1] > sde_nfe[2], sde_nfe
    assert dpm_nfe[0] > dpm_nfe[1] > dpm_nfe[2], dpm_nfe


@pytest.mark.parametrize("order", [2, 3])
def test_dpm_solver_adaptive_error_falls_with_rtol(order):
    schedule = VPLinearSchedule()
    denoiser = MIXTURE.denoiser(schedule)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    reference = ode_reference(schedule, x, 1.0, 1e-2)
    grid = torch.tensor([1.0, 0.5, 1e-2], dtype=F64)  # the inner point is ignored
    errors, nfes = [], []
    for rtol in (1e-2, 1e-3, 1e-4):
        out, info = sample_dpm_solver_adaptive(denoiser, x, grid, order=order, rtol=rtol, atol=rtol / 10,
                                               return_info=True)
        errors.append(float((out - reference).abs().max()))
        nfes.append(info["nfe"])
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] <= 1e-3, errors
    assert nfes[0] < nfes[1] < nfes[2], nfes


def test_adaptive_solvers_treat_each_sample_on_its_own():
    denoiser, _ = gaussian_denoiser(8)
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(6), dtype=F64)
    grid = torch.tensor([1.0, 1e-3], dtype=F64)
    whole = sample_dpm_solver_adaptive(denoiser, x, grid, rtol=1e-3)
    torch.testing.assert_close(sample_dpm_solver_adaptive(denoiser, x[:2], grid, rtol=1e-3), whole[:2],
                               rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="max_steps"):
        sample_adaptive_sde(denoiser, x, grid, eps_rel=1e-4, eps_abs=1e-5, max_steps=5)


# ---------------------------------------------------------------------------------------------- paradigms


def step_noise_std(schedule, grid) -> float:
    """The largest per-step DDPM posterior std sigma_{i+1} sqrt(1 - exp(2 (lambda_i - lambda_{i+1})))."""
    _, sigma = schedule.alpha_sigma(grid)
    log_snr = schedule.log_snr(grid)
    return float((sigma[1:] ** 2 * -(2 * (log_snr[:-1] - log_snr[1:])).expm1()).sqrt().max())


@pytest.mark.parametrize("base, sequential, eta", [("ddim", sample_ddim, 0.0), ("euler", sample_euler, 0.0),
                                                   ("ddim", sample_ddim, 1.0),
                                                   ("euler_ancestral", sample_euler_ancestral, 1.0)])
def test_paradigms_reproduces_its_sequential_base_in_fewer_rounds(base, sequential, eta):
    schedule = VPLinearSchedule()
    denoiser = MIXTURE.denoiser(schedule)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    grid = make_grid(schedule, 100, "logsnr", final_zero=True)
    options = {"eta": eta, "generator": torch.Generator().manual_seed(3)} if eta else {}
    reference = sequential(denoiser, x, grid, **options)
    for tol in (1e-2, 1e-3):
        options = {"eta": eta, "generator": torch.Generator().manual_seed(3)} if eta else {}
        out, info = sample_paradigms(denoiser, x, grid, base=base, window=16, tol=tol, return_info=True, **options)
        # every accepted point moved by at most tol x (its step's noise std) in RMS in its last Picard round;
        # allow 10x that for the propagation through the remaining steps (measured: 0.1 tol x the largest std)
        assert float((out - reference).abs().max()) <= 10 * tol * step_noise_std(schedule, grid)
        assert info["rounds"] < 100 / 2, info
    # window = 1 is the sequential solver itself, one round per step
    out, info = sample_paradigms(denoiser, x, grid, base=base, window=1, tol=1.0, return_info=True,
                                 **({"eta": eta, "generator": torch.Generator().manual_seed(3)} if eta else {}))
    assert info["rounds"] == 100
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------- inversion


def test_ddim_inversion_round_trip_error_falls_with_steps():
    schedule = DiscreteSchedule.linear()
    denoiser = MIXTURE.denoiser(schedule)
    data = torch.randn(16, 2, generator=torch.Generator().manual_seed(8), dtype=F64) * 0.5
    errors = []
    for steps in (10, 50, 200):
        grid = make_grid(schedule, steps, "logsnr", final_zero=True)
        latent = sample_ddim_inversion(denoiser, data, grid)
        errors.append(float((sample_ddim(denoiser, latent, grid) - data).abs().max()))
    # first order in the step: each 4-5x refinement cuts the error at least 2.5x
    assert errors[0] > 2.5 * errors[1] > 6.25 * errors[2], errors
    assert errors[2] <= 0.1, errors


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("solver, options, name", [
    (sample_euler, {"s_churn": -1.0}, "s_churn"),
    (sample_heun, {"s_tmin": 2.0, "s_tmax": 1.0}, "s_tmin"),
    (sample_euler_ancestral, {"eta": -0.5}, "eta"),
    (sample_adaptive_sde, {"eps_rel": -0.1}, "eps_rel"),
    (sample_adaptive_sde, {"eps_abs": -1.0}, "eps_abs"),
    (sample_adaptive_sde, {"safety": 1.5}, "safety"),
    (sample_adaptive_sde, {"max_steps": 0}, "max_steps"),
    (sample_dpm_solver_adaptive, {"rtol": -1e-3}, "rtol"),
    (sample_dpm_solver_adaptive, {"order": 4}, "order"),
    (sample_dpm_solver_adaptive, {"theta": 0.0}, "theta"),
    (sample_paradigms, {"window": 0}, "window"),
    (sample_paradigms, {"tol": -1.0}, "tol"),
    (sample_paradigms, {"base": "rk4"}, "base"),
])
def test_bad_options_raise_value_error_naming_them(solver, options, name):
    denoiser = MIXTURE.denoiser(VPLinearSchedule())
    with pytest.raises(ValueError, match=name):
        solver(denoiser, torch.zeros(2, 2, dtype=F64), make_grid(denoiser.schedule, 4), **options)


def test_adaptive_interval_must_be_nonempty():
    denoiser = MIXTURE.denoiser(VPLinearSchedule())
    with pytest.raises(ValueError, match="grid"):
        sample_dpm_solver_adaptive(denoiser, torch.zeros(2, 2, dtype=F64), torch.tensor([5e-4, 0.0], dtype=F64))


# ------------------------------------------------------------------------------------- shapes and dtypes

SOLVERS = [sample_euler, sample_heun, sample_euler_ancestral, sample_paradigms, sample_ddim_inversion,
           sample_adaptive_sde, sample_dpm_solver_adaptive]


@given(solver=st.sampled_from(SOLVERS), batch=st.integers(1, 3), event=st.lists(st.integers(1, 3), max_size=2),
       dtype=st.sampled_from([torch.float32, torch.float64]), per_sample=st.booleans())
def test_solvers_keep_shape_and_dtype(solver, batch, event, dtype, per_sample):
    schedule = DiscreteSchedule.linear()
    denoiser = Denoiser(lambda x, t: 0.1 * x + 1e-3 * t.reshape((-1,) + (1,) * (x.ndim - 1)), schedule, "eps")
    x = torch.randn(batch, *event, generator=torch.Generator().manual_seed(0)).to(dtype)
    grid = make_grid(schedule, 4, "logsnr", final_zero=True)
    if per_sample:  # each sample starts a little lower
        grid = torch.stack([make_grid(schedule, 4, "logsnr", t_start=1.0 - 0.05 * b, final_zero=True)
                            for b in range(batch)], 1)
    options = {"eps_rel": 0.1} if solver is sample_adaptive_sde else {"rtol": 0.1} if solver is \
        sample_dpm_solver_adaptive else {}
    out = solver(denoiser, x, grid, **options)
    assert out.shape == x.shape and out.dtype == dtype and bool(torch.isfinite(out).all())
