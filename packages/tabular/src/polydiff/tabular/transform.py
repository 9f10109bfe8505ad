"""The column spec and the table transformer: a DataFrame <-> the tensors TabDDPM diffuses.

Numerical columns go through the Gaussian quantile transformation (Kotelnikov et al., 2023, sec. 4, scikit-learn's
``QuantileTransformer(output_distribution="normal")`` in the paper), written here with one change for tied values:
a value v maps to z = Phi^-1(mid-CDF(v)), mid-CDF(v) = (#{x < v} + #{x = v} / 2) / n, interpolated linearly between
at most 1000 knots. scikit-learn sends every copy of the minimum of a column to -5.2 (its clipping bound), so an
integer column whose smallest value holds 40 % of the rows (HMDA's ``chist``) becomes a spike at -5.2 with standard
deviation 3.5 — a hard target for a diffusion model that assumes unit scale. With mid-CDF knots the same column is
a set of well-separated points inside [-3.5, 3.5]. The inverse is the exact empirical quantile function for a
discrete column with few values (u = Phi(z) -> the value whose CDF interval holds u, which keeps the level
frequencies) and linear interpolation between knots otherwise. Categorical columns become class indices for the
multinomial diffusion; a categorical target becomes the conditioning label y. Columns with a single value are
kept aside and written back as they are.

Column kinds:
    "continuous"   numeric, sampled values clipped to the training range [min, max] and rounded to the largest
                   number of decimals the column shows (at most 6); a column with at most ``SNAP_LIMIT``
                   distinct values (a rounded measurement such as an unemployment rate) is inverted exactly onto
                   those values, since values between them would set synthetic rows apart at once
    "discrete"     numeric with integer values (detected from integer dtypes or given by the user): rounded, then
                   snapped to the observed values when there are at most ``SNAP_LIMIT`` of them, else clipped
    "categorical"  anything else (object, str, category, bool) or given by the user; the levels are kept with
                   their original values and order
    "constant"     one value (or all missing) in the training data

Missing values (``nan=``): "category" keeps them — NaN is one more level of a categorical column, and a numeric
column gets a 2-level missing indicator diffused with the categorical block, so samples have NaN at the learned
rate; "impute" fills them (numeric: median, categorical: most frequent level) and samples have none.
±inf is never a valid table value: it raises a ValueError naming the column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy.special import ndtr, ndtri

__all__ = ["ColumnSpec", "TableTransformer", "QuantileNormal", "NAN_MODES", "SNAP_LIMIT"]

NAN_MODES = ("category", "impute")
SNAP_LIMIT = 256
MAX_KNOTS = 1000
ATOM_SHARE = 0.005


class QuantileNormal:
    """The tie-aware Gaussian quantile transform of one numeric column (module docstring).

    ``knots``: (k,) increasing values; ``scores``: (k,) their normal scores Phi^-1(mid-CDF); ``cdf``: (k,) the
    empirical CDF at each knot (used by the exact discrete inverse when ``discrete``).
    """

    def __init__(self, knots: np.ndarray, scores: np.ndarray, cdf: np.ndarray, discrete: bool,
                 lower: np.ndarray | None = None):
        self.knots, self.scores, self.cdf, self.discrete = knots, scores, cdf, discrete
        self.lower = cdf if lower is None else lower
        # atoms: values holding at least ATOM_SHARE of the rows (a column's many zeros); the inverse maps their
        # whole CDF interval onto the value, so a spike stays a spike instead of being smeared by interpolation
        self.atoms = np.flatnonzero(self.cdf - self.lower >= ATOM_SHARE)

    @classmethod
    def fit(cls, values: np.ndarray, discrete: bool) -> QuantileNormal:
        ordered = np.sort(np.asarray(values, np.float64))
        n = ordered.size
        unique = np.unique(ordered)
        discrete = discrete and unique.size <= SNAP_LIMIT  # the exact inverse only for few distinct values
        if unique.size <= MAX_KNOTS:
            knots = unique
        else:
            knots = np.unique(np.quantile(ordered, np.linspace(0, 1, MAX_KNOTS)))
        below = np.searchsorted(ordered, knots, "left")
        upto = np.searchsorted(ordered, knots, "right")
        scores = ndtri(np.clip((below + upto) / (2.0 * n), 1e-7, 1 - 1e-7))
        return cls(knots, scores, upto / n, discrete, below / n)

    def transform(self, values: np.ndarray) -> np.ndarray:
        if self.knots.size == 1:
            return np.zeros_like(values, dtype=np.float64)
        return np.interp(values, self.knots, self.scores)

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        if self.knots.size == 1:
            return np.full(np.shape(scores), self.knots[0])
        if self.discrete:
            index = np.searchsorted(self.cdf, ndtr(scores), "left")
            return self.knots[np.clip(index, 0, self.knots.size - 1)]
        values = np.interp(scores, self.scores, self.knots)
        if self.atoms.size:
            u = ndtr(scores)
            for k in self.atoms:
                values = np.where((u >= self.lower[k]) & (u <= self.cdf[k]), self.knots[k], values)
        return values


def _python(value):
    """A JSON-friendly Python scalar for a level (numpy scalars -> Python, NaN -> None)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class ColumnSpec:
    """One column: its name, kind, original dtype (as a string) and what is needed to write it back."""

    name: str
    kind: str
    dtype: str
    levels: list = field(default_factory=list)       # categorical: the levels (None = missing), in order
    ordered: bool = False                            # categorical from an ordered pandas Categorical
    pandas_category: bool = False                    # the column was a pandas Categorical
    low: float = 0.0                                 # numeric: training min / max
    high: float = 0.0
    fill: float = 0.0                                # numeric: the median, used to fill missing values
    missing: bool = False                            # numeric with nan="category": has a missing indicator
    values: list = field(default_factory=list)       # discrete: observed values to snap to (<= SNAP_LIMIT)
    decimals: int | None = None                      # continuous: decimals shown by the data (None: > 6)
    constant: object = None                          # constant: the value

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _is_numeric(series: pd.Series) -> bool:
    return ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype)


