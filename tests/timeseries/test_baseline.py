"""Double seasonal exponential smoothing (polydiff.timeseries.baseline) and the forecaster that models its residual;
the recent-level window scaling."""

import numpy as np
import pandas as pd
import pytest
import torch

from polydiff.timeseries import DiffusionForecaster
from polydiff.timeseries.baseline import SMOOTHING_GRID, fit_smoothing, recent_level, seasonal_reference
from polydiff.timeseries.diffusion import normalize

TINY = dict(train_steps=20, dim=16, depth=1, heads=2, num_samples=16, steps=5)


def double_seasonal(n, short=6, long=42, level=100.0, noise=0.0, seed=0):
    t = np.arange(n)
    day = 5 * np.sin(2 * np.pi * (t % short) / short)
    week = np.where((t % long) >= 5 * short, -8.0, 8.0 * 2 / 5)  # zero mean over the week at every phase
    return level + day + week + np.random.default_rng(seed).normal(0, noise, n)


def test_reference_is_exact_on_a_noise_free_double_seasonal_series():
    """Day and week profiles that the first week shows exactly: every error is zero, the states never move, and
    y - s is the level at every step, for any smoothing parameters."""
    y = double_seasonal(210)
    reference = seasonal_reference(y, 6, 42, 0.3, 0.5, 0.7, horizon=6)
    assert reference.shape == (216,)
    np.testing.assert_allclose(y - reference[:210], 100.0, atol=1e-9)
    np.testing.assert_allclose(reference[210:] + 100.0, double_seasonal(216)[210:], atol=1e-9)


def test_reference_of_the_next_short_season_uses_only_the_past():
    y = double_seasonal(300, noise=1.0)
    full = seasonal_reference(y, 6, 42, 0.1, 0.4, 0.2)
    ahead = seasonal_reference(y[:250], 6, 42, 0.1, 0.4, 0.2, horizon=6)
    np.testing.assert_allclose(ahead, full[:256])
    many = seasonal_reference(y, 6, 42, np.array([0.1, 0.2]), np.array([0.4, 0.4]), np.array([0.2, 0.2]))
    np.testing.assert_allclose(many[0], full)
    with pytest.raises(ValueError, match="^horizon"):
        seasonal_reference(y, 6, 42, 0.1, 0.4, 0.2, horizon=7)
    with pytest.raises(ValueError, match="^y"):
        seasonal_reference(y[:30], 6, 42, 0.1, 0.4, 0.2)


def test_fit_smoothing_picks_a_grid_setting_that_beats_a_bad_one():
    y = double_seasonal(1200, noise=1.0) + np.repeat(np.random.default_rng(1).normal(0, 3, 20), 60)
    chosen = fit_smoothing(y, 6, 42, h=6, context=18, tau=2.0)
    assert chosen in SMOOTHING_GRID
    with pytest.raises(ValueError, match="^y"):
        fit_smoothing(y[:50], 6, 42, h=6, context=18, tau=2.0)


def test_level_scaling_centres_on_the_recent_conditioning_values():
    values = torch.tensor([[[0.0, 0.0, 0.0, 10.0, 99.0, 99.0]]])
    cond = torch.tensor([[[1.0, 1, 1, 1, 0, 0]]])
    scaled, loc, scale = normalize(values, cond, level=1.0)
    weights = np.exp(-np.arange(3, -1, -1) / 1.0)
    assert loc.item() == pytest.approx(10 * weights[-1] / weights.sum(), rel=1e-5)
    assert scale.item() == pytest.approx(normalize(values, cond)[2].item())  # the window's spread
    torch.testing.assert_close(scaled * scale + loc, values)
    assert normalize(values, cond, level=1e6)[1].item() == pytest.approx(2.5, rel=1e-4)  # tau -> inf: the mean


def test_double_seasonal_forecaster_is_in_data_units_and_round_trips(tmp_path, persistence):
    n = 42 * 8
    y = double_seasonal(n, noise=0.5)
    frame = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-06", periods=n, freq="4h"), "y": y})
    fc = DiffusionForecaster(h=6, freq="4h", transform="double_seasonal", scaling="level", **TINY).fit(frame)
    assert fc.lag == 42 and fc.span == 3 * 42 and fc.smoothing and fc.scaling == "level"
    assert tuple(fc._state["smoothing"]["a"]) in SMOOTHING_GRID
    assert np.isfinite(fc.predict()["CSDI"].to_numpy()).all()

    exact = DiffusionForecaster.from_pretrained(fc.save_pretrained(tmp_path / "p"))
    exact._sample = persistence(6)
    np.testing.assert_allclose(exact.predict()["CSDI"].to_numpy(), double_seasonal(n + 6)[n:], atol=3.0)
    fc.save_pretrained(tmp_path / "m")
    again = DiffusionForecaster.from_pretrained(tmp_path / "m")
    np.testing.assert_allclose(again.predict_samples(), fc.predict_samples())
    with pytest.raises(ValueError, match="^transform"):
        fc.impute(frame)
    with pytest.raises(ValueError, match="^transform"):
        DiffusionForecaster(h=12, freq="4h", transform="double_seasonal", **TINY).fit(frame)
    with pytest.raises(ValueError, match="^level_steps"):
        DiffusionForecaster(h=6, freq="4h", scaling="level", level_steps=0)


def test_shrink_moves_the_median_towards_the_recent_level_and_keeps_the_spread():
    n = 42 * 8
    frame = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-06", periods=n, freq="4h"),
                          "y": double_seasonal(n, noise=0.5)})
    noise = np.random.default_rng(1).normal(3.0, 1.0, (16, 6))

    def drifting(values, cond, side, ids):  # paths 3 units above the last residual, spread 1
        context = values[..., :-6]
        paths = np.concatenate([np.repeat(context[:, None], 16, 1),
                                context[:, None, :, -1:] + noise[None, :, None]], -1)
        return paths

    paths = {}
    for shrink in (0.0, 0.5, 1.0):
        fc = DiffusionForecaster(h=6, freq="4h", transform="double_seasonal", scaling="level", shrink=shrink,
                                 **TINY).fit(frame)
        assert fc.shrink == shrink
        fc._sample = drifting
        paths[shrink] = fc.predict_samples()[0]
    residual = fc._residual(fc._forward(frame["y"].to_numpy(), "a"), "a")
    recent = recent_level(residual[-fc.config.resolved_context:], fc.config.resolved_level_steps)
    reference = paths[1.0] - (residual[-1] + noise)  # the seasonal part added back
    np.testing.assert_allclose(np.median(paths[0.0] - reference, 0), recent, atol=1e-9)
    np.testing.assert_allclose(np.median(paths[0.5], 0), (np.median(paths[0.0], 0) + np.median(paths[1.0], 0)) / 2)
    for shrink in (0.0, 0.5):  # the paths move together
        np.testing.assert_allclose(paths[shrink] - np.median(paths[shrink], 0), paths[1.0] - np.median(paths[1.0], 0))
    window = DiffusionForecaster(h=6, freq="4h", transform="none", scaling="window", shrink=0.0, **TINY).fit(frame)
    assert window.shrink == 1.0  # only a window centred on its recent level is shrunk
    with pytest.raises(ValueError, match="^shrink"):
        DiffusionForecaster(h=6, freq="4h", shrink=1.5)
