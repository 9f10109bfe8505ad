"""One column of a table: its spec (:class:`ColumnSpec`), how its values are read (levels, labels, exact
integers), saved (JSON) and written back after sampling (the column's dtype, bounds, decimals and levels).

Values are kept exactly as they were: column names of any savable type (str, int, float, bool, None, tuples of
these: a MultiIndex) come back unchanged; in an object column ``True`` and ``1`` stay two levels; integer columns
beyond 2**53 (ids) are diffused relative to their minimum (``offset``), so every value whose distance to the
minimum is below 2**53 comes back exactly. What the saved JSON spec cannot hold (dates, Decimals, bytes, lists in
a cell...) is refused when fitting, naming the column. A column comes back in the dtype it was fitted with, on
pandas 2 and 3 alike (:func:`restore_dtype`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from .quantile import QuantileNormal

__all__ = ["ColumnSpec", "encode_value", "decode_value", "restore_dtype", "numeric_values", "numeric_series",
           "categorical_series", "constant_series", "EXACT_FLOAT_INTEGER"]

EXACT_FLOAT_INTEGER = 2**53  # beyond this, float64 no longer holds every integer


def _python(value):
    """A plain Python value for a level (numpy scalars -> Python, NaN -> None, tuples element-wise)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return _python(value.item())
    if isinstance(value, tuple):
        return tuple(_python(v) for v in value)
    return value


def _level_key(value):
    """The identity of a level: its value, except that a bool is never equal to the number 0 or 1 (Python and
    pandas merge ``True`` and ``1``, which would fold two levels of an object column into one)."""
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, tuple):
        return (tuple, tuple(_level_key(v) for v in value))
    return (None, value)


def _savable(value) -> bool:
    """Whether ``encode_value`` can write ``value`` to JSON and ``decode_value`` give it back unchanged."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, tuple) and all(_savable(v) for v in value)


def encode_value(value):
    """A level, constant or column name as JSON: tuples become ``{"__tuple__": [...]}`` and non-finite floats
    ``{"__float__": "inf"}`` (JSON has neither); everything else is a JSON scalar."""
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(v) for v in value]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    return value


def decode_value(value):
    """The inverse of :func:`encode_value`."""
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(decode_value(v) for v in value["__tuple__"])
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        raise ValueError(f"unknown encoded value {value!r}")
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def _unsavable(name, value) -> ValueError:
    return ValueError(f"df: column {name!r} holds a {type(value).__module__}.{type(value).__qualname__} value "
                      f"({value!r}), which a saved model cannot hold; convert the column to strings or numbers "
                      "first (allowed: str, int, float, bool, None and tuples of these)")


def _string_dtype(dtype: str):
    """The pandas dtype a recorded string dtype name stands for, on the pandas that runs now.

    ``"str"`` is pandas 3's default string dtype (``StringDtype(na_value=nan)``; pandas 2.3 has it too, as an
    option). pandas 2 reads the name ``"str"`` as Python's ``str``, and ``astype("str")`` there writes a missing
    value as the string ``"nan"``, so the dtype is built here instead; a pandas without it gets ``object``, the
    dtype it gives strings itself. ``"string"`` (``StringDtype()``, missing = ``pd.NA``) means the same on every
    pandas. None for any other name."""
    if dtype == "str":
        try:
            return pd.StringDtype(na_value=np.nan)
        except TypeError:  # pandas < 2.3: no NaN-valued string dtype
            return object
    if dtype.startswith("string"):
        return pd.api.types.pandas_dtype(dtype)
    return None


def restore_dtype(series: pd.Series, dtype: str) -> pd.Series:
    """``series`` (values written back from levels or a constant, missing = NaN) in the column's recorded dtype
    ``dtype`` (``str(series.dtype)`` when fitting, possibly on another pandas): an object column stays object, a
    string dtype keeps its missing values missing (never the text "nan") on pandas 2 and 3, any other dtype goes
    through ``astype``; a value that dtype cannot hold (a missing value in an int64 column) keeps ``series``."""
    if dtype == "object":
        return series
    try:
        target = _string_dtype(dtype)
        return series.astype(dtype if target is None else target)
    except (TypeError, ValueError):
        return series


@dataclass


class ColumnSpec:
    """One column: its label, kind, original dtype (as a string) and what is needed to write it back."""

    name: object                                     # the column label as given (str, int, None, tuple...)
    kind: str
    dtype: str
    levels: list = field(default_factory=list)       # categorical: the levels (None = missing), in order
    ordered: bool = False                            # categorical from an ordered pandas Categorical
    pandas_category: bool = False                    # the column was a pandas Categorical
    low: float = 0.0                                 # numeric: training min / max (minus ``offset``)
    high: float = 0.0
    fill: float = 0.0                                # numeric: the median, used to fill missing values;
                                                     # categorical with nan="impute": the most frequent code
    missing: bool = False                            # numeric with nan="category": has a missing indicator
    values: list = field(default_factory=list)       # discrete: observed values to snap to (<= SNAP_LIMIT)
    decimals: int | None = None                      # continuous: decimals shown by the data (None: > 6)
    constant: object = None                          # constant: the value
    offset: int = 0                                  # integer column beyond 2**53: values are diffused as
                                                     # value - offset (the exact minimum), added back exactly

    def to_dict(self) -> dict:
        """The spec as JSON-ready values (:func:`encode_value` for the label, levels and constant)."""
        out = dict(self.__dict__)
        out["name"], out["constant"] = encode_value(self.name), encode_value(self.constant)
        out["levels"] = [encode_value(level) for level in self.levels]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ColumnSpec:
        data = dict(data)
        data["name"], data["constant"] = decode_value(data["name"]), decode_value(data.get("constant"))
        data["levels"] = [decode_value(level) for level in data.get("levels", [])]
        return cls(**data)


def _is_numeric(series: pd.Series) -> bool:
    return ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype)


def _label(value):
    """A column label as a plain Python value (numpy scalars -> Python, tuples element-wise; NaN kept)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_label(v) for v in value)
    return value


