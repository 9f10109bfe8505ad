"""Bundled datasets, frame checks and file I/O for polydiff-timeseries (nothing is downloaded at run time).

Every dataset is a long frame in statsforecast's layout: ``unique_id`` (str), ``ds`` (datetime64), ``y`` (float),
sorted by (unique_id, ds), one regular frequency per frame:

    co2        statsmodels' Mauna Loa CO2, weekly 1958-2001 averaged to months (MS), gaps linearly filled; 526 points
    sunspots   statsmodels' yearly sunspot numbers 1700-2008 (YS); 309 points
    airline    statsforecast's AirPassengers, monthly 1949-1960 (MS); 144 points
    taylor     pmdarima's half-hourly electricity demand in England and Wales, 12 weeks from 2000-06-05 (30min); 4,032
    ausbeer    pmdarima's quarterly Australian beer production from 1956 Q1 (QS); 211 points
    wineind    pmdarima's monthly Australian wine sales from 1980-01 (MS); 176 points
    macro      statsmodels' US macro data, quarterly 1959-2009 (QS): five log real aggregates as five series
               (realgdp, realcons, realinv, realgovt, realdpi), the multivariate set for CRPS-sum; 203 points each

``make_sines`` draws the synthetic sine set of Diffusion-TS (Yuan & Qiao, 2024, sec. 5.1) for generation.
The raw sources live in the ``[bench]`` extra (statsmodels, statsforecast, pmdarima); a missing one fails in one
line naming the extra (``polydiff.core.optional``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DATASETS", "DatasetInfo", "load_dataset", "make_sines", "check_frame", "season_length",
           "calendar_seasons", "prefers_log", "calendar_features", "read_frame", "write_frame", "wide_to_long", "long_to_wide", "check_freq"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the bench needs about a dataset: its frequency, forecast horizon and seasonal periods."""

    freq: str
    h: int
    seasons: tuple[int, ...]
    source: str


DATASETS: dict[str, DatasetInfo] = {
    "co2": DatasetInfo("MS", 12, (12,), "statsmodels.datasets.co2 (weekly -> monthly mean, gaps interpolated)"),
    "airline": DatasetInfo("MS", 12, (12,), "statsforecast.utils.AirPassengersDF"),
    "sunspots": DatasetInfo("YS", 11, (11,), "statsmodels.datasets.sunspots"),
    "taylor": DatasetInfo("30min", 48, (48, 336), "pmdarima.datasets.load_taylor"),
    "ausbeer": DatasetInfo("QS", 8, (4,), "pmdarima.datasets.load_ausbeer"),
    "wineind": DatasetInfo("MS", 12, (12,), "pmdarima.datasets.load_wineind"),
    "macro": DatasetInfo("QS", 8, (4,), "statsmodels.datasets.macrodata (log of five real aggregates)"),
}

def _need(module: str):
    from polydiff.core.optional import require

    return require(module, extra="polydiff-timeseries[bench]", purpose="the bundled datasets")


def _frame(uid: str, ds, y) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": uid, "ds": pd.DatetimeIndex(ds), "y": np.asarray(y, dtype=np.float64)})


def load_dataset(name: str) -> pd.DataFrame:
    """The long frame (unique_id, ds, y) of a bundled dataset; see the module docstring for the list."""
    if name not in DATASETS:
        raise ValueError(f"name: unknown dataset {name!r}; choices: {sorted(DATASETS)}")
    if name == "co2":
        weekly = _need("statsmodels.datasets.co2").load_pandas().data["co2"]
        monthly = weekly.resample("MS").mean().interpolate("linear")
        return _frame("co2", monthly.index, monthly.values)
    if name == "sunspots":
        data = _need("statsmodels.datasets.sunspots").load_pandas().data
        ds = pd.to_datetime(data["YEAR"].astype(int).astype(str), format="%Y")
        return _frame("sunspots", ds, data["SUNACTIVITY"])
    if name == "airline":
        data = _need("statsforecast.utils").AirPassengersDF
        ds = pd.date_range("1949-01-01", periods=len(data), freq="MS")
        return _frame("airline", ds, data["y"])
    if name == "macro":
        data = _need("statsmodels.datasets.macrodata").load_pandas().data
        ds = pd.date_range("1959-01-01", periods=len(data), freq="QS")
        columns = ("realgdp", "realcons", "realinv", "realgovt", "realdpi")
        return pd.concat([_frame(c, ds, np.log(data[c].to_numpy())) for c in columns], ignore_index=True)
    datasets = _need("pmdarima.datasets")
    y = np.asarray(getattr(datasets, f"load_{name}")(as_series=False), dtype=np.float64)
    y = y[:np.flatnonzero(np.isfinite(y))[-1] + 1]  # ausbeer ends on a NaN quarter
    start = {"taylor": "2000-06-05", "ausbeer": "1956-01-01", "wineind": "1980-01-01"}[name]
    return _frame(name, pd.date_range(start, periods=len(y), freq=DATASETS[name].freq), y)


