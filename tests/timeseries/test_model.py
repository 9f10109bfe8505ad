"""DiffusionForecaster: frame layouts, scaling, quantiles, persistence, cross-validation and imputation."""

import numpy as np
import pandas as pd
import pytest
import torch

from polydiff.timeseries import DiffusionForecaster
from polydiff.timeseries.diffusion import csdi_schedule, normalize, sample_windows
from polydiff.timeseries.model import _difference, _integrate
from polydiff.timeseries.networks import CSDINetwork

TINY = dict(train_steps=20, dim=16, depth=1, heads=2, num_samples=16, steps=5)


def sine_frame(n=120, period=12, ids=("a",), scale=1.0, offset=0.0):
    ds = pd.date_range("2000-01-01", periods=n, freq="MS")
    parts = [pd.DataFrame({"unique_id": uid, "ds": ds,
                           "y": offset + scale * (k + 1) * np.sin(2 * np.pi * np.arange(n) / period)})
             for k, uid in enumerate(ids)]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def fitted():
    return DiffusionForecaster(h=6, freq="MS", context_length=12, **TINY).fit(sine_frame(ids=("a", "b")))


def test_predict_layout_and_monotone_quantiles(fitted):
    frame = fitted.predict(level=[80, 95])
    assert list(frame.columns) == ["unique_id", "ds", "CSDI", "CSDI-lo-80", "CSDI-hi-80", "CSDI-lo-95", "CSDI-hi-95"]
    assert len(frame) == 12 and list(frame["unique_id"].unique()) == ["a", "b"]
    assert frame["ds"].iloc[0] == pd.Timestamp("2010-01-01")
    ordered = frame[["CSDI-lo-95", "CSDI-lo-80", "CSDI", "CSDI-hi-80", "CSDI-hi-95"]].to_numpy()
    assert np.all(np.diff(ordered, axis=1) >= 0)
    assert fitted.predict(h=3)["ds"].nunique() == 3


def test_predict_samples_shape_and_seeded(fitted):
    samples = fitted.predict_samples()
    assert samples.shape == (2, 16, 6) and np.isfinite(samples).all()
    np.testing.assert_array_equal(samples, fitted.predict_samples())


def test_window_scaling_round_trip_and_observed_entries_kept():
    values = torch.tensor([[[100.0, 102.0, 98.0, 101.0, 0.0, 0.0]]])
    cond = torch.tensor([[[1.0, 1, 1, 1, 0, 0]]])
    scaled, loc, scale = normalize(values, cond)
    assert loc.item() == pytest.approx(100.25)
    torch.testing.assert_close(scaled * scale + loc, values)
    network = CSDINetwork(1, 0, dim=8, depth=1, heads=2)
    out = sample_windows(network, csdi_schedule(), "eps", values, cond, torch.zeros(1, 0, 6), num_samples=3,
                         solver="ddpm", steps=4)
    assert out.shape == (1, 3, 1, 6)
    torch.testing.assert_close(out[0, :, 0, :4], values[0, 0, :4].expand(3, 4))


def test_trend_scaling_removes_a_line_and_round_trips():
    steps = torch.arange(8.0)
    values = (50.0 + 3.0 * steps + torch.tensor([1.0, -1, 1, -1, 1, -1, 0, 0]))[None, None]
    cond = torch.tensor([[[1.0, 1, 1, 1, 1, 1, 0, 0]]])
    scaled, loc, scale = normalize(values, cond, trend=True)
    assert loc.shape == (1, 1, 8) and scale.shape == (1, 1, 1)
    slope, intercept = np.polyfit(np.arange(6.0), values[0, 0, :6].numpy(), 1)
    line = torch.tensor(intercept + slope * np.arange(8.0), dtype=torch.float32)
    torch.testing.assert_close(loc[0, 0], line)  # the least-squares line, extrapolated over the last two steps
    torch.testing.assert_close(scaled * scale + loc, values)
    exact, _, _ = normalize(50.0 + 3.0 * steps[None, None], cond, trend=True)
    assert exact.abs().max() < 1e-3  # a pure line has no residual


def test_seasonal_difference_integrates_back_beyond_one_season():
    rng = np.random.default_rng(0)
    y = rng.normal(size=30).cumsum()
    lag = 4  # 10 forecast steps > lag: the later ones are integrated from the path itself
    d = _difference(y, lag)
    np.testing.assert_allclose(d, y[lag:] - y[:-lag])
    future = _integrate(y[None, 16:20], d[None, None, 16:26])  # history y[16:20], differences of y[20:30]
    np.testing.assert_allclose(future[0, 0], y[20:30])


