"""Bundled datasets, calendar features, frame conversion and file I/O."""

import numpy as np
import pandas as pd
import pytest

from polydiff.timeseries import data


@pytest.mark.parametrize("name, length, freq", [("co2", 526, "MS"), ("sunspots", 309, "YS"), ("airline", 144, "MS"),
                                                ("taylor", 4032, "30min"), ("ausbeer", 211, "QS"),
                                                ("wineind", 176, "MS")])
def test_datasets_are_regular_complete_long_frames(name, length, freq):
    frame = data.load_dataset(name)
    assert list(frame.columns) == ["unique_id", "ds", "y"] and len(frame) == length
    assert data.DATASETS[name].freq == freq
    checked = data.check_frame(frame, freq)
    assert not checked["y"].isna().any()


def test_known_values():
    assert data.load_dataset("airline")["y"].iloc[0] == 112.0
    taylor = data.load_dataset("taylor")
    assert taylor["y"].iloc[0] == 22262.0 and taylor["ds"].iloc[0] == pd.Timestamp("2000-06-05")
    co2 = data.load_dataset("co2")
    assert co2["ds"].iloc[0] == pd.Timestamp("1958-03-01") and 310 < co2["y"].iloc[0] < 320


def test_macro_is_five_aligned_series():
    frame = data.load_dataset("macro")
    assert frame["unique_id"].nunique() == 5 and len(frame) == 5 * 203


def test_sines_shape_range_and_seed():
    a, b = data.make_sines(10, 24, 5, seed=1), data.make_sines(10, 24, 5, seed=1)
    assert a.shape == (10, 24, 5) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)


def test_season_length_and_calendar_features():
    assert [data.season_length(f) for f in ("h", "30min", "D", "W", "MS", "QS", "YS")] == [24, 48, 7, 52, 12, 4, 1]
    ds = pd.date_range("2020-01-01", periods=24, freq="h")
    features = data.calendar_features(ds, "h")
    assert features.shape == (24, 4)
    np.testing.assert_allclose(features[6, 0], 1.0, atol=1e-6)  # sin(2 pi 6/24)
    assert data.calendar_features(pd.date_range("2000", periods=3, freq="YS"), "YS").shape == (3, 0)


def test_wide_long_round_trip_and_files(tmp_path):
    ds = pd.date_range("2021-01-01", periods=5, freq="D")
    wide = pd.DataFrame({"ds": ds, "a": np.arange(5.0), "b": np.arange(5.0) * 2})
    long = data.wide_to_long(wide)
    assert list(long["unique_id"].unique()) == ["a", "b"] and len(long) == 10
    pd.testing.assert_frame_equal(data.long_to_wide(long).reset_index(drop=True),
                                  wide[["a", "b"]].rename_axis(columns="unique_id"), check_names=False)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    assert data.read_frame(tmp_path / "wide.csv").equals(long)
    data.write_frame(long, tmp_path / "out.csv")
    back = data.read_frame(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(back, long)
    with pytest.raises(ValueError, match="out"):
        data.write_frame(long, tmp_path / "out.txt")