def make_sines(num_samples: int = 1000, length: int = 24, channels: int = 5, seed: int = 0) -> np.ndarray:
    """Diffusion-TS's sines: x[n, l, c] = sin(2 pi f_nc l + phi_nc), f ~ U(0, 0.1), phi ~ U(0, 2 pi), rescaled to
    [0, 1] as in the paper's data pipeline. Returns (num_samples, length, channels) float32."""
    for value, name in ((num_samples, "num_samples"), (length, "length"), (channels, "channels")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0, 0.1, (num_samples, 1, channels))
    phase = rng.uniform(0, 2 * np.pi, (num_samples, 1, channels))
    steps = np.arange(length, dtype=np.float64)[None, :, None]
    return ((np.sin(2 * np.pi * freq * steps + phase) + 1) / 2).astype(np.float32)


# ------------------------------------------------------------------------------------------------ frequencies


def check_freq(freq) -> pd.DateOffset:
    """The pandas offset of ``freq`` ("h", "30min", "D", "W", "MS", "QS", "YS", ...); ValueError naming freq."""
    if not isinstance(freq, str) or not freq:
        raise ValueError(f"freq: expected a pandas frequency string such as 'h', 'D', 'MS', got {freq!r}")
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as error:
        raise ValueError(f"freq: unknown frequency {freq!r} (expected a pandas alias such as 'h', '30min', 'D', "
                         f"'W', 'MS', 'QS', 'YS')") from error
    return offset


def _kind(offset: pd.DateOffset) -> str:
    name = offset.name.split("-")[0].upper()
    if name in ("MS", "ME", "M", "BMS", "BME", "SMS", "SME"):
        return "month"
    if name in ("QS", "QE", "Q", "BQS", "BQE"):
        return "quarter"
    if name in ("YS", "YE", "Y", "AS", "A", "BYS", "BYE"):
        return "year"
    if name == "W":
        return "week"
    if name in ("D", "B", "C"):
        return "day"
    return "subdaily"


def season_length(freq) -> int:
    """The main seasonal period of a frequency: 24 h per day for hourly, 48 for 30min, 7 for daily, 52 for
    weekly, 12 for monthly, 4 for quarterly, 1 for yearly (sub-daily: periods per day)."""
    offset = check_freq(freq)
    kind = _kind(offset)
    if kind == "subdaily":
        nanos = pd.Timedelta(offset).value
        return max(1, int(round(86_400e9 / nanos)))
    return {"day": 7, "week": 52, "month": 12, "quarter": 4, "year": 1}[kind]


def calendar_seasons(freq) -> tuple[int, ...]:
    """Every calendar period of ``freq`` that calendar_features encodes, shortest first: (per day, per week) for
    sub-daily frequencies (48 and 336 for 30min, 24 and 168 for hourly), else (season_length(freq),)."""
    main = season_length(freq)
    return (main, 7 * main) if _kind(check_freq(freq)) == "subdaily" else (main,)


