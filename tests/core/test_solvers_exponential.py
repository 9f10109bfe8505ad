"""Exponential-integrator solvers (DPM-Solver, DPM-Solver++, UniPC, PNDM/PLMS) against exact answers: an analytic
Gaussian-mixture eps (convergence orders against a DOP853 solve of the probability-flow ODE), exactness on
polynomial predictions, equality with diffusers 0.42 on the same times and model, per-sample time, no host syncs
inside the loop, and argument validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from polydiff.core.bench.gmm import GaussianMixture, eps_model
from polydiff.core.denoiser import Denoiser
from polydiff.core.grids import make_grid
from polydiff.core.sampling import list_solvers, sample
from polydiff.core.schedules import DiscreteSchedule, VPLinearSchedule

torch.set_num_threads(1)
F64 = torch.float64
SOLVERS = list_solvers()
MULTISTEP = ["dpm_solver_2m", "dpm_solver_3m", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "unipc"]
SINGLESTEP = ["dpm_solver_1", "dpm_solver_2", "dpm_solver_3"]
PSEUDO = ["pndm", "plms"]
ALL = SINGLESTEP + MULTISTEP + PSEUDO


# ------------------------------------------------------------------------------------ exact mixture model


SCHEDULE = VPLinearSchedule()
_gen = torch.Generator().manual_seed(0)
# exact eps of a mixture of isotropic Gaussians N(mu_k, s_k^2 I), s = (0.5, 0.7, 0.9), w = (0.3, 0.5, 0.2)
MIXTURE = eps_model(GaussianMixture(torch.tensor([0.3, 0.5, 0.2], dtype=F64),
                                    torch.randn(3, 4, generator=_gen, dtype=F64) * 1.5,
                                    torch.tensor([0.5, 0.7, 0.9], dtype=F64)[:, None].expand(3, 4) ** 2), SCHEDULE)
X_START = torch.randn(16, 4, generator=_gen, dtype=F64)


def mixture_denoiser():
    return Denoiser(MIXTURE, SCHEDULE, "eps")


def reference_solution(x, t_start, t_end):
    """The probability-flow ODE in lambda for x / alpha, d(x / alpha) / dlambda = -e^{-lambda} eps, by DOP853."""
    lam = SCHEDULE.log_snr(torch.tensor([t_start, t_end], dtype=F64)).tolist()
    dim = x.shape[-1]

    def rhs(log_snr, y):
        t = SCHEDULE.t_from_log_snr(torch.tensor(log_snr, dtype=F64))
        x_scaled = torch.from_numpy(y).reshape(-1, dim)
        eps = MIXTURE(x_scaled * SCHEDULE.alpha(t), t.expand(x_scaled.shape[0]))
        return (-math.exp(-log_snr) * eps).reshape(-1).numpy()

    y0 = (x / SCHEDULE.alpha(torch.tensor(t_start, dtype=F64))).reshape(-1).numpy()
    solution = solve_ivp(rhs, lam, y0, method="DOP853", rtol=1e-12, atol=1e-12)
    assert solution.success
    return torch.from_numpy(solution.y[:, -1]).reshape(x.shape) * SCHEDULE.alpha(torch.tensor(t_end, dtype=F64))


T_START, T_END = 0.6, SCHEDULE.t_min


@pytest.fixture(scope="module")
def reference():
    return reference_solution(X_START, T_START, T_END)


def warm_start_grid(steps: int) -> torch.Tensor:
    """Uniform in lambda, except that the first two intervals are h^2 long: the warm-up steps of a multistep
    method run at lower order (local error O(h^2) for the first step), which would otherwise cap the global order
    at 2 as h -> 0; shrinking them to h^2 isolates the order of the method's own update."""
    lam_start, lam_end = SCHEDULE.log_snr(torch.tensor([T_START, T_END], dtype=F64)).tolist()
    h = (lam_end - lam_start) / steps
    head = torch.tensor([lam_start, lam_start + h * h], dtype=F64)
    lam = torch.cat([head, torch.linspace(lam_start + 2 * h * h, lam_end, steps - 1, dtype=F64)])
    grid = SCHEDULE.t_from_log_snr(lam)
    grid[0], grid[-1] = T_START, T_END
    return grid


