"""Every bad input raises ValueError naming the argument or column and what was expected."""

import numpy as np
import pandas as pd
import pytest

from polydiff.timeseries import DiffusionForecaster, load_dataset
from polydiff.timeseries.data import check_frame, read_frame

TINY = dict(train_steps=2, dim=8, depth=1, heads=2, num_samples=2, steps=2)


def frame(n=30, **columns):
    ds = pd.date_range("2000-01-01", periods=n, freq="MS")
    base = pd.DataFrame({"unique_id": "a", "ds": ds, "y": np.sin(np.arange(n, dtype=float))})
    return base.assign(**columns)


def drop(column):
    return frame().drop(columns=column)


def duplicated():
    f = frame()
    f.loc[3, "ds"] = f.loc[2, "ds"]
    return f


def unsorted():
    f = frame()
    return f.iloc[[1, 0, *range(2, len(f))]].reset_index(drop=True)


def irregular():
    f = frame()
    f.loc[5:, "ds"] = f.loc[5:, "ds"] + pd.Timedelta(days=3)
    return f


def with_nan():
    f = frame()
    f.loc[4, "y"] = np.nan
    return f


FIT_CASES = [
    (lambda: drop("y"), "'y'"),
    (lambda: drop("ds"), "'ds'"),
    (lambda: drop("unique_id"), "'unique_id'"),
    (duplicated, "duplicate"),
    (unsorted, "not sorted"),
    (irregular, "not regular"),
    (with_nan, "'y' has 1 NaN"),
    (lambda: frame(n=10), "fewer than context_length"),
    (lambda: frame(y=["a"] * 30), "'y' must be numeric"),
    (lambda: frame(x=[np.nan] * 30), "exogenous column 'x'"),
    (lambda: [1, 2, 3], "DataFrame"),
]


@pytest.mark.parametrize("make, message", FIT_CASES)
def test_fit_rejects(make, message):
    with pytest.raises(ValueError, match=message) as info:
        DiffusionForecaster(h=3, freq="MS", context_length=12, **TINY).fit(make())
    assert str(info.value).startswith("df")


CONFIG_CASES = [
    (dict(h=0), "h"), (dict(h=-2), "h"), (dict(h=2.5), "h"), (dict(freq="fortnightly"), "freq"),
    (dict(freq=3), "freq"), (dict(model="arima"), "model"), (dict(context_length=0), "context_length"),
    (dict(num_samples=0), "num_samples"), (dict(solver="magic"), "solver"), (dict(steps=0), "steps"),
    (dict(steps=100), "steps"), (dict(scaling="minmax"), "scaling"), (dict(lr=-1.0), "lr"),
    (dict(dim=30, heads=4), "heads"), (dict(guidance="cfg"), "guidance"), (dict(zeta=float("nan")), "zeta"),
    (dict(seed=-1), "seed"), (dict(alias=""), "alias"), (dict(train_steps=0), "train_steps"),
    (dict(transform="log"), "transform"), (dict(season=0), "season"), (dict(log="yes"), "log"),
    (dict(log=1), "log"),
]


@pytest.mark.parametrize("options, name", CONFIG_CASES)
def test_config_rejects(options, name):
    options = {"h": 3, "freq": "MS", **options}
    with pytest.raises(ValueError, match=f"^{name}"):
        DiffusionForecaster(**options)


@pytest.fixture(scope="module")
def fitted():
    return DiffusionForecaster(h=3, freq="MS", context_length=6, **TINY).fit(frame())


@pytest.mark.parametrize("call, name", [
    (lambda fc: fc.predict(h=0), "h"),
    (lambda fc: fc.predict(h=4), "h"),
    (lambda fc: fc.predict(level=[120]), "level"),
    (lambda fc: fc.predict(level=["80"]), "level"),
    (lambda fc: fc.predict_samples(h=-1), "h"),
    (lambda fc: fc.cross_validation(frame(), n_windows=0), "n_windows"),
    (lambda fc: fc.cross_validation(frame(), h=5), "h"),
    (lambda fc: fc.cross_validation(frame(), n_windows=10), "df"),
    (lambda fc: fc.cross_validation(with_nan()), "df"),
    (lambda fc: fc.impute(frame(n=5)), "df"),
])
def test_calls_reject(fitted, call, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        call(fitted)


def test_unfitted_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="^fit"):
        DiffusionForecaster(h=3, freq="MS").predict()
    with pytest.raises(ValueError, match="^path"):
        read_frame(tmp_path / "missing.csv")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(ValueError, match="^path"):
        read_frame(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="^name"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="^directory"):
        DiffusionForecaster.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="^freq"):
        check_frame(frame(), "every-tuesday")


def test_impute_allows_nan_but_not_all_missing():
    f = with_nan()
    fc = DiffusionForecaster(h=3, freq="MS", context_length=6, **TINY)
    assert fc.impute(f)["y"].notna().all()
    f.loc[0:9, "y"] = np.nan
    with pytest.raises(ValueError, match="consecutive NaN"):
        fc.impute(f)