def prefers_log(y, season: int, margin: float = 0.5) -> bool:
    """Whether a series should be modelled on the log scale: Guerrero's (1993) choice between Box-Cox lambda 1 (as
    is) and 0 (log) with a margin. The series is cut into consecutive blocks of ``season`` steps (2 when the season
    is 1), each with its mean m_k and standard deviation s_k; the log is chosen when every value is positive, there
    are at least 4 blocks and the coefficient of variation of s_k / m_k is at most ``margin`` times that of s_k —
    the spread grows with the level (multiplicative seasonality, e.g. airline: .15 against .53). The margin keeps
    a series whose spread barely changes with its level on its own scale (co2: .077 against .086)."""
    y = np.asarray(y, np.float64)
    y = y[np.isfinite(y)]
    block = max(2, int(season))
    count = len(y) // block
    if count < 4 or not (y > 0).all():
        return False
    blocks = y[len(y) - count * block:].reshape(count, block)
    mean, spread = blocks.mean(1), blocks.std(1, ddof=1)
    if not (spread > 0).all():
        return False
    variation = lambda a: a.std(ddof=1) / a.mean()  # noqa: E731
    return bool(variation(spread / mean) <= margin * variation(spread))


def calendar_features(ds, freq) -> np.ndarray:
    """Calendar covariates for timestamps ``ds``: sin and cos of the phase of each calendar cycle finer than a
    year that ``freq`` resolves (sub-daily: time of day and day of week; daily: day of week and of year; weekly:
    week of year; monthly: month; quarterly: quarter; yearly: none). Returns (len(ds), 2 * cycles) float32."""
    index = pd.DatetimeIndex(ds)
    kind = _kind(check_freq(freq))
    phases = []
    if kind == "subdaily":
        phases += [(index.hour + index.minute / 60) / 24, index.dayofweek / 7]
    elif kind == "day":
        phases += [index.dayofweek / 7, (index.dayofyear - 1) / 365.25]
    elif kind == "week":
        phases += [(index.isocalendar().week.to_numpy() - 1) / 52.18]
    elif kind == "month":
        phases += [(index.month - 1) / 12]
    elif kind == "quarter":
        phases += [(index.quarter - 1) / 4]
    if not phases:
        return np.zeros((len(index), 0), np.float32)
    angle = 2 * np.pi * np.stack([np.asarray(p, np.float64) for p in phases], 1)
    return np.concatenate([np.sin(angle), np.cos(angle)], 1).astype(np.float32)


# ------------------------------------------------------------------------------------------------ frame checks