def empirical_order(solver, options, reference, steps=(40, 80, 160), grid_fn=warm_start_grid):
    errors = []
    for n in steps:
        out = SOLVERS[solver](mixture_denoiser(), X_START.clone(), grid_fn(n), **options)
        errors.append((out - reference).abs().max().item())
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    return -slope, errors


CONVERGENCE = [
    ("ddim", {}, 1),
    ("dpm_solver_1", {}, 1),
    ("dpm_solver_2", {}, 2),
    ("dpm_solver_3", {}, 3),
    ("dpm_solver_2m", {}, 2),
    ("dpm_solver_3m", {}, 3),
    ("dpmpp_2m", {}, 2),
    ("dpmpp_3m", {}, 3),
    ("dpmpp_2m_sde", {"eta": 0.0}, 2),
    ("unipc", {"order": 1, "variant": "bh1", "lower_order_final": False}, 2),
    ("unipc", {"order": 1, "variant": "bh2", "lower_order_final": False}, 2),
    ("unipc", {"order": 2, "variant": "bh1", "lower_order_final": False}, 3),
    ("unipc", {"order": 2, "variant": "bh2", "lower_order_final": False}, 3),
    ("unipc", {"order": 3, "variant": "bh2", "lower_order_final": False}, 4),
    ("unipc", {"order": 2, "use_corrector": False, "lower_order_final": False}, 2),
]


@pytest.mark.parametrize("solver, options, order", CONVERGENCE, ids=lambda v: str(v))
def test_convergence_order(solver, options, order, reference):
    # fourth order reaches its asymptote later: its pairwise slopes are 3.61, 3.61, 3.76 over 40 .. 320 steps
    steps = (80, 160, 320) if order == 4 else (40, 80, 160)
    measured, errors = empirical_order(solver, options, reference, steps)
    assert abs(measured - order) <= 0.4, f"{solver} {options}: order {measured:.2f}, errors {errors}"


def test_pndm_is_fourth_order_on_grids_uniform_in_sigma_over_alpha():
    # PNDM's Adams-Bashforth weights assume equal steps in sigma / alpha, where its transfer is exact Euler
    t_start, t_end = 0.6, 0.1
    reference = reference_solution(X_START, t_start, t_end)
    for solver in PSEUDO:
        measured, errors = empirical_order(
            solver, {}, reference, steps=(40, 80, 160),
            grid_fn=lambda n: make_grid(SCHEDULE, n, "karras", rho=1.0, t_start=t_start, t_end=t_end))
        # pre-asymptotic: the pairwise slopes are 5.0 and 4.1 at these step counts
        assert 3.6 <= measured <= 5.0, f"{solver}: order {measured:.2f}, errors {errors}"


