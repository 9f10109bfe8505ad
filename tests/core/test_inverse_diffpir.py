"""Tests of polydiff.core.inverse.diffpir: exact data consistency without noise, one step written out by hand
against Zhu et al.'s Algorithm 1, determinism at zeta = 0, and errors naming the argument."""

import math

import pytest
import torch

from polydiff.core import Denoiser, VPLinearSchedule, make_grid
from polydiff.core.inverse import Downsample, Mask, Matrix, SubsampledFourier
from polydiff.core.inverse.diffpir import diffpir_rho, sample_diffpir

F64 = torch.float64
SCHEDULE = VPLinearSchedule()


def gaussian_denoiser(d, seed=0):
    """The exact E[x0 | x_t] of x ~ N(mu, S) in d dims under SCHEDULE."""
    g = torch.Generator().manual_seed(seed)
    root = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
    mu, cov = torch.randn(d, generator=g, dtype=F64), root @ root.T + 0.1 * torch.eye(d, dtype=F64)

    def x0_model(x, t):
        a, s = (v[:, None, None] for v in SCHEDULE.alpha_sigma(t.to(F64)))
        flat = x.reshape(x.shape[0], -1).to(F64)
        c = a**2 * cov + s**2 * torch.eye(d, dtype=F64)
        r = flat - a[..., 0] * mu
        return (mu + (a * cov @ torch.linalg.solve(c, r[..., None]))[..., 0]).to(x.dtype).reshape(x.shape)

    return Denoiser(x0_model, SCHEDULE, "x0"), mu, cov


PROBLEMS = {
    "mask": (lambda s: Mask(torch.arange(6) % 2 == 0, s), (6,)),
    "fourier": (lambda s: SubsampledFourier.from_acceleration((4, 4), 2, center_fraction=0.25, sigma_y=s), (4, 4)),
    "downsample": (lambda s: Downsample(2, (8,), sigma_y=s), (8,)),
    "projection": (lambda s: Matrix.random_projection(3, (6,), seed=1, sigma_y=s), (6,)),
}


def _problem(name, sigma_y=0.0, seed=0):
    factory, shape = PROBLEMS[name]
    d = math.prod(shape)
    denoiser, mu, cov = gaussian_denoiser(d, seed)
    operator = factory(sigma_y)
    g = torch.Generator().manual_seed(seed + 7)
    x_true = (mu + torch.randn(1, d, generator=g, dtype=F64) @ torch.linalg.cholesky(cov).T).reshape((1,) + shape)
    return denoiser, operator, operator.measure(x_true, torch.Generator().manual_seed(seed + 8)), shape


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("zeta", [0.0, 0.3, 1.0])
def test_noise_free_diffpir_reproduces_the_measurement_exactly(name, zeta):
    denoiser, operator, y, shape = _problem(name)
    g = torch.Generator().manual_seed(0)
    x = sample_diffpir(denoiser, torch.randn((16,) + shape, generator=g, dtype=F64),
                       make_grid(SCHEDULE, 10, "uniform", final_zero=True), operator, y, zeta=zeta, generator=g)
    assert float((operator(x) - y).abs().max()) < 1e-10


@pytest.mark.parametrize("name", ["mask", "fourier"])
def test_one_step_follows_algorithm_1(name):
    """One step t0 -> t1 with measurement noise written out: rho = lam sigma_y^2 alpha^2 / sigma^2, the
    closed-form data step, eps from the corrected x0, and the zeta mix of eps and fresh noise."""
    sigma_y, lam, zeta = 0.2, 0.7, 0.3
    denoiser, operator, y, shape = _problem(name, sigma_y=sigma_y)
    grid = torch.tensor([0.6, 0.35], dtype=F64)
    g = torch.Generator().manual_seed(3)
    x = torch.randn((5,) + shape, generator=g, dtype=F64)
    out = sample_diffpir(denoiser, x, grid, operator, y, zeta=zeta, lam=lam, generator=g)
    g.manual_seed(3)
    torch.randn((5,) + shape, generator=g, dtype=F64)
    z = torch.randn((5,) + shape, generator=g, dtype=F64)
    (a0, a1), (s0, s1) = SCHEDULE.alpha_sigma(grid)
    rho = lam * sigma_y**2 * float(a0) ** 2 / float(s0) ** 2
    assert diffpir_rho(a0, s0, sigma_y, lam) == pytest.approx(rho, rel=1e-12)
    x0, _ = denoiser.predict(x, grid[0])
    x0_hat = x0 - operator.pinv(operator(x0) - y) / (1 + rho)
    # the closed form is the minimiser of ||y - A x||^2 + rho ||x - x0||^2: its gradient vanishes
    gradient = operator.adjoint(operator(x0_hat) - y) + rho * (x0_hat - x0)
    assert float(gradient.abs().max()) < 1e-12
    eps = (x - a0 * x0_hat) / s0
    expected = a1 * x0_hat + s1 * (math.sqrt(1 - zeta) * eps + math.sqrt(zeta) * z)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_zeta_zero_is_deterministic_and_exact_denoiser_keeps_a_consistent_fixed_point():
    denoiser, operator, y, shape = _problem("fourier")
    grid = make_grid(SCHEDULE, 8, "uniform", final_zero=True)
    x = torch.randn((4,) + shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    runs = [sample_diffpir(denoiser, x, grid, operator, y, zeta=0.0, generator=torch.Generator().manual_seed(s))
            for s in (0, 1)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    calls = []
    sample_diffpir(denoiser, x, grid, operator, y, zeta=0.0, callback=calls.append)
    assert len(calls) == 8 and all(float((operator(c["x0"]) - y).abs().max()) < 1e-10 for c in calls)


def test_errors_name_the_argument():
    denoiser, operator, y, shape = _problem("mask")
    grid = make_grid(SCHEDULE, 4, "uniform", final_zero=True)
    x = torch.zeros((2,) + shape, dtype=F64)
    for kwargs, name in (({"zeta": 1.5}, "zeta"), ({"zeta": -0.1}, "zeta"), ({"lam": 0.0}, "lam"),
                         ({"lam": float("inf")}, "lam"), ({"sigma_y": -1.0}, "sigma_y"),
                         ({"sigma_y": float("nan")}, "sigma_y")):
        with pytest.raises(ValueError, match=name):
            sample_diffpir(denoiser, x, grid, operator, y, **kwargs)
    denoiser, operator, y, shape = _problem("downsample", sigma_y=0.1)
    with pytest.raises(ValueError, match="operator"):
        sample_diffpir(denoiser, torch.zeros((2,) + shape, dtype=F64), grid, operator, y)