def check_frame(df, freq, *, allow_nan: bool = False, exog: tuple[str, ...] | None = None,
                name: str = "df") -> pd.DataFrame:
    """Validate a long frame and return a clean copy sorted by (unique_id, ds) with ``unique_id`` as str.

    Raises ValueError naming the column or argument for: a missing ``unique_id`` / ``ds`` / ``y`` column, a
    ``ds`` that is not datetime-like, duplicate or unsorted timestamps within a series, timestamps off the
    regular grid of ``freq``, NaN in ``y`` (unless ``allow_nan``), a non-numeric or infinite ``y`` and NaN in
    an exogenous column.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame in long format (unique_id, ds, y), got "
                         f"{type(df).__name__}")
    offset = check_freq(freq)
    for column in ("unique_id", "ds", "y"):
        if column not in df.columns:
            raise ValueError(f"{name}: missing column {column!r} (expected unique_id, ds, y; columns: "
                             f"{list(df.columns)}); a wide frame converts with wide_to_long")
    if len(df) == 0:
        raise ValueError(f"{name}: the frame has no rows")
    frame = df.copy()
    frame["unique_id"] = frame["unique_id"].astype(str)
    try:
        frame["ds"] = pd.to_datetime(frame["ds"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name}: column 'ds' must hold timestamps ({error})") from error
    if not pd.api.types.is_numeric_dtype(frame["y"]):
        raise ValueError(f"{name}: column 'y' must be numeric, got dtype {frame['y'].dtype}")
    frame["y"] = frame["y"].astype(np.float64)
    if np.isinf(frame["y"].to_numpy()).any():
        raise ValueError(f"{name}: column 'y' contains inf")
    if not allow_nan and frame["y"].isna().any():
        uid = frame.loc[frame["y"].isna(), "unique_id"].iloc[0]
        raise ValueError(f"{name}: column 'y' has {int(frame['y'].isna().sum())} NaN values (series {uid!r}); "
                         "forecasting needs complete history: fill them with impute() first")
    for column in exog or ():
        if column not in frame.columns:
            raise ValueError(f"{name}: missing exogenous column {column!r}")
        if not pd.api.types.is_numeric_dtype(frame[column]) or frame[column].isna().any():
            raise ValueError(f"{name}: exogenous column {column!r} must be numeric without NaN")
    if frame["ds"].isna().any():
        raise ValueError(f"{name}: column 'ds' contains missing timestamps")
    for uid, group in frame.groupby("unique_id", sort=False):
        ds = pd.DatetimeIndex(group["ds"])
        if ds.has_duplicates:
            raise ValueError(f"{name}: column 'ds' has duplicate timestamps in series {uid!r} "
                             f"(first: {ds[ds.duplicated()][0]})")
        if not ds.is_monotonic_increasing:
            raise ValueError(f"{name}: column 'ds' is not sorted in series {uid!r}; sort by (unique_id, ds)")
        expected = pd.date_range(ds[0], periods=len(ds), freq=offset)
        if len(ds) > 1 and not ds.equals(expected):
            bad = ds[np.argmax(ds != expected)]
            raise ValueError(f"{name}: column 'ds' is not regular at freq={freq!r} in series {uid!r} (first "
                             f"timestamp off the grid: {bad}); give the series' frequency or fill the gaps "
                             "with NaN rows")
    return frame.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ files


def wide_to_long(wide: pd.DataFrame, ds: str = "ds") -> pd.DataFrame:
    """A wide frame (one timestamp column ``ds`` or a datetime index, one column per series) to the long frame
    (unique_id, ds, y)."""
    if not isinstance(wide, pd.DataFrame):
        raise ValueError(f"wide: expected a DataFrame, got {type(wide).__name__}")
    frame = wide.copy()
    if ds not in frame.columns:
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ValueError(f"ds: the wide frame has no column {ds!r} and no datetime index")
        frame = frame.rename_axis(ds).reset_index()
    values = [c for c in frame.columns if c != ds]
    if not values:
        raise ValueError("wide: no series columns besides the timestamps")
    long = frame.melt(id_vars=[ds], value_vars=values, var_name="unique_id", value_name="y")
    long = long.rename(columns={ds: "ds"})[["unique_id", "ds", "y"]]
    long["unique_id"] = long["unique_id"].astype(str)
    return long.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def long_to_wide(long: pd.DataFrame, value: str = "y") -> pd.DataFrame:
    """The inverse of :func:`wide_to_long`: one column per unique_id, indexed by ds."""
    return long.pivot(index="ds", columns="unique_id", values=value)


def read_frame(path) -> pd.DataFrame:
    """Read a CSV or parquet file as a long frame; a frame without ``unique_id``/``y`` is taken as wide (a ``ds``
    column plus one column per series)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"path: {path.name} is neither .csv nor .parquet")
    if not path.is_file():
        raise ValueError(f"path: {path} does not exist")
    if suffix == ".parquet":
        from polydiff.core.optional import require

        require("pyarrow", extra="polydiff-timeseries[bench]", purpose="parquet files", install="pyarrow")
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    if "ds" not in frame.columns:
        raise ValueError(f"path: {path.name} has no 'ds' column (columns: {list(frame.columns)})")
    if "y" in frame.columns and "unique_id" not in frame.columns:
        frame.insert(0, "unique_id", path.stem)
    if "unique_id" not in frame.columns:
        frame = wide_to_long(frame)
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame


def write_frame(frame: pd.DataFrame, path) -> Path:
    """Write a frame to .csv, .parquet or .json (records) by the file's extension, atomically."""
    import os

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".json"):
        raise ValueError(f"out: unsupported extension {suffix or '(none)'!r}; use .csv, .parquet or .json")
    if suffix == ".parquet":
        from polydiff.core.optional import require

        require("pyarrow", extra="polydiff-timeseries[bench]", purpose="parquet files", install="pyarrow")
    tmp = path.with_name(f".{path.name}.tmp")
    if suffix == ".csv":
        frame.to_csv(tmp, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_json(tmp, orient="records", date_format="iso", indent=1)
    os.replace(tmp, path)
    return path