class TableTransformer:
    """Fit on a DataFrame, then map it to (x_num, x_cat, y) arrays and back.

    Args:
        target: the target column or None. A categorical target becomes y (TabDDPM's class conditioning); a
            numeric target is an ordinary numerical column.
        categorical, discrete: explicit column lists; they win over dtype detection.
        nan: "category" or "impute" (module docstring).
    """

    def __init__(self, target: str | None = None, categorical=None, discrete=None, nan: str = "category"):
        if nan not in NAN_MODES:
            raise ValueError(f"nan: expected one of {NAN_MODES}, got {nan!r}")
        self.target, self.nan = target, nan
        self.categorical = None if categorical is None else list(categorical)
        self.discrete = None if discrete is None else list(discrete)
        self.columns: list[str] = []
        self.specs: dict[str, ColumnSpec] = {}
        self.quantiles: dict[str, QuantileNormal] = {}

    # ------------------------------------------------------------------------------------------- fit

    def fit(self, df: pd.DataFrame) -> TableTransformer:
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
        if len(df) < 1 or df.shape[1] < 1:
            raise ValueError(f"df: expected at least one row and one column, got shape {df.shape}")
        if df.columns.duplicated().any():
            raise ValueError(f"df: duplicated column names {list(df.columns[df.columns.duplicated()])}")
        for name, listed in (("target", [self.target] if self.target is not None else []),
                             ("categorical", self.categorical or []), ("discrete", self.discrete or [])):
            unknown = [c for c in listed if c not in df.columns]
            if unknown:
                raise ValueError(f"{name}: columns {unknown} are not in the DataFrame")
        both = set(self.categorical or []) & set(self.discrete or [])
        if both:
            raise ValueError(f"categorical, discrete: columns {sorted(both)} are listed in both")
        self.columns = [str(c) for c in df.columns]
        df = df.copy()
        df.columns = self.columns
        self.specs = {name: self._fit_column(df[name]) for name in self.columns}
        self.quantiles = {c: QuantileNormal.fit(self._numeric_values(df[c], self.specs[c]), discrete=True)
                          for c in self.numeric_columns}
        return self

    def _fit_column(self, series: pd.Series) -> ColumnSpec:
        name = series.name
        dtype = str(series.dtype)
        if _is_numeric(series):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise ValueError(f"df: column {name!r} contains {int(np.isinf(values).sum())} infinite values; "
                                 "replace them (e.g. with NaN) before fitting")
        user_cat = self.categorical is not None and name in self.categorical
        user_discrete = self.discrete is not None and name in self.discrete
        detected_cat = not _is_numeric(series) and not user_discrete
        if ptypes.is_datetime64_any_dtype(series.dtype) or ptypes.is_timedelta64_dtype(series.dtype):
            raise ValueError(f"df: column {name!r} has dtype {dtype}; convert dates to numbers or strings first")
        observed = series.dropna()
        has_missing = len(observed) < len(series)
        if user_cat or detected_cat or (self.categorical is not None and name == self.target
                                        and not _is_numeric(series)):
            return self._fit_categorical(series, dtype, has_missing)
        if not _is_numeric(series):
            raise ValueError(f"discrete: column {name!r} has non-numeric dtype {dtype}")
        values = observed.to_numpy(dtype=np.float64)
        if values.size == 0 or (np.unique(values).size == 1 and not (has_missing and self.nan == "category")):
            constant = _python(values[0]) if values.size else None
            return ColumnSpec(name, "constant", dtype, constant=constant)
        integer = user_discrete or (self.discrete is None and ptypes.is_integer_dtype(series.dtype))
        if user_discrete and not np.allclose(values, np.round(values)):
            raise ValueError(f"discrete: column {name!r} has non-integer values")
        spec = ColumnSpec(name, "discrete" if integer else "continuous", dtype, low=float(values.min()),
                          high=float(values.max()), fill=float(np.median(values)),
                          missing=has_missing and self.nan == "category")
        if integer:
            unique = np.unique(values)
            spec.values = unique.tolist() if unique.size <= SNAP_LIMIT else []
        else:
            spec.decimals = next((d for d in range(7) if np.allclose(values, np.round(values, d), rtol=0,
                                                                     atol=1e-9 * max(1.0, np.abs(values).max()))),
                                 None)
        return spec

    def _fit_categorical(self, series: pd.Series, dtype: str, has_missing: bool) -> ColumnSpec:
        pandas_category = isinstance(series.dtype, pd.CategoricalDtype)
        if pandas_category:
            levels = [_python(v) for v in series.cat.categories]
            ordered = bool(series.cat.ordered)
        else:
            observed = series.dropna()
            try:
                levels = sorted(observed.unique().tolist())
            except TypeError:  # mixed types: keep first-seen order
                levels = observed.unique().tolist()
            levels = [_python(v) for v in levels]
            ordered = False
        if has_missing:
            if self.nan == "category":
                levels = levels + [None]
        if not levels:
            return ColumnSpec(series.name, "constant", dtype, constant=None)
        spec = ColumnSpec(series.name, "categorical", dtype, levels=levels, ordered=ordered,
                          pandas_category=pandas_category)
        if has_missing and self.nan == "impute":
            spec.fill = float(np.bincount(self._codes(series.dropna(), spec)).argmax())
        observed = series.dropna().unique()
        if len(observed) == 1 and not (has_missing and self.nan == "category") and series.name != self.target:
            return ColumnSpec(series.name, "constant", dtype, levels=levels, ordered=ordered,
                              pandas_category=pandas_category, constant=_python(observed[0]))
        return spec

    # ------------------------------------------------------------------------------------- structure

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.columns if self.specs[c].kind in ("continuous", "discrete")]

    @property
    def categorical_columns(self) -> list[str]:
        """Categorical columns diffused by the multinomial part (the categorical target is y, not here)."""
        return [c for c in self.columns if self.specs[c].kind == "categorical" and not self.is_label(c)]

    def is_label(self, name: str) -> bool:
        return name == self.target and self.specs[name].kind == "categorical"

    @property
    def label_levels(self) -> list | None:
        """The target's levels when it is categorical (the conditioning labels), else None."""
        if self.target is not None and self.is_label(self.target):
            return self.specs[self.target].levels
        return None

    @property
    def num_classes(self) -> list[int]:
        """Class count of every multinomial column: categorical columns, then numeric missing indicators."""
        counts = [len(self.specs[c].levels) for c in self.categorical_columns]
        return counts + [2 for c in self.numeric_columns if self.specs[c].missing]

    # ------------------------------------------------------------------------------------- transform

    def _numeric_values(self, series: pd.Series, spec: ColumnSpec) -> np.ndarray:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            raise ValueError(f"df: column {spec.name!r} contains infinite values")
        return np.where(np.isnan(values), spec.fill, values)

    def _codes(self, series: pd.Series, spec: ColumnSpec) -> np.ndarray:
        lookup = {level: i for i, level in enumerate(spec.levels) if level is not None}
        missing_code = spec.levels.index(None) if None in spec.levels else None
        codes = np.empty(len(series), dtype=np.int64)
        for i, value in enumerate(series.tolist()):
            value = _python(value)
            if value is None:
                if missing_code is None:
                    codes[i] = int(spec.fill)
                    continue
                codes[i] = missing_code
            elif value in lookup:
                codes[i] = lookup[value]
            else:
                raise ValueError(f"df: column {spec.name!r} has the level {value!r}, unseen when fitting; "
                                 f"known levels: {spec.levels[:20]}{' ...' if len(spec.levels) > 20 else ''}")
        return codes

    def label_codes(self, values) -> np.ndarray:
        """Target values -> label indices; an unseen value raises ValueError listing the known levels."""
        spec = self.specs[self.target]
        return self._codes(pd.Series(list(values), dtype=object), spec)

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(x_num: (n, numeric) float32 normal scores, x_cat: (n, multinomial columns) int64, y: (n,) | None)."""
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ValueError(f"df: columns {missing} are missing")
        numeric = self.numeric_columns
        if numeric:
            x_num = np.stack([self.quantiles[c].transform(self._numeric_values(df[c], self.specs[c]))
                              for c in numeric], 1).astype(np.float32)
        else:
            x_num = np.zeros((len(df), 0), np.float32)
        blocks = [self._codes(df[c], self.specs[c]) for c in self.categorical_columns]
        blocks += [df[c].isna().to_numpy().astype(np.int64) for c in numeric if self.specs[c].missing]
        x_cat = np.stack(blocks, 1) if blocks else np.zeros((len(df), 0), np.int64)
        y = self._codes(df[self.target], self.specs[self.target]) if self.label_levels is not None else None
        return x_num, x_cat, y

    def inverse_transform(self, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray | None) -> pd.DataFrame:
        """The DataFrame of sampled arrays: original column order, dtypes, levels; bounds and integers kept."""
        n = x_num.shape[0] if x_num.ndim == 2 and x_num.shape[1] else x_cat.shape[0] if x_cat.ndim == 2 \
            else len(y)
        out: dict[str, pd.Series] = {}
        numeric = self.numeric_columns
        indicator_at = len(self.categorical_columns)
        for j, name in enumerate(numeric):
            spec = self.specs[name]
            column = np.clip(self.quantiles[name].inverse(np.asarray(x_num[:, j], np.float64)), spec.low, spec.high)
            if spec.kind == "discrete":
                column = np.round(column)
                if spec.values:
                    grid = np.asarray(spec.values)
                    right = np.clip(np.searchsorted(grid, column), 1, grid.size - 1) if grid.size > 1 else 0
                    if grid.size > 1:
                        left = right - 1
                        column = np.where(column - grid[left] <= grid[right] - column, grid[left], grid[right])
                    else:
                        column = np.full_like(column, grid[0])
            elif spec.decimals is not None:
                column = np.round(column, spec.decimals)
            if spec.missing:
                column = np.where(x_cat[:, indicator_at] == 1, np.nan, column)
                indicator_at += 1
            out[name] = self._numeric_series(column, spec)
        for j, name in enumerate(self.categorical_columns):
            out[name] = self._categorical_series(x_cat[:, j], self.specs[name])
        if self.label_levels is not None:
            out[self.target] = self._categorical_series(np.asarray(y), self.specs[self.target])
        for name in self.columns:
            spec = self.specs[name]
            if spec.kind == "constant":
                out[name] = self._constant_series(spec, n)
        return pd.DataFrame({name: out[name].reset_index(drop=True) for name in self.columns})

    @staticmethod
    def _numeric_series(column: np.ndarray, spec: ColumnSpec) -> pd.Series:
        series = pd.Series(column, name=spec.name)
        try:
            if np.isnan(column).any() and spec.dtype.startswith(("int", "uint")):
                return series.astype("Int64" if spec.dtype.startswith("int") else "UInt64")
            return series.astype(spec.dtype)
        except (TypeError, ValueError):
            return series

    @staticmethod
    def _categorical_series(codes: np.ndarray, spec: ColumnSpec) -> pd.Series:
        levels = np.empty(len(spec.levels), dtype=object)
        levels[:] = [np.nan if level is None else level for level in spec.levels]
        values = levels[np.asarray(codes, dtype=np.int64)]
        if spec.pandas_category:
            categories = [level for level in spec.levels if level is not None]
            return pd.Series(pd.Categorical(values, categories=categories, ordered=spec.ordered), name=spec.name)
        series = pd.Series(values, name=spec.name, dtype=object)
        if spec.dtype != "object":
            try:
                series = series.astype(spec.dtype)
            except (TypeError, ValueError):
                pass
        return series

    @staticmethod
    def _constant_series(spec: ColumnSpec, n: int) -> pd.Series:
        value = np.nan if spec.constant is None else spec.constant
        if spec.pandas_category:
            categories = [level for level in spec.levels if level is not None]
            return pd.Series(pd.Categorical([value] * n, categories=categories, ordered=spec.ordered),
                             name=spec.name)
        series = pd.Series([value] * n, name=spec.name, dtype=object if isinstance(value, str) else None)
        try:
            return series.astype(spec.dtype)
        except (TypeError, ValueError):
            return series

    # ---------------------------------------------------------------------------------- persistence

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON config, arrays) to save; ``from_state`` rebuilds the transformer."""
        config = {"target": self.target, "nan": self.nan, "columns": self.columns,
                  "categorical": self.categorical, "discrete": self.discrete,
                  "specs": [self.specs[c].to_dict() for c in self.columns]}
        arrays = {}
        for j, name in enumerate(self.numeric_columns):
            quantile = self.quantiles[name]
            arrays[f"knots.{j}"], arrays[f"scores.{j}"] = quantile.knots, quantile.scores
            arrays[f"cdf.{j}"], arrays[f"lower.{j}"] = quantile.cdf, quantile.lower
            config["specs"][self.columns.index(name)]["quantile_discrete"] = quantile.discrete
        return config, arrays

    @classmethod
    def from_state(cls, config: dict, arrays: dict[str, np.ndarray]) -> TableTransformer:
        self = cls(config["target"], config["categorical"], config["discrete"], config["nan"])
        self.columns = list(config["columns"])
        specs = [dict(s) for s in config["specs"]]
        discrete = {s["name"]: s.pop("quantile_discrete", False) for s in specs}
        self.specs = {s["name"]: ColumnSpec(**s) for s in specs}
        for j, name in enumerate(self.numeric_columns):
            self.quantiles[name] = QuantileNormal(*(np.asarray(arrays[f"{k}.{j}"], np.float64)
                                                    for k in ("knots", "scores", "cdf")), discrete[name],
                                                  np.asarray(arrays[f"lower.{j}"], np.float64))
        return self
