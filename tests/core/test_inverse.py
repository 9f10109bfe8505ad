"""Tests of polydiff.core.inverse: operator identities against dense peers, the resampling path, and the samplers
against the closed-form Gaussian posterior of a linear measurement of a Gaussian prior."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from polydiff.core import Denoiser, VPLinearSchedule, make_grid
from polydiff.core.inverse import (
    Downsample,
    Mask,
    Matrix,
    SubsampledFourier,
    fourier_line_mask,
    path_nfe,
    resampling_path,
    sample_ddnm,
    sample_ddnm_plus,
    sample_dps,
    sample_ilvr,
    sample_repaint,
)
from polydiff.core.solvers.ddim import sample_ddim

F64 = torch.float64


def _inner(a, b):
    """Real inner product per batch (Re <a, b> for complex)."""
    return (a.conj() * b).real.flatten(1).sum(1) if a.is_complex() else (a * b).flatten(1).sum(1)


def _random_y(operator, batch, generator):
    shape = (batch,) + operator.output_shape
    y = torch.randn(shape, generator=generator, dtype=F64)
    if operator.output_complex:
        y = torch.complex(y, torch.randn(shape, generator=generator, dtype=F64))
    return y


def _dense(operator):
    """The real matrix of the operator (complex outputs stacked as [Re; Im]): (outputs, inputs)."""
    n = math.prod(operator.input_shape)
    basis = torch.eye(n, dtype=F64).reshape((n,) + operator.input_shape)
    columns = operator(basis).reshape(n, -1)
    if columns.is_complex():
        columns = torch.cat([columns.real, columns.imag], dim=1)
    return columns.T


def _operators(seed):
    g = torch.Generator().manual_seed(seed)
    return [
        Mask(torch.rand(2, 3, 4, generator=g) > 0.5),
        Mask(torch.rand(2, 3, 4, generator=g).double() * (torch.rand(2, 3, 4, generator=g) > 0.3)),
        Downsample(2, (3, 4, 6)),
        Downsample(3, (9,)),
        Downsample(2, (4, 6), dims=2),
        SubsampledFourier.from_acceleration((8, 6), 3, seed=seed),
        SubsampledFourier.from_acceleration((2, 7, 5), 2, kind="equispaced"),
        Matrix.random_projection(5, (2, 6), seed=seed),
        Matrix(torch.randn(4, 3, generator=g, dtype=F64) @ torch.randn(3, 7, generator=g, dtype=F64)),  # rank 3
    ]


@given(seed=st.integers(0, 1000), batch=st.integers(1, 3))
def test_operator_adjoint_and_pseudo_inverse_identities(seed, batch):
    g = torch.Generator().manual_seed(seed + 1)
    for op in _operators(seed):
        x = torch.randn((batch,) + op.input_shape, generator=g, dtype=F64)
        y = _random_y(op, batch, g)
        # <A x, y> = <x, A^T y>
        torch.testing.assert_close(_inner(op(x), y), _inner(x, op.adjoint(y)), rtol=1e-10, atol=1e-10)
        # Penrose identities A A^+ A = A and A^+ A A^+ = A^+, and A^+ A an orthogonal projection
        torch.testing.assert_close(op(op.pinv(op(x))), op(x), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(op.pinv(op(op.pinv(y))), op.pinv(y), rtol=1e-10, atol=1e-10)
        u = torch.randn_like(x)
        torch.testing.assert_close(_inner(op.project_row_space(u), x), _inner(u, op.project_row_space(x)))


def test_pseudo_inverse_equals_dense_pinv_peer():
    g = torch.Generator().manual_seed(0)
    for op in _operators(3):
        dense = _dense(op)
        y = _random_y(op, 2, g)
        flat = torch.cat([y.real.flatten(1), y.imag.flatten(1)], 1) if y.is_complex() else y.flatten(1)
        expected = flat @ torch.linalg.pinv(dense).T
        torch.testing.assert_close(op.pinv(y).flatten(1), expected, rtol=1e-9, atol=1e-9, msg=type(op).__name__)
        torch.testing.assert_close(op.adjoint(y).flatten(1), flat @ dense, rtol=1e-9, atol=1e-9)


def test_downsample_is_average_pooling_with_nearest_pinv():
    op = Downsample(2, (1, 4, 4))
    x = torch.arange(16, dtype=F64).reshape(1, 1, 4, 4)
    expected = torch.nn.functional.avg_pool2d(x, 2)
    torch.testing.assert_close(op(x), expected)
    torch.testing.assert_close(op.pinv(expected), expected.repeat_interleave(2, -1).repeat_interleave(2, -2))
    torch.testing.assert_close(op(op.pinv(expected)), expected)  # A A^+ = I


def test_fourier_line_mask_acceleration_centre_and_symmetry():
    for kind in ("random", "equispaced"):
        mask = fourier_line_mask(64, 4, center_fraction=0.08, kind=kind, seed=1)
        assert mask.dtype == torch.bool and mask.shape == (64,)
        assert abs(int(mask.sum()) - 16) <= 1
        assert mask[torch.tensor([0, 1, 2, -1, -2])].all()  # the 5 centre lines (0.08 * 64)
        assert torch.equal(mask, mask[(-torch.arange(64)) % 64])
    assert not torch.equal(fourier_line_mask(64, 4, seed=1), fourier_line_mask(64, 4, seed=2))
    op = SubsampledFourier.from_acceleration((1, 32, 8), 4)
    assert abs(op.acceleration - 4) < 0.3
    full = SubsampledFourier(torch.ones(8, dtype=torch.bool), (8, 8))
    x = torch.randn(2, 8, 8, dtype=F64)
    torch.testing.assert_close(full.pinv(full(x)), x)  # fully sampled: exact inverse
    torch.testing.assert_close(full(x), torch.fft.fft2(x, norm="ortho"))


def test_measurement_noise_lives_in_range_with_level_sigma_y():
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(400) % 2 == 0
    op = Mask(mask, sigma_y=0.1)
    x = torch.randn(50, 400, dtype=F64, generator=g)
    noise = op.measure(x, g) - op(x)
    assert torch.equal(noise[:, ~mask], torch.zeros_like(noise[:, ~mask]))
    assert abs(float(noise[:, mask].std()) - 0.1) < 0.003
    fourier = SubsampledFourier(fourier_line_mask(64, 2), (64, 64), sigma_y=0.1)
    x = torch.randn(4, 64, 64, dtype=F64, generator=g)
    image_noise = fourier.pinv(fourier.measure(x, g) - fourier(x))
    # A^+ n is white noise of std sigma_y projected on the row space: energy sigma_y^2 * rank
    rank = int(fourier.line_mask.sum()) * 64
    assert abs(float(image_noise.pow(2).sum() / (4 * rank)) ** 0.5 - 0.1) < 0.003


def test_operator_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="shape"):
        Downsample(2, (3, 5))
    with pytest.raises(ValueError, match="factor"):
        Downsample(0, (4,))
    with pytest.raises(ValueError, match="line_mask"):
        SubsampledFourier(torch.ones(5, dtype=torch.bool), (4, 4))
    asymmetric = torch.tensor([True, True, False, False])
    with pytest.raises(ValueError, match="line_mask"):
        SubsampledFourier(asymmetric, (4, 4), symmetrize=False)
    assert SubsampledFourier(asymmetric, (4, 4)).line_mask.tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="sigma_y"):
        Mask(torch.ones(3, dtype=torch.bool), sigma_y=-1)
    with pytest.raises(ValueError, match="mask"):
        Mask(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="m:"):
        Matrix.random_projection(9, (4,))
    with pytest.raises(ValueError, match="y:"):
        Mask(torch.ones(3, dtype=torch.bool)).pinv(torch.ones(2, 4))
    with pytest.raises(ValueError, match="y:"):
        SubsampledFourier.from_acceleration((4, 4), 2).pinv(torch.ones(1, 4, 4))  # real y for a complex output


def test_resampling_path_matches_repaint_schedule():
    assert resampling_path(4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    # RePaint's get_schedule_jump(t_T=6, jump_length=2, jump_n_sample=2): jumps at t = 0 and 2 (indices 6, 4)
    expected = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 4), (4, 5), (5, 6)]
    assert resampling_path(6, 2, 2) == expected
    assert path_nfe(expected) == 10
    with pytest.raises(ValueError, match="jump_length"):
        resampling_path(5, 0, 2)


# ------------------------------------------------------------------------------------ Gaussian prior problems


SCHEDULE = VPLinearSchedule()


class GaussianPrior:
    """x ~ N(mu, S) in d dims; the exact x0-predictor E[x0 | x_t] and the exact posterior of y = B x + n."""

    def __init__(self, d, seed=0):
        g = torch.Generator().manual_seed(seed)
        root = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
        self.d, self.mu = d, torch.randn(d, generator=g, dtype=F64)
        self.cov = root @ root.T + 0.1 * torch.eye(d, dtype=F64)

    def model(self, shape):
        def x0_model(x, t):
            a, s = (v[:, None, None] for v in SCHEDULE.alpha_sigma(t.to(F64)))
            flat = x.reshape(x.shape[0], -1).to(F64)
            c = a**2 * self.cov + s**2 * torch.eye(self.d, dtype=F64)
            r = flat - a[..., 0] * self.mu
            x0 = self.mu + (a * self.cov @ torch.linalg.solve(c, r[..., None]))[..., 0]
            return x0.to(x.dtype).reshape(x.shape)

        return Denoiser(x0_model, SCHEDULE, "x0")

    def sample(self, n, generator):
        return self.mu + torch.randn(n, self.d, generator=generator, dtype=F64) @ torch.linalg.cholesky(self.cov).T

    def posterior(self, operator, y):
        """Posterior mean and covariance for y = A x + sigma_y n, n white in the range of A."""
        dense = _dense(operator)
        u, s, _ = torch.linalg.svd(dense, full_matrices=False)
        keep = s > 1e-10 * s.max()
        b = u[:, keep].T @ dense
        flat = torch.cat([y.real.flatten(), y.imag.flatten()]) if y.is_complex() else y.flatten()
        z = u[:, keep].T @ flat
        gain = self.cov @ b.T @ torch.linalg.inv(b @ self.cov @ b.T + operator.sigma_y**2 * torch.eye(len(z), dtype=F64))
        return self.mu + gain @ (z - b @ self.mu), self.cov - gain @ b @ self.cov


def _problem(operator_factory, d, shape, sigma_y=0.0, seed=0):
    prior = GaussianPrior(d, seed)
    operator = operator_factory(sigma_y)
    x_true = prior.sample(1, torch.Generator().manual_seed(seed + 7)).reshape((1,) + shape)
    y = operator.measure(x_true, torch.Generator().manual_seed(seed + 8))
    return prior, operator, y


PROBLEMS = {
    "mask": (lambda s: Mask(torch.arange(6) % 2 == 0, s), 6, (6,)),
    "downsample": (lambda s: Downsample(2, (8,), sigma_y=s), 8, (8,)),
    "fourier": (lambda s: SubsampledFourier.from_acceleration((4, 4), 2, center_fraction=0.25, sigma_y=s), 16, (4, 4)),
    "projection": (lambda s: Matrix.random_projection(3, (6,), seed=1, sigma_y=s), 6, (6,)),
}


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_ddnm_reproduces_noise_free_measurement_exactly(name):
    factory, d, shape = PROBLEMS[name]
    prior, operator, y = _problem(factory, d, shape)
    grid = make_grid(SCHEDULE, 10, "uniform", final_zero=True)
    g = torch.Generator().manual_seed(0)
    x = sample_ddnm(prior.model(shape), torch.randn((64,) + shape, generator=g, dtype=F64), grid, operator, y,
                    generator=g)
    residual = (operator(x) - y).abs().max()
    assert float(residual) < 1e-10, float(residual)


def test_ddnm_sample_mean_approaches_posterior_mean():
    """DDNM is not an exact posterior sampler at finite steps; on this Gaussian problem its bias shrinks about as
    N^(-1/2) (measured with 4000 samples: 0.66, 0.35, 0.15, 0.06 at 25, 100, 400, 1600 steps)."""
    factory, d, shape = PROBLEMS["mask"]
    prior, operator, y = _problem(factory, d, shape)
    mean, cov = prior.posterior(operator, y)
    errors = {}
    for steps in (25, 400):
        g = torch.Generator().manual_seed(1)
        x = sample_ddnm(prior.model(shape), torch.randn(2000, d, generator=g, dtype=F64),
                        make_grid(SCHEDULE, steps, "uniform", final_zero=True), operator, y, eta=1.0, generator=g)
        errors[steps] = (float((x.mean(0) - mean).norm()), float((torch.cov(x.T) - cov).norm()))
    # Monte-Carlo std of a 2000-sample mean is sqrt(trace(cov) / 2000) = 0.04; the posterior's own scale is
    # sqrt(trace(cov)) = 1.8
    assert errors[400][0] < 0.25, errors  # measured 0.166
    assert errors[400][0] < errors[25][0] / 3, errors  # measured 0.66 -> 0.166
    assert errors[400][1] < 0.2, errors  # covariance error (Frobenius), posterior cov norm 2.1


def test_ddnm_plus_without_noise_or_travel_is_ddnm_and_travel_keeps_consistency():
    factory, d, shape = PROBLEMS["downsample"]
    prior, operator, y = _problem(factory, d, shape)
    grid = make_grid(SCHEDULE, 12, "uniform", final_zero=True)
    denoiser = prior.model(shape)
    runs = []
    for fn in (sample_ddnm, sample_ddnm_plus):
        g = torch.Generator().manual_seed(2)
        runs.append(fn(denoiser, torch.randn(16, d, generator=g, dtype=F64), grid, operator, y, generator=g))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    calls = []
    g = torch.Generator().manual_seed(2)
    x = sample_ddnm_plus(denoiser, torch.randn(16, d, generator=g, dtype=F64), grid, operator, y,
                         travel_length=3, travel_repeat=3, generator=g, callback=calls.append)
    # 12 steps + 3 jump points (indices 6, 9, 12) x 2 repeats x 3 redone steps
    assert len(calls) == path_nfe(resampling_path(12, 3, 3)) == 12 + 3 * 2 * 3
    assert float((operator(x) - y).abs().max()) < 1e-10


def test_ddnm_plus_single_step_follows_eq_17_to_19():
    """One step t0 -> t1 written out independently: lambda, gamma from the step's noise std c and alpha_1 sigma_y."""
    factory, d, shape = PROBLEMS["projection"]
    denoiser_prior, operator, y = _problem(factory, d, shape, sigma_y=0.3)
    denoiser = denoiser_prior.model(shape)
    for t0, t1 in [(0.5, 0.3), (0.05, 0.04)]:  # c >= alpha sigma_y in the first, c < alpha sigma_y in the second
        grid = torch.tensor([t0, t1], dtype=F64)
        g = torch.Generator().manual_seed(9)
        x = torch.randn(5, d, generator=g, dtype=F64)
        out = sample_ddnm_plus(denoiser, x, grid, operator, y, eta=1.0, generator=g)
        g.manual_seed(9)
        torch.randn(5, d, generator=g, dtype=F64)  # x again
        z = torch.randn(5, d, generator=g, dtype=F64)  # the sampler's one draw
        (a0, a1), (s0, s1) = SCHEDULE.alpha_sigma(grid)
        x0, eps = denoiser.predict(x, grid[0])
        l0, l1 = math.log(a0 / s0), math.log(a1 / s1)
        c = float(s1) * math.sqrt(1 - math.exp(2 * (l0 - l1)))
        lam = min(1.0, c / (float(a1) * 0.3))
        gamma = math.sqrt(max(c**2 - (lam * float(a1) * 0.3) ** 2, 0.0))
        assert (lam < 1) == (t0 < 0.1)
        x0_hat = x0 - lam * operator.pinv(operator(x0) - y)
        expected = a1 * x0_hat + math.sqrt(float(s1) ** 2 - c**2) * eps + gamma * z
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_noisy_measurement_methods_stay_within_the_noise_level():
    factory, d, shape = PROBLEMS["mask"]
    sigma_y = 0.05
    prior, operator, y = _problem(factory, d, shape, sigma_y)
    mean, cov = prior.posterior(operator, y)
    observed = operator.mask.bool()
    denoiser = prior.model(shape)
    results = {}
    for name, fn, steps, options in [("dps", sample_dps, 200, {"zeta": 0.05}),
                                     ("repaint", sample_repaint, 50, {"jump_length": 5, "jump_n_sample": 3}),
                                     ("ddnm_plus", sample_ddnm_plus, 50, {"eta": 1.0})]:
        g = torch.Generator().manual_seed(3)
        x = fn(denoiser, torch.randn(500, d, generator=g, dtype=F64),
               make_grid(SCHEDULE, steps, "uniform", final_zero=True), operator, y, generator=g, **options)
        rms = float((operator(x) - y)[:, observed].pow(2).mean().sqrt())
        # measured (rms residual, mean error): dps (0.032, 0.24), repaint (0.0, 0.68), ddnm_plus (0.044, 0.40)
        results[name] = (rms, float((x.mean(0) - mean).norm()))
        assert torch.isfinite(x).all()
        assert rms <= 3 * sigma_y, results
    # posterior std of the unobserved coordinates is order one: every method must have moved off the prior mean
    prior_error = float((torch.where(observed, y[0], prior.mu) - mean).norm())
    for name, (_, mean_error) in results.items():
        assert mean_error < prior_error / 1.5, (name, results, prior_error)