def test_median_profile_difference_integrates_back():
    """seasons=3: the reference is the median of the values one, two and three seasons back, on the path itself
    once the horizon passes a season."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=40).cumsum()
    lag, seasons = 4, 3
    d = _difference(y, lag, seasons)
    reference = np.median(np.stack([y[12 - j * lag:40 - j * lag] for j in (1, 2, 3)]), axis=0)
    np.testing.assert_allclose(d, y[12:] - reference)
    future = _integrate(y[None, 18:30], d[None, None, 18:28], lag)  # history y[18:30], differences of y[30:40]
    np.testing.assert_allclose(future[0, 0], y[30:40])


def test_seasonal_diff_with_a_median_profile_is_in_data_units():
    frame = sine_frame(n=80, scale=5.0, offset=1000.0)
    fc = DiffusionForecaster(h=4, freq="MS", context_length=8, transform="seasonal_diff", seasons=3, **TINY)
    fc.fit(frame)
    assert (fc.lag, fc.seasons, fc.span) == (12, 3, 36) and len(fc._state["tails"]["a"]) == 44
    assert np.all(np.abs(fc.predict()["CSDI"].to_numpy() - frame["y"].to_numpy()[-12:-8]) < 10)
    with pytest.raises(ValueError, match="season 36"):
        DiffusionForecaster(h=4, freq="MS", context_length=8, transform="seasonal_diff", seasons=3,
                            **TINY).fit(frame[:40])
    with pytest.raises(ValueError, match="^seasons"):
        DiffusionForecaster(h=4, freq="MS", seasons=0)


def test_seasonal_diff_forecaster_is_in_data_units():
    frame = sine_frame(n=80, scale=5.0, offset=1000.0)
    frame["y"] += 0.5 * np.arange(80)  # a trend that seasonal differencing turns into a constant
    fc = DiffusionForecaster(h=4, freq="MS", context_length=8, transform="seasonal_diff", **TINY).fit(frame)
    assert fc.config.lag == 12 and len(fc._state["tails"]["a"]) == 20
    median = fc.predict()["CSDI"].to_numpy()
    assert np.all(np.abs(median - (frame["y"].to_numpy()[-12:-8] + 6.0)) < 10)  # one season on, plus the drift
    with pytest.raises(ValueError, match="^transform"):
        fc.impute(frame)
    with pytest.raises(ValueError, match="season 12"):
        DiffusionForecaster(h=4, freq="MS", context_length=8, transform="seasonal_diff", **TINY).fit(frame[:15])


def test_series_scaling_inverts_to_data_units():
    frame = sine_frame(n=80, scale=5.0, offset=1000.0)
    fc = DiffusionForecaster(h=4, freq="MS", context_length=8, scaling="series", **TINY).fit(frame)
    stats = fc._state["series_stats"]["a"]
    assert stats[0] == pytest.approx(frame["y"].mean()) and stats[1] == pytest.approx(frame["y"].std(ddof=0))
    assert 900 < fc.predict()["CSDI"].mean() < 1100


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save_pretrained(tmp_path / "model")
    loaded = DiffusionForecaster.from_pretrained(tmp_path / "model")
    assert loaded.config == fitted.config
    pd.testing.assert_frame_equal(loaded.predict(), fitted.predict())


def test_cross_validation_layout_and_no_leakage():
    frame = sine_frame(n=60)
    fc = DiffusionForecaster(h=4, freq="MS", context_length=8, **TINY)
    cv = fc.cross_validation(frame, n_windows=3)
    assert list(cv.columns[:5]) == ["unique_id", "ds", "cutoff", "y", "CSDI"] and len(cv) == 12
    truth = frame.set_index("ds")["y"]
    np.testing.assert_allclose(cv["y"], truth.loc[cv["ds"]].to_numpy())
    assert sorted(cv["cutoff"].unique()) == list(frame["ds"].iloc[[47, 51, 55]])
    # trained once, on the 48 points before the first window only
    assert fc._state["last_ds"]["a"] == str(frame["ds"].iloc[47])


def test_multivariate_and_exogenous():
    frame = sine_frame(n=50, ids=("a", "b", "c"))
    frame["x"] = np.tile(np.arange(50.0), 3)
    fc = DiffusionForecaster(h=3, freq="MS", context_length=6, multivariate=True, **TINY).fit(frame)
    future = pd.DataFrame({"unique_id": np.repeat(["a", "b", "c"], 3),
                           "ds": np.tile(pd.date_range("2004-03-01", periods=3, freq="MS"), 3), "x": 1.0})
    assert fc.predict_samples(X_df=future).shape == (3, 16, 3)
    with pytest.raises(ValueError, match="X_df"):
        fc.predict()


@pytest.mark.parametrize("model", ["tsdiff", "diffusion_ts"])
def test_unconditional_models_forecast_and_impute(model):
    frame = sine_frame(n=40)
    fc = DiffusionForecaster(model=model, h=4, freq="MS", context_length=8, **TINY).fit(frame)
    assert fc.predict()[fc.name].notna().all()
    gappy = frame.copy()
    gappy.loc[[5, 6, 20], "y"] = np.nan
    filled = fc.impute(gappy)
    assert filled["y"].notna().all() and filled["imputed"].sum() == 3


def test_diffusion_ts_components_layout():
    fc = DiffusionForecaster(model="diffusion_ts", h=4, freq="MS", context_length=8, **TINY).fit(sine_frame(n=40))
    parts = fc.components()
    assert list(parts.columns) == ["unique_id", "ds", "y", "trend", "season", "residual"] and len(parts) == 12
    assert parts["ds"].iloc[-1] == pd.Timestamp("2003-08-01")
    with pytest.raises(ValueError, match="^model"):
        DiffusionForecaster(h=4, freq="MS", context_length=8, **TINY).fit(sine_frame(n=40)).components()
    with pytest.raises(ValueError, match="^transform"):  # the decomposition is of window-scaled values
        DiffusionForecaster(model="diffusion_ts", h=4, freq="MS", context_length=8, scaling="level",
                            **TINY).fit(sine_frame(n=40)).components()


def test_impute_recovers_a_sine_with_block_gaps():
    frame = sine_frame(n=240, period=12)
    truth = frame["y"].to_numpy().copy()
    gappy = frame.copy()
    gaps = np.r_[30:34, 100:104, 200:204]
    gappy.loc[gaps, "y"] = np.nan
    fc = DiffusionForecaster(h=6, freq="MS", context_length=18, train_steps=400, dim=32, depth=1, heads=2,
                             num_samples=20, steps=10)
    filled = fc.impute(gappy)
    error = np.abs(filled["y"].to_numpy()[gaps] - truth[gaps]).mean()
    linear = np.abs(gappy["y"].interpolate().to_numpy()[gaps] - truth[gaps]).mean()
    assert error < 0.25 and error < linear / 2
    assert filled.loc[~filled["imputed"], "y"].equals(frame.loc[~filled["imputed"], "y"])
    inside = (filled["CSDI-lo-95"].to_numpy()[gaps] <= truth[gaps]) & (truth[gaps] <= filled["CSDI-hi-95"].to_numpy()[gaps])
    assert inside.mean() >= 0.5


def test_epochs_rule_sets_the_number_of_optimizer_steps():
    from polydiff.timeseries.model import epoch_train_steps

    assert epoch_train_steps(37, 64, 500, 200, 1500) == 500       # one batch per pass
    assert epoch_train_steps(211, 64, 500, 200, 1500) == 1500     # ceil(500 x 211 / 64) = 1649 > ceiling
    assert epoch_train_steps(5, 64, 10, 200, 1500) == 200         # floor
    assert epoch_train_steps(5, 64, 10, 200, 50) == 50            # the floor never exceeds the ceiling
    assert epoch_train_steps(128, 64, 3, 1, 100) == 6
    with pytest.raises(ValueError, match="epochs"):
        epoch_train_steps(10, 64, 0, 1, 10)
    with pytest.raises(ValueError, match="epochs"):
        DiffusionForecaster(h=6, freq="MS", epochs=-1.0)
    # 120 points, windows of 12 + 6 steps: 103 windows in batches of 64, 2 passes -> ceil(206 / 64) = 4 steps
    fc = DiffusionForecaster(h=6, freq="MS", context_length=12, epochs=2, min_train_steps=1,
                             **{**TINY, "train_steps": 50}).fit(sine_frame())
    assert fc._state["train_steps_done"] == 4


def test_calendar_seasons_and_the_log_rule():
    from polydiff.timeseries.data import calendar_seasons, prefers_log

    assert calendar_seasons("30min") == (48, 336) and calendar_seasons("h") == (24, 168)
    assert calendar_seasons("MS") == (12,) and calendar_seasons("D") == (7,)
    steps = np.arange(144)
    level = 100 * np.exp(0.01 * steps)
    seasonal = np.sin(2 * np.pi * steps / 12)
    assert prefers_log(level * (1 + 0.2 * seasonal), 12)  # the spread grows with the level: multiplicative
    assert not prefers_log(level + 20 * seasonal + np.random.default_rng(0).normal(0, 1, 144), 12)  # additive
    assert not prefers_log(level * (1 + 0.2 * seasonal) - 150, 12)  # not positive: no log
    assert not prefers_log(level[:30] * (1 + 0.2 * seasonal[:30]), 12)  # fewer than 4 seasons to judge by


def test_auto_transform_removes_the_season_the_context_cannot_see():
    """DiffusionForecaster(h=24, freq="h"): context 72 sees the day but not the week (168), which "auto" removes
    with the residual of the mean of double seasonal smoothing's and an MSTL-style decomposition's seasonal
    references (three weeks of history start the smoothing's states) when the series is
    long enough; a short series is modelled as is; seasons=3 takes the seasonal difference to the median of the
    last three weeks instead; a horizon beyond the day falls back to the seasonal-naive residual."""
    fc = DiffusionForecaster(h=24, freq="h")
    hours = np.arange(3000)
    y = 50 + 10 * np.sin(2 * np.pi * hours / 24) + 5 * np.sin(2 * np.pi * hours / 168)
    assert fc.config.resolved_context == 72 and fc._choose([y]) == (168, False, 3) and fc._smooths(168)
    assert fc._decomposes() and not DiffusionForecaster(h=24, freq="h", transform="double_seasonal")._decomposes()
    assert fc._choose([y[:700]]) == (0, False, 3)  # needs context + h + 4 weeks = 768 points
    assert not DiffusionForecaster(h=24, freq="h", seasons=3)._smooths(168)
    assert not DiffusionForecaster(h=36, freq="h")._smooths(168)
    assert DiffusionForecaster(h=36, freq="h")._choose([y]) == (168, False, 1)
    assert fc._choose([y], impute=True)[:2] == (0, False)
    assert DiffusionForecaster(h=24, freq="h", transform="none")._choose([y])[:2] == (0, False)
    assert DiffusionForecaster(h=12, freq="MS")._choose([y])[:2] == (0, False)  # no season beyond the main one
    assert DiffusionForecaster(h=24, freq="h", seasons=3)._choose([y]) == (168, False, 3)
    assert DiffusionForecaster(h=24, freq="h", seasons=3)._choose([y[:700]])[0] == 0  # needs 96 + 4 weeks = 768


def test_log_scale_samples_stay_finite_when_the_network_is_untrained():
    # the guard before exp: an untrained network's log-scale samples far outside the history do not overflow
    history = np.log(np.array([[100.0, 150.0, 120.0, 300.0]]))
    wild = np.array([[[0.0, 5.0, 800.0, -900.0]]])
    out = DiffusionForecaster._exp(wild, history)
    width = max(history.max() - history.min(), 1.0)
    assert np.all(np.isfinite(out)) and out.max() == pytest.approx(np.exp(history.max() + 2 * width))
    assert out.min() == pytest.approx(np.exp(history.min() - 2 * width))
    assert out[0, 0, 1] == pytest.approx(np.exp(5.0))  # inside the band: unchanged
    steps = np.arange(96)
    frame = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2000-01-01", periods=96, freq="MS"),
                          "y": 100 * np.exp(0.02 * steps) * (1 + 0.3 * np.sin(2 * np.pi * steps / 12))})
    fc = DiffusionForecaster(h=6, freq="MS", context_length=12, log=True, **(TINY | dict(train_steps=1))).fit(frame)
    samples = fc.predict_samples()
    assert np.all(np.isfinite(samples)) and samples.max() < frame["y"].max() * np.exp(2 * 3.0)


def test_log_scale_forecaster_is_in_data_units():
    steps = np.arange(96)
    frame = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2000-01-01", periods=96, freq="MS"),
                          "y": 100 * np.exp(0.02 * steps) * (1 + 0.3 * np.sin(2 * np.pi * steps / 12))})
    fc = DiffusionForecaster(h=6, freq="MS", context_length=12, **(TINY | dict(train_steps=300, steps=20))).fit(frame)
    assert fc.log and fc.lag == 0  # log="auto" picks the log scale for multiplicative seasonality
    samples = fc.predict_samples()
    assert np.all(samples > 0)
    last_year = frame["y"].to_numpy()[-12:]
    median = np.median(samples[0], 0)
    assert np.all(median < 2 * last_year.max()) and np.all(median > 0.5 * last_year.min())
    with pytest.raises(ValueError, match="^log"):
        DiffusionForecaster(h=6, freq="MS", context_length=12, log=True, **TINY).fit(frame.assign(y=frame["y"] - 200))
    assert not DiffusionForecaster(h=6, freq="MS", context_length=12, log=False, **TINY).fit(frame).log