@pytest.mark.parametrize("form", ["data", "noise"])
def test_third_order_multistep_is_exact_for_quadratic_predictions(form):
    """Once its history is full, a third-order multistep step integrates a prediction quadratic in lambda
    exactly: x_t / sigma_t = x_s / sigma_s + int e^lambda x0 (data form), x_t / alpha_t = x_s / alpha_s -
    int e^-lambda eps (noise form). This pins the second-difference term (diffusers' 3M is off by 2 there)."""
    coefficients = torch.tensor([0.3, -0.2, 0.05], dtype=F64)

    def quadratic(lam):
        return coefficients[0] + coefficients[1] * lam + coefficients[2] * lam**2

    def model(x, t):
        return quadratic(SCHEDULE.log_snr(t.to(F64))).reshape(-1, 1).expand_as(x).to(x.dtype)

    denoiser = Denoiser(model, SCHEDULE, "x0" if form == "data" else "eps")
    grid = torch.tensor([0.6, 0.5, 0.42, 0.3, 0.22, 0.15, 0.1], dtype=F64)  # deliberately uneven
    states = [X_START[:2].clone()]
    solver = "dpmpp_3m" if form == "data" else "dpm_solver_3m"
    SOLVERS[solver](denoiser, states[0].clone(), grid, lower_order_final=False,
                    callback=lambda info: states.append(info["x"]))
    alpha, sigma = SCHEDULE.alpha_sigma(grid)
    lam = SCHEDULE.log_snr(grid)
    a, b, c = coefficients.tolist()
    if form == "data":
        integrand = lambda u: math.exp(u) * (a + b * u + c * u * u)  # noqa: E731
    else:
        integrand = lambda u: -math.exp(-u) * (a + b * u + c * u * u)  # noqa: E731
    scale = sigma if form == "data" else alpha
    for i in range(2, len(grid) - 1):  # steps 0 and 1 are the lower-order warm-up
        integral = _integrate(integrand, lam[i].item(), lam[i + 1].item())
        expected = states[i] / scale[i] + integral
        torch.testing.assert_close(states[i + 1] / scale[i + 1], expected, rtol=1e-11, atol=1e-11)


def _integrate(f, lo, hi, nodes=20):
    points, weights = np.polynomial.legendre.leggauss(nodes)
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    return half * sum(w * f(mid + half * p) for p, w in zip(points, weights, strict=True))


# ----------------------------------------------------------------------------------------- final sigma = 0


@pytest.mark.parametrize("solver, options", [(s, {}) for s in SINGLESTEP + MULTISTEP[:-2]]
                         + [("dpmpp_2m_sde", {"eta": 0.0}), ("dpmpp_2m_sde", {"eta": 1.0})]
                         + [("unipc", {"variant": v, "order": o}) for v in ("bh1", "bh2") for o in (1, 2, 3)]
                         + [("unipc", {"variant": "bh1", "order": 3, "lower_order_final": False})],
                         ids=lambda v: str(v))