def test_dps_with_zero_step_is_core_ddim_and_repaint_without_resampling_is_ilvr():
    factory, d, shape = PROBLEMS["projection"]
    prior, operator, y = _problem(factory, d, shape)
    denoiser = prior.model(shape)
    grid = make_grid(SCHEDULE, 8, "logsnr", final_zero=True)
    runs = []
    for fn, kw in [(sample_dps, {"zeta": 0.0, "operator": operator, "y": y}), (sample_ddim, {"eta": 1.0})]:
        g = torch.Generator().manual_seed(4)
        runs.append(fn(denoiser, torch.randn(8, d, generator=g, dtype=F64), grid, generator=g, **kw))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=1e-14)
    runs = []
    for fn, kw in [(sample_repaint, {"jump_n_sample": 1}), (sample_ilvr, {})]:
        g = torch.Generator().manual_seed(5)
        runs.append(fn(denoiser, torch.randn(8, d, generator=g, dtype=F64), grid, operator, y, generator=g, **kw))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert float((operator(runs[1]) - y).abs().max()) < 1e-10  # the last replacement lands on A x = y


def test_ilvr_range_and_per_sample_grid():
    factory, d, shape = PROBLEMS["downsample"]
    prior, operator, y = _problem(factory, d, shape)
    denoiser = prior.model(shape)
    grid = make_grid(SCHEDULE, 6, "uniform", final_zero=True)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(4, d, generator=g, dtype=F64)
    off = sample_ilvr(denoiser, x, grid, operator, y, t_stop=2.0, eta=0.0)
    torch.testing.assert_close(off, sample_ddim(denoiser, x, grid, eta=0.0))  # refinement never applies
    per_sample = sample_ddnm(denoiser, x, grid[:, None].expand(-1, 4), operator, y, eta=0.0)
    torch.testing.assert_close(per_sample, sample_ddnm(denoiser, x, grid, operator, y, eta=0.0))


