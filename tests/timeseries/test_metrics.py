"""Metrics against closed forms and hand computations."""

import math

import numpy as np
import pytest
from scipy import stats

from polydiff.timeseries import metrics


def gaussian_crps(mu, sigma, y):
    z = (y - mu) / sigma
    return sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))


def test_sample_crps_matches_gaussian_closed_form():
    # stratified draws (the normal quantiles at (i + 1/2) / m) remove the Monte Carlo error: O(1/m) remains
    y = np.array([-1.0, 0.3, 2.5])
    draws = stats.norm.ppf((np.arange(20_000) + 0.5) / 20_000, 0.5, 2.0)
    samples = np.repeat(draws[:, None], 3, 1)
    np.testing.assert_allclose(metrics.crps_samples(y, samples), gaussian_crps(0.5, 2.0, y), rtol=1e-3)


def test_sample_crps_pair_term_equals_brute_force():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(7, 2))
    y = np.array([0.1, -0.4])
    brute = np.abs(samples - y).mean(0) - 0.5 * np.abs(samples[:, None] - samples[None]).mean((0, 1))
    np.testing.assert_allclose(metrics.crps_samples(y, samples), brute, rtol=1e-12)


def test_crps_of_a_point_mass_is_absolute_error():
    np.testing.assert_allclose(metrics.crps_samples(np.array([3.0]), np.full((5, 1), 1.0)), [2.0])


def test_quantile_crps_approaches_gaussian_crps():
    levels = np.linspace(0.005, 0.995, 199)
    y = np.array([0.7])
    quantiles = stats.norm.ppf(levels, 0.0, 1.0)[:, None]
    np.testing.assert_allclose(metrics.crps_quantiles(y, quantiles, levels), gaussian_crps(0, 1, y), rtol=2e-2)


def test_pinball_and_wql_by_hand():
    y = np.array([10.0, 20.0])
    levels = np.array([0.1, 0.5, 0.9])
    quantiles = np.array([[8.0, 25.0], [10.0, 25.0], [12.0, 25.0]])
    # level 0.1: errors 2, -5 -> 0.2, 4.5; 0.5: 0, -5 -> 0, 2.5; 0.9: -2, -5 -> 0.2, 0.5
    expected = np.array([[0.2, 4.5], [0.0, 2.5], [0.2, 0.5]])
    np.testing.assert_allclose(metrics.pinball_loss(y, quantiles, levels), expected)
    assert metrics.wql(y, quantiles, levels) == pytest.approx(2 * expected.mean(0).sum() / 30)


def test_mase_coverage_width():
    insample = np.array([1.0, 2.0, 4.0, 7.0])  # lag-1 diffs 1, 2, 3: scale 2
    assert metrics.mase([8.0, 9.0], [7.0, 12.0], insample, 1) == pytest.approx(2.0 / 2)
    assert metrics.mase([8.0], [7.0], insample, 2) == pytest.approx(1.0 / 4)
    assert metrics.coverage([1, 2, 3, 4], [0, 2.5, 2, 0], [2, 3, 4, 3]) == 0.5
    assert metrics.interval_width([0, 1], [2, 5]) == 3.0


def test_crps_sum_uses_the_summed_series():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(4, 3))
    samples = rng.normal(size=(50, 4, 3))
    expected = metrics.wql(y.sum(1), metrics.sample_quantiles(samples.sum(2)))
    assert metrics.crps_sum(y, samples) == pytest.approx(expected)


def test_sample_quantiles_are_monotone():
    samples = np.random.default_rng(3).normal(size=(100, 6))
    q = metrics.sample_quantiles(samples)
    assert q.shape == (19, 6) and np.all(np.diff(q, axis=0) >= 0)


def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(20_000, 2))
    assert metrics.frechet_distance(a, a + np.array([1.0, 2.0])) == pytest.approx(5.0, rel=1e-6)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_discriminative_score_separates_different_data():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(200, 8, 1))
    assert metrics.discriminative_score(real, real + 3.0, steps=200) > 0.4
    assert metrics.discriminative_score(real, rng.normal(size=(200, 8, 1)), steps=200) < 0.15


@pytest.mark.parametrize("call, name", [
    (lambda: metrics.crps_samples([1.0, 2.0], np.ones((3, 3))), "samples"),
    (lambda: metrics.wql([0.0, 0.0], np.zeros((19, 2))), "y"),
    (lambda: metrics.pinball_loss([1.0], [[1.0]], [1.5]), "levels"),
    (lambda: metrics.mase([1.0], [1.0], [1.0], 1), "insample"),
    (lambda: metrics.mase([1.0], [1.0], [1.0, 2.0, 3.0], 0), "season"),
    (lambda: metrics.crps_samples([np.nan], np.ones((3, 1))), "y"),
    (lambda: metrics.level_quantiles([100]), "level"),
])
def test_bad_metric_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