@pytest.mark.parametrize("steps", [5, 20])
def test_step_to_sigma_zero_returns_the_denoised_prediction(solver, options, steps):
    grid = make_grid(SCHEDULE, steps, "logsnr", final_zero=True)
    seen = []
    out = SOLVERS[solver](mixture_denoiser(), X_START.clone(), grid, callback=seen.append,
                          generator=torch.Generator().manual_seed(1), **options) if "sde" in solver else \
        SOLVERS[solver](mixture_denoiser(), X_START.clone(), grid, callback=seen.append, **options)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, seen[-1]["x0"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("solver", PSEUDO)
def test_pseudo_methods_finite_at_sigma_zero(solver):
    out = SOLVERS[solver](mixture_denoiser(), X_START.clone(), make_grid(SCHEDULE, 8, "logsnr", final_zero=True))
    assert torch.isfinite(out).all()


def test_model_calls_per_solver():
    grid = make_grid(SCHEDULE, 10, "logsnr")
    expected = {"dpm_solver_1": 10, "dpm_solver_2": 20, "dpm_solver_3": 30, "dpmpp_2m": 10, "dpmpp_3m": 10,
                "dpm_solver_2m": 10, "dpm_solver_3m": 10, "unipc": 10, "pndm": 12 + 7, "plms": 11}
    for solver, nfe in expected.items():
        denoiser = mixture_denoiser()
        SOLVERS[solver](denoiser, X_START.clone(), grid)
        assert denoiser.nfe == nfe, solver


# --------------------------------------------------------------------------------------- diffusers equality


def _peer_model(x, t):
    """A smooth deterministic network, called with diffusers' integer timestep or our t * N - 1."""
    t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
    return torch.tanh(0.7 * x + 0.002 * t - 0.5)


def _run_diffusers(scheduler, x, steps):
    scheduler.set_timesteps(steps)
    states = []
    for timestep in scheduler.timesteps:
        x = scheduler.step(_peer_model(x, timestep.to(F64)), timestep, x).prev_sample
        states.append(x)
    return states


def _grid_from(scheduler, final: str) -> torch.Tensor:
    """Our grid for diffusers' timesteps: index n sits at t = (n + 1) / N; the end is t = 0 (sigma = 0) or the
    first training step (final_sigmas_type "sigma_min")."""
    n = scheduler.config.num_train_timesteps
    times = (scheduler.timesteps.numpy().astype(np.float64) + 1) / n
    return torch.tensor(np.concatenate([times, [0.0 if final == "zero" else 1 / n]]))


def _peer_schedule():
    # diffusers builds alpha-bar in float32 (relative error up to 8e-5 near t = 0 against float64 betas), so both
    # sides use its table; DiscreteSchedule.linear() agrees with it to that float32 rounding
    from diffusers import DDIMScheduler

    alphas_cumprod = DDIMScheduler(beta_schedule="linear").alphas_cumprod.double().numpy()
    np.testing.assert_allclose(alphas_cumprod, DiscreteSchedule.linear().alphas_cumprod, rtol=1e-4)
    return DiscreteSchedule(alphas_cumprod=alphas_cumprod)


PEER_X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
DIFFUSERS_PREDICTION = {"x0": "sample", "v": "v_prediction", "eps": "epsilon"}


@pytest.mark.parametrize("prediction", ["x0", "v"])
@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("steps, spacing, lower_order_final",
                         [(5, "linspace", True), (10, "linspace", True), (10, "trailing", False),
                          (20, "linspace", True), (20, "leading", True)])
def test_dpmpp_2m_equals_diffusers(prediction, final, steps, spacing, lower_order_final):
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(
        beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type=final,
        prediction_type=DIFFUSERS_PREDICTION[prediction], timestep_spacing=spacing,
        lower_order_final=lower_order_final)
    expected = _run_diffusers(scheduler, PEER_X.clone(), steps)
    ours = []
    denoiser = Denoiser(_peer_model, _peer_schedule(), prediction)
    SOLVERS["dpmpp_2m"](denoiser, PEER_X.clone(), _grid_from(scheduler, final),
                        lower_order_final=lower_order_final, callback=lambda info: ours.append(info["x"]))
    assert len(ours) == len(expected)
    for i, (a, b) in enumerate(zip(ours, expected, strict=True)):
        assert (a - b).abs().max() < 1e-5, f"step {i}"


@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("steps", [8, 20])
def test_dpmpp_2m_sde_equals_diffusers_with_the_same_noise(final, steps):
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(beta_schedule="linear", algorithm_type="sde-dpmsolver++",
                                            solver_order=2, final_sigmas_type=final, prediction_type="sample")
    generator = torch.Generator().manual_seed(5)
    noises = [torch.randn(PEER_X.shape, generator=generator, dtype=F64) for _ in range(steps)]
    scheduler.set_timesteps(steps)
    expected = PEER_X.clone()
    for timestep, noise in zip(scheduler.timesteps, noises, strict=True):
        expected = scheduler.step(_peer_model(expected, timestep.to(F64)), timestep, expected,
                                  variance_noise=noise).prev_sample
    out = SOLVERS["dpmpp_2m_sde"](Denoiser(_peer_model, _peer_schedule(), "x0"), PEER_X.clone(),
                                  _grid_from(scheduler, final), generator=torch.Generator().manual_seed(5))
    assert (out - expected).abs().max() < 1e-5


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("steps", [6, 20])
def test_unipc_equals_diffusers(variant, order, final, steps):
    from diffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler(beta_schedule="linear", solver_type=variant, solver_order=order,
                                        final_sigmas_type=final, prediction_type="sample")
    expected = _run_diffusers(scheduler, PEER_X.clone(), steps)
    ours, x0s = [], []
    denoiser = Denoiser(_peer_model, _peer_schedule(), "x0")

    def record(info):
        ours.append(info["x"])
        x0s.append(info["x0"])

    SOLVERS["unipc"](denoiser, PEER_X.clone(), _grid_from(scheduler, final), order=order, variant=variant,
                     callback=record)
    buggy_end = variant == "bh1" and final == "zero"  # diffusers computes B(h) * 0 = -inf * 0 = NaN there
    assert bool(torch.isnan(expected[-1]).any()) == buggy_end
    compare = len(expected) - 1 if buggy_end else len(expected)
    for i in range(compare):
        assert (ours[i] - expected[i]).abs().max() < 1e-5, f"step {i}"
    if buggy_end:
        torch.testing.assert_close(ours[-1], x0s[-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("spacing, set_alpha_to_one", [("leading", True), ("trailing", True), ("trailing", False)])
@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_and_grids_equal_diffusers(spacing, set_alpha_to_one, steps):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_schedule="linear", prediction_type="sample", timestep_spacing=spacing,
                              set_alpha_to_one=set_alpha_to_one)
    expected = _run_diffusers(scheduler, PEER_X.clone(), steps)
    schedule = _peer_schedule()
    grid = make_grid(schedule, steps, spacing, final_zero=set_alpha_to_one)
    np.testing.assert_array_equal(np.round(grid[:-1].numpy() * 1000 - 1).astype(np.int64),
                                  scheduler.timesteps.numpy())
    out = SOLVERS["ddim"](Denoiser(_peer_model, schedule, "x0"), PEER_X.clone(), grid)
    assert (out - expected[-1]).abs().max() < 1e-5


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [7, 10, 50])
def test_make_grid_reproduces_diffusers_timesteps(spacing, steps):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    schedule = _peer_schedule()
    grid_indices = np.round(make_grid(schedule, steps, spacing)[:-1].numpy() * 1000 - 1).astype(np.int64)
    ddim = DDIMScheduler(beta_schedule="linear", timestep_spacing=spacing)
    ddim.set_timesteps(steps)
    np.testing.assert_array_equal(grid_indices, ddim.timesteps.numpy())
    if spacing == "trailing":  # the multistep schedulers space "leading"/"linspace" over steps + 1 points
        dpm = DPMSolverMultistepScheduler(beta_schedule="linear", timestep_spacing=spacing)
        dpm.set_timesteps(steps)
        np.testing.assert_array_equal(grid_indices, dpm.timesteps.numpy())


@pytest.mark.parametrize("steps", [5, 10, 50])
def test_plms_equals_diffusers_pndm_without_prk(steps):
    from diffusers import PNDMScheduler

    scheduler = PNDMScheduler(beta_schedule="linear", skip_prk_steps=True, set_alpha_to_one=True,
                              prediction_type="epsilon")
    expected = _run_diffusers(scheduler, PEER_X.clone(), steps)[-1]
    schedule = _peer_schedule()
    denoiser = Denoiser(_peer_model, schedule, "eps")
    out = SOLVERS["plms"](denoiser, PEER_X.clone(), make_grid(schedule, steps, "leading"))
    assert denoiser.nfe == len(scheduler.timesteps)
    # diffusers works in float32 and an eps model amplifies that by 1 / alpha (~150): compare relatively
    assert (out - expected).abs().max() / expected.abs().max() < 1e-6


# -------------------------------------------------------------------------------------- per-sample time


def _options(solver):
    return {"eta": 0.0} if solver == "dpmpp_2m_sde" else {}


@pytest.mark.parametrize("solver", ALL)
def test_identical_columns_match_the_shared_grid(solver):
    grid = make_grid(SCHEDULE, 7, "logsnr")
    x = X_START[:3].clone()
    shared = SOLVERS[solver](mixture_denoiser(), x.clone(), grid, **_options(solver))
    per_sample = SOLVERS[solver](mixture_denoiser(), x.clone(), grid.unsqueeze(1).expand(-1, 3).contiguous(),
                                 **_options(solver))
    torch.testing.assert_close(per_sample, shared, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("solver", ALL)
def test_differing_columns_match_solo_runs(solver):
    columns = [make_grid(SCHEDULE, 7, "logsnr"), make_grid(SCHEDULE, 7, "uniform", t_start=0.8),
               make_grid(SCHEDULE, 7, "quadratic", t_end=0.01)]
    if solver in MULTISTEP:  # per-column masks: one column steps to sigma = 0, the others do not
        columns[0] = make_grid(SCHEDULE, 7, "logsnr", final_zero=True)
    x = X_START[:3].clone()
    together = SOLVERS[solver](mixture_denoiser(), x.clone(), torch.stack(columns, 1), **_options(solver))
    for j, column in enumerate(columns):
        alone = SOLVERS[solver](mixture_denoiser(), x[j:j + 1].clone(), column, **_options(solver))
        torch.testing.assert_close(together[j:j + 1], alone, rtol=1e-12, atol=1e-12)


@given(solver=st.sampled_from(ALL), batch=st.integers(1, 3), shape=st.lists(st.integers(1, 3), min_size=0, max_size=2),
       dtype=st.sampled_from([torch.float32, torch.float64]), steps=st.integers(1, 4), final_zero=st.booleans())
def test_shape_and_dtype_are_kept(solver, batch, shape, dtype, steps, final_zero):
    denoiser = Denoiser(lambda x, t: 0.5 * torch.tanh(x), SCHEDULE, "eps")
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    out = SOLVERS[solver](denoiser, x, make_grid(SCHEDULE, steps, "logsnr", final_zero=final_zero),
                          **_options(solver))
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()


# --------------------------------------------------------------------------------------------- no syncs


@pytest.mark.parametrize("solver", ALL + ["ddim"])
def test_no_host_sync_inside_the_loop(solver, monkeypatch):
    """From the first model call on (the loop has begun, check_inputs and the tables are done), any host sync
    on a tensor raises."""

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync inside the solver loop")

    state = {"armed": False}

    def model(x, t):
        if not state["armed"]:
            for name in ("item", "__bool__", "__float__", "__int__", "tolist", "numpy"):
                monkeypatch.setattr(torch.Tensor, name, forbidden)
            state["armed"] = True
            with pytest.raises(AssertionError):  # the trap works
                bool(torch.tensor(True))
        return MIXTURE(x, t)

    options = {"generator": torch.Generator().manual_seed(0)} if solver == "dpmpp_2m_sde" else {}
    grid = make_grid(SCHEDULE, 6, "logsnr", final_zero=True)
    out = SOLVERS[solver](Denoiser(model, SCHEDULE, "eps"), X_START[:4].clone(), grid, **options)
    monkeypatch.undo()
    assert state["armed"] and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("options, argument", [({"order": 4}, "order"), ({"order": 0}, "order"),
                                               ({"order": True}, "order"), ({"order": 2.0}, "order"),
                                               ({"variant": "bh3"}, "variant")])
def test_unipc_rejects_bad_options(options, argument):
    with pytest.raises(ValueError, match=argument):
        SOLVERS["unipc"](mixture_denoiser(), X_START.clone(), make_grid(SCHEDULE, 5), **options)


def test_sde_rejects_negative_eta():
    with pytest.raises(ValueError, match="eta"):
        SOLVERS["dpmpp_2m_sde"](mixture_denoiser(), X_START.clone(), make_grid(SCHEDULE, 5), eta=-1.0)


def test_sde_is_seeded_and_stochastic():
    grid = make_grid(SCHEDULE, 10, "logsnr")
    run = lambda seed: SOLVERS["dpmpp_2m_sde"](mixture_denoiser(), X_START.clone(), grid,  # noqa: E731
                                               generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert (run(3) - run(4)).abs().max() > 1e-3


def test_default_sampler_is_dpmpp_2m():
    out = sample(mixture_denoiser(), X_START.clone(), steps=8)
    expected = SOLVERS["dpmpp_2m"](mixture_denoiser(), X_START.clone(), make_grid(SCHEDULE, 8, "logsnr"))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)  # noise * sqrt(alpha^2 + sigma^2) = 1