@given(batch=st.integers(1, 4), dtype=st.sampled_from([torch.float32, torch.float64]),
       method=st.sampled_from([sample_repaint, sample_ilvr, sample_ddnm, sample_ddnm_plus, sample_dps]))
def test_methods_shapes_dtypes_and_finite(batch, dtype, method):
    factory, d, shape = PROBLEMS["fourier"]
    prior, operator, y = _problem(factory, d, shape, sigma_y=0.05)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((batch,) + shape, generator=g, dtype=dtype)
    options = {"jump_length": 2, "jump_n_sample": 2} if method is sample_repaint else {}
    out = method(prior.model(shape), x, make_grid(SCHEDULE, 4, "uniform"), operator, y, generator=g, **options)
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()


def test_sampler_input_errors_name_the_argument():
    factory, d, shape = PROBLEMS["mask"]
    prior, operator, y = _problem(factory, d, shape)
    denoiser, grid = prior.model(shape), make_grid(SCHEDULE, 3)
    x = torch.randn(2, d, dtype=F64)
    for method in (sample_repaint, sample_ilvr, sample_ddnm, sample_ddnm_plus, sample_dps):
        with pytest.raises(ValueError, match="y:"):
            method(denoiser, x, grid, operator, torch.full_like(y, float("nan")))
        with pytest.raises(ValueError, match="y:"):
            method(denoiser, x, grid, operator, torch.zeros(2, d + 1, dtype=F64))
        with pytest.raises(ValueError, match="y:"):
            method(denoiser, x, grid, operator, torch.zeros(3, d, dtype=F64))
        with pytest.raises(ValueError, match="operator:"):
            method(denoiser, torch.randn(2, d + 2, dtype=F64), grid, operator, y)
        with pytest.raises(ValueError, match="operator:"):
            method(denoiser, x, grid, "mask", y)
        with pytest.raises(ValueError, match="x:"):
            method(denoiser, torch.full_like(x, float("nan")), grid, operator, y)
    with pytest.raises(ValueError, match="zeta"):
        sample_dps(denoiser, x, grid, operator, y, zeta=-1.0)
    with pytest.raises(ValueError, match="eta"):
        sample_ddnm(denoiser, x, grid, operator, y, eta=-0.5)


