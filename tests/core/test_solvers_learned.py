"""multistep_table and fit_multistep: the table form reproduces UniPC exactly, and a fit on calibration noise
lowers the error on fresh noise."""

import pytest
import torch

from polydiff.core import Denoiser, make_grid, sample
from polydiff.core.bench.gmm import eps_model, make_mixture
from polydiff.core.bench.reference import pf_ode_reference
from polydiff.core.schedules import DiscreteSchedule
from polydiff.core.solvers.learned import FittedMultistep, fit_multistep, unipc_table

torch.set_num_threads(1)

SCHEDULE = DiscreteSchedule.linear()
MIXTURE = make_mixture(dim=4, components=3, seed=2, anisotropic=True)


def _denoiser():
    return Denoiser(eps_model(MIXTURE, SCHEDULE), SCHEDULE)


def _noise(batch, seed):
    return torch.randn(batch, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("final_zero", [False, True])
@pytest.mark.parametrize("steps", [3, 7])
def test_the_unipc_table_is_unipc(steps, final_zero):
    denoiser, noise = _denoiser(), _noise(8, 0)
    grid = make_grid(SCHEDULE, steps, "logsnr", final_zero=final_zero)
    log_alpha, lam = SCHEDULE.log_alpha_and_log_snr(grid)
    table = unipc_table(lam, log_alpha.exp(), (log_alpha - lam).exp(), order=3, variant="bh1")
    expected = sample(denoiser, noise, "unipc", steps, grid=grid, variant="bh1", order=3)
    got = sample(denoiser, noise, "multistep_table", steps, grid=grid, coefficients=table)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
    assert denoiser.nfe == 2 * steps  # one model call per step for both
    told = sample(denoiser, noise, "multistep_table", steps, grid=grid, coefficients=table, model_times=grid[:-1])
    assert torch.equal(told, got)  # model_times = the grid's own times changes nothing


def test_model_times_are_the_times_the_model_is_told():
    seen = []
    model = eps_model(MIXTURE, SCHEDULE)
    denoiser = Denoiser(lambda x, t: seen.append(t.clone()) or model(x, t), SCHEDULE)
    asked = torch.tensor([0.9, 0.6, 0.2], dtype=torch.float64)
    sample(denoiser, _noise(3, 0), "multistep_table", 3, model_times=asked)
    torch.testing.assert_close(torch.stack([t[0] for t in seen]).double(), SCHEDULE.model_input(asked))


def test_a_fit_on_calibration_noise_lowers_the_error_on_fresh_noise():
    denoiser = _denoiser()
    calibration, fresh = _noise(64, 1), _noise(128, 2)
    end = SCHEDULE.t_min
    reference = pf_ode_reference(MIXTURE, torch.cat([calibration, fresh]), SCHEDULE, 1.0, (end,), rtol=1e-9,
                                 atol=1e-9)[end]
    fit = fit_multistep(denoiser, 4, calibration, reference[:64], iterations=60, time_limit=20)
    assert isinstance(fit, FittedMultistep) and fit.loss < fit.initial_loss
    assert fit.grid.shape == (5,) and fit.coefficients.shape == (4, 5)
    assert fit.grid[0] == 1.0 and fit.grid[-1] == end and bool((fit.grid[1:] < fit.grid[:-1]).all())
    error = lambda x: float((x - reference[64:]).norm(dim=1).mean())  # noqa: E731
    baseline = error(sample(denoiser, fresh, "unipc", 4, variant="bh1", order=3))
    fitted = error(fit.sample(denoiser, fresh))
    assert fitted < 0.5 * baseline, (fitted, baseline)


def test_bad_inputs_name_the_argument():
    denoiser, noise = _denoiser(), _noise(4, 0)
    with pytest.raises(ValueError, match="coefficients"):
        sample(denoiser, noise, "multistep_table", 3, coefficients=torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="coefficients"):
        sample(denoiser, noise, "multistep_table", 3, coefficients=torch.full((3, 5), float("nan")))
    with pytest.raises(ValueError, match="model_times"):
        sample(denoiser, noise, "multistep_table", 3, model_times=torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="model_times"):
        sample(denoiser, noise, "multistep_table", 3, model_times=torch.tensor([1.5, 0.5, 0.1]))
    with pytest.raises(ValueError, match="steps"):
        fit_multistep(denoiser, 1, noise, noise)
    with pytest.raises(ValueError, match="target"):
        fit_multistep(denoiser, 3, noise, noise[:2])
    with pytest.raises(ValueError, match="time_limit"):
        fit_multistep(denoiser, 3, noise, noise, time_limit=0)


def test_the_fit_starts_from_the_best_grid_and_keeps_the_point_best_on_validation():
    denoiser = _denoiser()
    calibration, validation = _noise(48, 3), _noise(48, 4)
    end = SCHEDULE.t_min
    reference = pf_ode_reference(MIXTURE, torch.cat([calibration, validation]), SCHEDULE, 1.0, (end,), rtol=1e-9,
                                 atol=1e-9)[end]
    error = lambda x, y: float((x - y).norm(dim=1).mean())  # noqa: E731
    unipc = {kind: (error(sample(denoiser, calibration, "unipc", 3, grid=kind, variant="bh1", order=3),
                          reference[:48]),
                    error(sample(denoiser, validation, "unipc", 3, grid=kind, variant="bh1", order=3), reference[48:]))
             for kind in ("logsnr", "quadratic", "karras")}
    fit = fit_multistep(denoiser, 3, calibration, reference[:48], iterations=30, time_limit=20,
                        validation=(validation, reference[48:]), start_grids=("logsnr", "quadratic", "karras"))
    start = min(unipc, key=lambda kind: unipc[kind][0])
    assert fit.initial_loss == pytest.approx(unipc[start][0], rel=1e-6)  # UniPC on the best starting grid
    # the returned solver is the one scored on the validation batch, and it is no worse there than its start
    assert fit.validation_loss == pytest.approx(error(fit.sample(denoiser, validation), reference[48:]), rel=1e-9)
    assert fit.validation_loss <= unipc[start][1] * (1 + 1e-9)
    assert fit.loss == pytest.approx(error(fit.sample(denoiser, calibration), reference[:48]), rel=1e-9)


def test_fit_options_are_checked():
    denoiser, noise = _denoiser(), _noise(4, 0)
    with pytest.raises(ValueError, match="validation"):
        fit_multistep(denoiser, 3, noise, noise, validation=(noise[:, :2], noise[:, :2]))
    with pytest.raises(ValueError, match="validation"):
        fit_multistep(denoiser, 3, noise, noise, validation=(noise, torch.full_like(noise, float("nan"))))
    with pytest.raises(ValueError, match="regularization"):
        fit_multistep(denoiser, 3, noise, noise, regularization=-1.0)
    with pytest.raises(ValueError, match="start_grids"):
        fit_multistep(denoiser, 3, noise, noise, start_grids=("nope",))
    with pytest.raises(ValueError, match="start_solvers"):
        fit_multistep(denoiser, 3, noise, noise, start_solvers=(("bh3", 3),))
    with pytest.raises(ValueError, match="clock"):
        fit_multistep(denoiser, 3, noise, noise, clock="gpu")


def test_a_cpu_clock_budgets_the_fitting_threads_own_time():
    """clock="cpu": the limit and the reported seconds count this thread's CPU time (time.thread_time), not the
    time spent waiting (here a model that sleeps 2 ms per call, as a process waits on a shared machine)."""
    import time

    model, calls = eps_model(MIXTURE, SCHEDULE), [0]

    def waiting(x, t):
        calls[0] += 1
        time.sleep(0.002)
        return model(x, t)

    denoiser, noise = Denoiser(waiting, SCHEDULE), _noise(32, 5)
    target = pf_ode_reference(MIXTURE, noise, SCHEDULE, 1.0, (SCHEDULE.t_min,), rtol=1e-9, atol=1e-9)[SCHEDULE.t_min]
    wall = time.perf_counter()
    fit = fit_multistep(denoiser, 3, noise, target, iterations=40, time_limit=30.0, clock="cpu")
    wall = time.perf_counter() - wall
    slept = 0.002 * calls[0]
    assert calls[0] > 20 and fit.seconds <= wall - 0.8 * slept
    wall_fit = fit_multistep(denoiser, 3, noise, target, iterations=40, time_limit=30.0, clock="wall")
    assert wall_fit.seconds >= 0.002 * 20  # the wall clock counts the waits
