"""Additive Holt-Winters (polydiff.timeseries.baseline) and the forecaster that models the residual of its seasonal
part (transform="holt_winters")."""

import numpy as np
import pandas as pd
import pytest

from polydiff.timeseries import DiffusionForecaster
from polydiff.timeseries.baseline import HOLT_WINTERS_GRID, fit_holt_winters, holt_winters_reference

TINY = dict(train_steps=20, dim=16, depth=1, heads=2, num_samples=16, steps=5)
PROFILE = np.array([-3.0, -1.0, 2.0, 4.0, 1.0, -3.0])  # zero mean over the season
WEEK = np.array([-3.0, -1.0, 2.0, 4.0, 1.0, 0.0, -3.0])  # the same for daily data


def seasonal(n, noise=0.0, seed=0, slope=0.2, profile=PROFILE):
    t = np.arange(n)
    return 50.0 + slope * t + profile[t % len(profile)] + np.random.default_rng(seed).normal(0, noise, n)


def frame_of(y, freq="D"):
    return pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2021-01-04", periods=len(y), freq=freq), "y": y})


def test_reference_uses_only_the_past_and_repeats_the_last_profile():
    y = seasonal(120, noise=1.0)
    full = holt_winters_reference(y, 6, 0.3, 0.05, 0.2)
    assert full.shape == (120,)
    ahead = holt_winters_reference(y[:90], 6, 0.3, 0.05, 0.2, horizon=6)
    np.testing.assert_allclose(ahead, full[:96])  # a season ahead: the same states, from values before 90
    long = holt_winters_reference(y[:90], 6, 0.3, 0.05, 0.2, horizon=14)
    np.testing.assert_allclose(long[96:], long[90:98])  # beyond a season the last profile repeats
    many = holt_winters_reference(y, 6, np.array([0.3, 0.5]), np.array([0.05, 0.05]), np.array([0.2, 0.2]))
    np.testing.assert_allclose(many[0], full)


def test_reference_finds_a_noise_free_profile_and_the_fit_beats_a_bad_setting():
    y = seasonal(240)
    reference = holt_winters_reference(y, 6, 0.3, 0.1, 0.3)[-60:]  # the profile, up to a constant the level holds
    np.testing.assert_allclose(reference - reference.mean(), PROFILE[np.arange(180, 240) % 6], atol=1e-3)
    noisy = seasonal(240, noise=0.5)
    chosen = fit_holt_winters(noisy, 6, 6)
    assert chosen in HOLT_WINTERS_GRID
    found = holt_winters_reference(noisy, 6, *chosen)[-60:]
    assert np.abs(found - found.mean() - PROFILE[np.arange(180, 240) % 6]).mean() < 0.5


def test_bad_inputs_name_their_argument():
    y = seasonal(60)
    with pytest.raises(ValueError, match="^y"):
        holt_winters_reference(y[:11], 6, 0.3, 0.1, 0.3)
    with pytest.raises(ValueError, match="^horizon"):
        holt_winters_reference(y, 6, 0.3, 0.1, 0.3, horizon=-1)
    with pytest.raises(ValueError, match="^h"):
        fit_holt_winters(y, 6, 0)
    with pytest.raises(ValueError, match="^y"):
        fit_holt_winters(y[:15], 6, 6)
    with pytest.raises(ValueError, match="^season"):
        fit_holt_winters(y, 1, 1)
    with pytest.raises(ValueError, match="^transform"):  # two seasons + h needed
        DiffusionForecaster(h=12, freq="D", context_length=4, transform="holt_winters", **TINY).fit(
            frame_of(seasonal(20)))
    with pytest.raises(ValueError, match="^transform"):
        DiffusionForecaster(h=7, freq="D", transform="holt_winters", **TINY).impute(frame_of(seasonal(60)))


def test_forecaster_inverts_the_residual_and_round_trips(tmp_path):
    """The residual the network sees plus the reference is the series; a network that returns the true future
    residual gives back the true future values, on the log scale too; save/load keeps the fitted parameters."""
    n, h = 84, 7
    truth = np.exp(seasonal(n + h, noise=0.3, profile=WEEK) / 20)
    frame = frame_of(truth[:n])
    fc = DiffusionForecaster(h=h, freq="D", transform="holt_winters", log=True, **TINY).fit(frame)
    assert fc.holt_winters and fc.lag == 7 and fc.span == 0 and fc.log
    assert tuple(fc._state["holt_winters"]["a"]) in HOLT_WINTERS_GRID
    assert np.isfinite(fc.predict()["CSDI"].to_numpy()).all()
    params = fc._state["holt_winters"]["a"]
    full = np.log(truth)
    residual = full - holt_winters_reference(full[:n], 7, *params, horizon=h)
    np.testing.assert_allclose(fc._residual(full[:n], "a"), residual[:n])

    def oracle(values, cond, side, ids):  # the true future residual in every path
        paths = np.concatenate([values[..., :-h], np.broadcast_to(residual[n:], values[..., -h:].shape)], -1)
        return np.repeat(paths[:, None], 16, 1)

    loaded = DiffusionForecaster.from_pretrained(fc.save_pretrained(tmp_path / "m"))
    assert loaded.holt_winters and loaded._state["holt_winters"] == fc._state["holt_winters"]
    np.testing.assert_allclose(loaded.predict_samples(), fc.predict_samples())
    loaded._sample = oracle
    np.testing.assert_allclose(loaded.predict()["CSDI"].to_numpy(), truth[n:], rtol=1e-9)



def test_auto_leaves_a_short_seasonal_series_as_it_is():
    """transform="holt_winters" is an option: "auto" models a monthly or daily series as it is, whatever its
    length (the residual of Holt-Winters did not beat that on the validation windows, see the README)."""
    frame = frame_of(seasonal(7 * 12, noise=0.3, profile=WEEK))
    fc = DiffusionForecaster(h=7, freq="D", **TINY).fit(frame)
    assert not fc.holt_winters and fc.lag == 0 and fc.scaling == "window"
    fc = DiffusionForecaster(h=7, freq="D", transform="holt_winters", **TINY).fit(frame)
    assert fc.holt_winters and fc.scaling == "window" and fc.shrink == 1