# ------------------------------------------------------------------------------------------------ benchmark


def test_bench_mixture_posterior_satisfies_bayes_rule():
    """log p(x | y) - log p(x) - log p(y | x) must be the same constant (-log p(y)) at every x."""
    from polydiff.core.bench import inverse as bench

    weights, means, covariances, _ = bench._mixture(0)
    prior = bench.MixturePosterior(weights, means, covariances)
    g = torch.Generator().manual_seed(0)
    for operator in bench._operators(0).values():
        y = operator.measure(prior.sample(1, g), g)
        posterior = bench.mixture_posterior(weights, means, covariances, operator, y)
        dense = _dense(operator)
        u, s, _ = torch.linalg.svd(dense, full_matrices=False)
        basis = u[:, s > 1e-10 * s.max()]
        # points where the posterior density is representable (far-off prior modes have weight exp(-700) -> 0)
        near = posterior.sample(20, g)
        x = torch.cat([near, near + 0.2 * torch.randn(near.shape, generator=g, dtype=F64)])
        residual = basis.T @ y.reshape(-1) - x @ (basis.T @ dense).T
        log_likelihood = -0.5 * (residual**2).sum(1) / operator.sigma_y**2
        gap = posterior.log_prob(x) - prior.log_prob(x) - log_likelihood
        assert float(gap.max() - gap.min()) < 1e-6 * float(gap.abs().max() + 1), type(operator).__name__
        assert abs(float(posterior.weights.sum()) - 1) < 1e-12


