"""The set-up cache: a grid's coefficients and a solver's tables are built once per (schedule, grid values,
dtype, device, options) and never change a result."""

import pytest
import torch

from polydiff.core import Denoiser, make_grid, sample
from polydiff.core.bench.gmm import eps_model, make_mixture
from polydiff.core.sampling import check_inputs, clear_cache, solver_tables
from polydiff.core.schedules import DiscreteSchedule

torch.set_num_threads(1)

SCHEDULE = DiscreteSchedule.linear()
MIXTURE = make_mixture(dim=4, components=3, seed=1)


def _denoiser():
    return Denoiser(eps_model(MIXTURE, SCHEDULE), SCHEDULE)


def _noise(batch=6, seed=0):
    return torch.randn(batch, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_equal_grids_share_one_entry_and_tables():
    clear_cache()
    denoiser, x = _denoiser(), _noise()
    grid_a, coefficients_a = check_inputs(denoiser, x, make_grid(SCHEDULE, 5, "logsnr"))
    grid_b, coefficients_b = check_inputs(denoiser, x, make_grid(SCHEDULE, 5, "logsnr"))
    assert grid_b is grid_a and coefficients_b is coefficients_a
    calls = []
    build = lambda: calls.append(1) or (torch.ones(1),)  # noqa: E731
    first = solver_tables(coefficients_a, x, ("test", 1), build)
    again = solver_tables(coefficients_b, x, ("test", 1), build)
    assert again is first and len(calls) == 1
    solver_tables(coefficients_a, x, ("test", 2), build)  # another option: another table
    solver_tables(coefficients_a, x.float(), ("test", 1), build)  # another dtype: another table
    assert len(calls) == 3


@pytest.mark.parametrize("solver, options", [("dpmpp_2m", {}), ("dpmpp_3m", {}), ("unipc", {"variant": "bh1"}),
                                             ("ddim", {}), ("ddim", {"eta": 0.5}), ("dpm_solver_2m", {}),
                                             ("dpmpp_2m_sde", {})])
def test_cached_tables_give_the_uncached_result(solver, options):
    denoiser, noise = _denoiser(), _noise()
    clear_cache()
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    cold = sample(denoiser, noise, solver, 6, generator=generator(), **options)
    warm = sample(denoiser, noise, solver, 6, generator=generator(), **options)
    clear_cache()
    again = sample(denoiser, noise, solver, 6, generator=generator(), **options)
    assert torch.equal(cold, warm) and torch.equal(cold, again)


def test_writing_into_a_grid_after_a_call_is_seen_by_the_next_call():
    clear_cache()
    denoiser, noise = _denoiser(), _noise()
    grid = make_grid(SCHEDULE, 5, "logsnr")
    first = sample(denoiser, noise, "dpmpp_2m", 5, grid=grid)
    grid[2] = 0.5 * (grid[1] + grid[2])  # in place: the cache must not answer with the old values
    changed = sample(denoiser, noise, "dpmpp_2m", 5, grid=grid)
    clear_cache()
    assert torch.equal(changed, sample(denoiser, noise, "dpmpp_2m", 5, grid=grid.clone()))
    assert not torch.equal(first, changed)


def test_make_grid_returns_a_copy():
    grid = make_grid(SCHEDULE, 4, "karras")
    expected = grid.clone()
    grid.zero_()
    assert torch.equal(make_grid(SCHEDULE, 4, "karras"), expected)


def test_a_grid_that_requires_grad_is_not_cached():
    clear_cache()
    denoiser, x = _denoiser(), _noise()
    grid = make_grid(SCHEDULE, 4, "logsnr").requires_grad_(True)
    _, first = check_inputs(denoiser, x, grid)
    _, second = check_inputs(denoiser, x, grid)
    assert first is not second and first.alpha.requires_grad
    built = []
    solver_tables(first, x, ("test",), lambda: built.append(1) or ())
    solver_tables(second, x, ("test",), lambda: built.append(1) or ())
    assert len(built) == 2


def test_another_schedule_with_the_same_grid_values_gets_its_own_coefficients():
    clear_cache()
    x = _noise()
    other = DiscreteSchedule.linear(beta_end=0.03)
    grid = make_grid(SCHEDULE, 4, "uniform")
    _, mine = check_inputs(_denoiser(), x, grid)
    _, theirs = check_inputs(Denoiser(eps_model(MIXTURE, other), other), x, grid.clone())
    assert not torch.equal(mine.alpha, theirs.alpha)
    assert torch.allclose(theirs.alpha, other.alpha(grid))
