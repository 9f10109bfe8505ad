"""fit_grid: the parameterisation is exact, the result is a valid grid, and it beats its log-SNR start on
held-out samples of a toy mixture (scored against the exact DOP853 solution)."""

import pytest
import torch

from polydiff.core import Denoiser, DiscreteSchedule, make_grid, sample
from polydiff.core.bench.gmm import eps_model, make_mixture
from polydiff.core.bench.reference import pf_ode_reference
from polydiff.core.fitted_grid import fit_grid, grid_from_logits
from polydiff.core.solvers.ddim import sample_ddim

SCHEDULE = DiscreteSchedule.linear()
T_MIN = SCHEDULE.t_min


@pytest.fixture(scope="module")
def toy():
    mixture = make_mixture(dim=2, components=3, seed=0)
    denoiser = Denoiser(eps_model(mixture, SCHEDULE), SCHEDULE)

    def batch(n, seed):
        x = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return x, pf_ode_reference(mixture, x, SCHEDULE, 1.0, (T_MIN, 0.0))

    return denoiser, batch(64, 1), batch(512, 2)


def _error(denoiser, solver, x, grid, target):
    return float((sample(denoiser, x, solver, len(grid) - 1, grid) - target).norm(dim=1).mean())


@pytest.mark.parametrize("final_zero", [False, True])
def test_zero_logits_are_the_logsnr_grid(final_zero):
    grid = grid_from_logits(SCHEDULE, torch.zeros(7, dtype=torch.float64), 1.0, T_MIN, final_zero)
    torch.testing.assert_close(grid, make_grid(SCHEDULE, 7, "logsnr", final_zero=final_zero), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("final_zero", [False, True])
def test_fitted_grid_is_valid_and_beats_logsnr_on_held_out_samples(toy, final_zero):
    denoiser, (x_cal, ref_cal), (x_test, ref_test) = toy
    end = 0.0 if final_zero else T_MIN
    steps = 5
    grid = fit_grid(denoiser, "dpmpp_2m", steps, x_cal, target=ref_cal[end], final_zero=final_zero, iterations=25)
    assert grid.shape == (steps + 1,) and grid.dtype == torch.float64
    assert bool((grid[1:] < grid[:-1]).all())
    assert grid[0] == 1.0 and grid[-1] == (0.0 if final_zero else T_MIN)
    fitted = _error(denoiser, "dpmpp_2m", x_test, grid, ref_test[end])
    logsnr = _error(denoiser, "dpmpp_2m", x_test, make_grid(SCHEDULE, steps, "logsnr", final_zero=final_zero),
                    ref_test[end])
    assert fitted < 0.8 * logsnr, (fitted, logsnr)


def test_default_target_is_a_fine_solve_of_the_same_solver(toy):
    denoiser, (x_cal, _), (x_test, ref_test) = toy
    grid = fit_grid(denoiser, "ddim", 4, x_cal, iterations=20, reference_steps=1024)
    fitted = _error(denoiser, "ddim", x_test, grid, ref_test[T_MIN])
    logsnr = _error(denoiser, "ddim", x_test, make_grid(SCHEDULE, 4, "logsnr"), ref_test[T_MIN])
    assert fitted < logsnr, (fitted, logsnr)


def test_derivative_free_fallback_for_a_non_differentiable_solver(toy):
    denoiser, (x_cal, ref_cal), (x_test, ref_test) = toy

    def detached_ddim(denoiser, x, grid, **options):  # breaks the graph: no gradient reaches the grid
        return sample_ddim(denoiser, x, grid.detach(), **options)

    grid = fit_grid(denoiser, detached_ddim, 3, x_cal, target=ref_cal[T_MIN], iterations=20)
    assert bool((grid[1:] < grid[:-1]).all()) and grid[0] == 1.0 and grid[-1] == T_MIN
    fitted = _error(denoiser, "ddim", x_test, grid, ref_test[T_MIN])
    logsnr = _error(denoiser, "ddim", x_test, make_grid(SCHEDULE, 3, "logsnr"), ref_test[T_MIN])
    assert fitted < logsnr, (fitted, logsnr)


def test_data_samples_instead_of_noise(toy):
    denoiser, _, _ = toy
    data = torch.randn(32, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    grid = fit_grid(denoiser, "ddim", 3, data=data, iterations=3, reference_steps=64,
                    generator=torch.Generator().manual_seed(0))
    assert grid.shape == (4,) and bool((grid[1:] < grid[:-1]).all())


def test_bad_arguments_raise(toy):
    denoiser, (x_cal, _), _ = toy
    with pytest.raises(ValueError, match="method"):
        fit_grid(denoiser, "ddim", 3, x_cal, method="ays")
    with pytest.raises(ValueError, match="steps"):
        fit_grid(denoiser, "ddim", 1, x_cal)
    with pytest.raises(ValueError, match="x_start / data"):
        fit_grid(denoiser, "ddim", 3, x_cal, data=x_cal)
    with pytest.raises(ValueError, match="solver"):
        fit_grid(denoiser, "no_such_solver", 3, x_cal)
    with pytest.raises(ValueError, match="target"):
        fit_grid(denoiser, "ddim", 3, x_cal, target=x_cal[:3])