def test_bench_rows_shape_and_sanity(tmp_path, monkeypatch):
    from polydiff.core.bench import inverse as bench

    rows = bench.run_inverse_bench(tmp_path, True, 0, nfes=(8,), num_samples=300)
    tasks = {row["task"] for row in rows}
    assert tasks == {"gmm-d16-k8/mask/nfe8", "gmm-d16-k8/projection/nfe8", "gmm-d16-k8/downsample/nfe8"}
    for task in tasks:
        by_method = {row["method"]: row for row in rows if row["task"] == task}
        assert {"exact-posterior (resampled)", "measurement-only pinv", "repaint", "ddnm", "ddnm+",
                "ddnm+ time-travel", "dps"} <= set(by_method)
        assert ("ilvr" in by_method) == task.endswith("downsample/nfe8")
        assert by_method["exact-posterior (resampled)"]["peer"] and not by_method["ddnm"]["peer"]
        assert all(row["nfe"] <= 8 for row in by_method.values())
        for row in by_method.values():
            assert all(math.isfinite(row[m]) for m in ("swd", "mean_error", "cov_error"))
        floor, pinv = by_method["exact-posterior (resampled)"], by_method["measurement-only pinv"]
        assert floor["swd"] < by_method["ddnm"]["swd"] < pinv["swd"]
    monkeypatch.setattr(bench, "run_inverse_bench", lambda out, quick, seed: rows)
    assert bench.main(["--out", str(tmp_path), "--quick"]) == 0
    document = __import__("json").loads((tmp_path / "core-inverse.json").read_text())
    assert document["package"] == "core-inverse" and len(document["rows"]) == len(rows)
    assert (tmp_path / "core-inverse.md").exists()