def _has_column(columns: list, name) -> bool:
    """Whether ``name`` is one of ``columns`` (compared as levels are: a bool never equals 0 or 1)."""
    try:
        key = _level_key(_label(name))
        return any(key == _level_key(c) for c in columns)
    except (TypeError, ValueError):  # an unhashable or array-like name
        return False


def _integer_offset(series: pd.Series) -> int:
    """The exact minimum of an integer column whose values reach beyond 2**53, else 0 (module docstring)."""
    if not ptypes.is_integer_dtype(series.dtype):
        return 0
    observed = series.dropna()
    if not len(observed):
        return 0
    low, high = int(observed.min()), int(observed.max())
    return low if max(abs(low), abs(high)) > EXACT_FLOAT_INTEGER else 0


def _float_values(series: pd.Series, offset: int) -> np.ndarray:
    """(n,) float64 values (NaN for missing), minus ``offset`` computed on exact integers."""
    if not offset:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    exact = series.to_numpy(dtype=object, na_value=None)
    integer = ptypes.is_integer_dtype(series.dtype)
    return np.array([np.nan if v is None else float(int(v) - offset) if integer else float(v) - offset
                     for v in exact], dtype=np.float64)


def numeric_values(scores: np.ndarray, quantile: QuantileNormal, spec: ColumnSpec) -> np.ndarray:
    """(n,) sampled normal scores -> float64 values of a continuous or discrete column: the quantile inverse,
    clipped to the training range; a discrete column rounded and snapped to its observed values, a continuous one
    rounded to the decimals the data shows."""
    column = np.clip(quantile.inverse(np.asarray(scores, np.float64)), spec.low, spec.high)
    if spec.kind == "discrete":
        column = np.round(column)
        if spec.values:
            grid = np.asarray(spec.values)
            if grid.size > 1:
                right = np.clip(np.searchsorted(grid, column), 1, grid.size - 1)
                left = right - 1
                column = np.where(column - grid[left] <= grid[right] - column, grid[left], grid[right])
            else:
                column = np.full_like(column, grid[0])
    elif spec.decimals is not None:
        column = np.round(column, spec.decimals)
    return column


def numeric_series(column: np.ndarray, spec: ColumnSpec) -> pd.Series:
    """(n,) float64 values (NaN = missing) as the column's Series: its dtype, or the nullable integer dtype where an
    integer column has missing values; integers beyond 2**53 exact through ``spec.offset``."""
    if spec.offset:  # exact integers: value = offset + the (exactly held) difference
        missing = np.isnan(column)
        unsigned = spec.dtype.lower().startswith("uint")
        kind = np.uint64 if unsigned else np.int64
        values = np.where(missing, 0, column).astype(kind) + kind(spec.offset)
        array = pd.arrays.IntegerArray(values, missing)
        try:
            return pd.Series(array, name=spec.name).astype(spec.dtype)
        except (TypeError, ValueError):  # missing values in a numpy integer column: the nullable dtype
            return pd.Series(array, name=spec.name)
    series = pd.Series(column, name=spec.name)
    try:
        if np.isnan(column).any() and spec.dtype.startswith(("int", "uint")):
            return series.astype("Int64" if spec.dtype.startswith("int") else "UInt64")
        return series.astype(spec.dtype)
    except (TypeError, ValueError):
        return series


def _level_array(levels: list) -> np.ndarray:
    array = np.empty(len(levels), dtype=object)
    for i, level in enumerate(levels):  # element-wise: numpy would unpack tuple levels
        array[i] = np.nan if level is None else level
    return array


def categorical_series(codes: np.ndarray, spec: ColumnSpec) -> pd.Series:
    """(n,) level indices as the column's Series: its levels (None = missing) in its dtype, or a pandas
    Categorical with the fitted categories and order."""
    values = _level_array(spec.levels)[np.asarray(codes, dtype=np.int64)]
    if spec.pandas_category:
        categories = [level for level in spec.levels if level is not None]
        return pd.Series(pd.Categorical(values, categories=categories, ordered=spec.ordered), name=spec.name)
    return restore_dtype(pd.Series(values, name=spec.name, dtype=object), spec.dtype)


def constant_series(spec: ColumnSpec, n: int) -> pd.Series:
    """A constant (or all-missing) column of ``n`` rows, written back as it was."""
    value = np.nan if spec.constant is None else spec.constant
    if spec.pandas_category:
        categories = [level for level in spec.levels if level is not None]
        return pd.Series(pd.Categorical(_level_array([spec.constant] * n), categories=categories,
                                        ordered=spec.ordered), name=spec.name)
    if spec.dtype == "object" or isinstance(value, (str, tuple)):
        series = pd.Series(_level_array([spec.constant] * n), name=spec.name, dtype=object)
    else:
        series = pd.Series([value] * n, name=spec.name)
    return restore_dtype(series, spec.dtype)
