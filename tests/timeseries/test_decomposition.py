"""The MSTL-style decomposition (polydiff.timeseries.baseline) and the forecaster that models the residual of its
seasonal forecast averaged with double seasonal smoothing's (transform="mstl")."""

import numpy as np
import pandas as pd
import pytest

from polydiff.timeseries import DiffusionForecaster
from polydiff.timeseries.baseline import centred_mean, decompose, decomposition_reference, seasonal_reference

TINY = dict(train_steps=20, dim=16, depth=1, heads=2, num_samples=16, steps=5)


def two_seasons(n, short=6, long=42, noise=0.0, slope=0.0, seed=0):
    t = np.arange(n)
    day = 5 * np.sin(2 * np.pi * (t % short) / short)
    week = np.where((t % long) >= 5 * short, -8.0, 8.0 * 2 / 5)  # zero mean over the week at every phase
    return 100.0 + slope * t + day + week + np.random.default_rng(seed).normal(0, noise, n)


def test_centred_mean_is_the_classical_2x_moving_average_inside_and_cut_at_the_ends():
    x = np.random.default_rng(0).normal(size=50)
    inside = centred_mean(x, 6)[10]
    weights = np.r_[0.5, np.ones(5), 0.5] / 6
    assert inside == pytest.approx((x[7:14] * weights).sum())
    assert centred_mean(x, 5)[10] == pytest.approx(x[8:13].mean())
    assert centred_mean(x, 6)[0] == pytest.approx((x[:3].sum() + 0.5 * x[3]) / 3.5)
    np.testing.assert_allclose(centred_mean(np.full(20, 3.0), 6), 3.0)


def test_decompose_recovers_the_day_and_the_week_profiles():
    """Noise-free day and week profiles on a constant level: the inner loop converges to them (the week without
    any part of the day) and their sum continues the seasonal pattern past the end. Around a linear trend the
    moving average cut at the series' end leaves an error within a tenth of the trend's rise over a week."""
    n = 42 * 6
    truth = two_seasons(n + 42) - 100.0
    ahead = np.arange(42)
    day, week = decompose(two_seasons(n), (6, 42), (5.0, 8.0), iterations=6)
    np.testing.assert_allclose(day[ahead % 6] + week, truth[n:], atol=1e-4)
    np.testing.assert_allclose(week.reshape(-1, 6).mean(0), 0.0, atol=1e-9)
    assert abs(day.mean()) < 1e-9 and abs(week.mean()) < 1e-9
    day, week = decompose(two_seasons(n, slope=0.05), (6, 42), (5.0, 8.0))
    np.testing.assert_allclose(day[ahead % 6] + week, truth[n:], atol=0.1 * 0.05 * 42)
    with pytest.raises(ValueError, match="^x"):
        decompose(truth[:60], (6, 42), (5.0, 8.0))


def test_decomposition_reference_uses_only_the_past_and_is_the_forecast_at_the_origin():
    y = two_seasons(42 * 8, noise=1.0, slope=0.02)
    n = 42 * 6
    full = decomposition_reference(y[:n], 6, 42, horizon=6)
    assert full.shape == (n + 6,)
    assert np.isnan(full[:84]).all() and np.isfinite(full[90:]).all()
    day, week = decompose(y[:n], (6, 42), (5.0, 8.0), iterations=3)
    np.testing.assert_allclose(full[n:], day + week[:6])  # the horizon: the profiles continued from the origin
    # a short season later the reference over the data is what it was, and the forecast made at n became its value
    # over the new points: the network is trained on the residual of the same references it forecasts with
    np.testing.assert_allclose(decomposition_reference(y[:n + 6], 6, 42), full)
    assert not np.allclose(decomposition_reference(y[:n + 6], 6, 42, horizon=6)[n + 6:], full[n:])
    with pytest.raises(ValueError, match="^horizon"):
        decomposition_reference(y, 6, 42, horizon=7)
    with pytest.raises(ValueError, match="^long"):
        decomposition_reference(y, 6, 40)


def test_mstl_forecaster_inverts_its_reference_and_round_trips(tmp_path, persistence):
    n = 42 * 8
    y = two_seasons(n, noise=0.5)
    frame = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-06", periods=n, freq="4h"), "y": y})
    fc = DiffusionForecaster(h=6, freq="4h", transform="mstl", scaling="level", **TINY).fit(frame)
    assert fc.lag == 42 and fc.span == 3 * 42 and fc.smoothing and fc.decomposed and fc.shrink == 0.25
    smoothing = seasonal_reference(y, 6, 42, *fc._state["smoothing"]["a"])
    expected = y - 0.5 * (smoothing + decomposition_reference(y, 6, 42))
    np.testing.assert_allclose(fc._residual(y, "a"), expected[fc.span:])
    assert np.isfinite(fc.predict()["CSDI"].to_numpy()).all()

    exact = DiffusionForecaster.from_pretrained(fc.save_pretrained(tmp_path / "p"))
    assert exact.decomposed
    exact._sample = persistence(6)
    np.testing.assert_allclose(exact.predict()["CSDI"].to_numpy(), two_seasons(n + 6)[n:], atol=3.0)
    again = DiffusionForecaster.from_pretrained(tmp_path / "p")
    np.testing.assert_allclose(again.predict_samples(), fc.predict_samples())
    with pytest.raises(ValueError, match="^transform"):
        fc.impute(frame)
    with pytest.raises(ValueError, match="^transform"):
        DiffusionForecaster(h=12, freq="4h", transform="mstl", **TINY).fit(frame)
    with pytest.raises(ValueError, match="^transform"):
        DiffusionForecaster(h=6, freq="4h", transform="stl")