def test_bench_mixture_posterior_weights_by_component_evidence():
    """Two components in 2-D, y observes x_0: weights by N(y; mu_k0, S_k00 + sigma_y^2), means by 2-D conditioning."""
    from polydiff.core.bench import inverse as bench

    weights = torch.tensor([0.3, 0.7], dtype=F64)
    means = torch.tensor([[0.0, 1.0], [0.5, -1.0]], dtype=F64)
    covariances = torch.tensor([[[1.0, 0.5], [0.5, 1.0]], [[0.25, 0.0], [0.0, 0.5]]], dtype=F64)
    operator = Mask(torch.tensor([True, False]), sigma_y=0.2)
    y = torch.tensor([[0.4, 0.0]], dtype=F64)
    posterior = bench.mixture_posterior(weights, means, covariances, operator, y)
    var = covariances[:, 0, 0] + 0.04
    evidence = weights * torch.exp(-0.5 * (0.4 - means[:, 0]) ** 2 / var) / var.sqrt()
    torch.testing.assert_close(posterior.weights, evidence / evidence.sum())
    gain = covariances[:, :, 0] / var[:, None]  # (K, 2)
    torch.testing.assert_close(posterior.means, means + gain * (0.4 - means[:, :1]))
    torch.testing.assert_close(posterior.covariances,
                               covariances - gain[:, :, None] * covariances[:, None, 0, :])
