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

Values are kept exactly as they were: column names of any savable type (str, int, float, bool, None, tuples of
these: a MultiIndex) come back unchanged; in an object column ``True`` and ``1`` stay two levels; integer columns
beyond 2**53 (ids) are diffused relative to their minimum (``offset``), so every value whose distance to the
minimum is below 2**53 comes back exactly. What the saved JSON spec cannot hold (dates, Decimals, bytes, lists in
a cell...) is refused when fitting, naming the column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy.special import ndtr, ndtri

__all__ = ["ColumnSpec", "TableTransformer", "QuantileNormal", "NAN_MODES", "SNAP_LIMIT", "encode_value",
           "decode_value", "restore_dtype"]

NAN_MODES = ("category", "impute")
SNAP_LIMIT = 256
MAX_KNOTS = 1000
ATOM_SHARE = 0.005
EXACT_FLOAT_INTEGER = 2**53  # beyond this, float64 no longer holds every integer


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


def _column_list(name: str, columns) -> list | None:
    """``categorical`` / ``discrete``: None or a list of column names (a lone string is refused, not split)."""
    if columns is None:
        return None
    if isinstance(columns, (str, bytes)) or not isinstance(columns, (list, tuple, set, frozenset, pd.Index,
                                                                      np.ndarray)):
        raise ValueError(f"{name}: expected a list of column names, got {columns!r}"
                         + (f"; write [{columns!r}] for one column" if isinstance(columns, (str, bytes)) else ""))
    return list(columns)


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


class TableTransformer:
    """Fit on a DataFrame, then map it to (x_num, x_cat, y) arrays and back.

    Args:
        target: the target column or None. A categorical target becomes y (TabDDPM's class conditioning) when
            ``target_as_label``; otherwise, and for a numeric target, it is an ordinary column.
        categorical, discrete: explicit lists of column names; they win over dtype detection.
        nan: "category" or "impute" (module docstring).
        target_as_label: False keeps a categorical target in the multinomial block (an unconditional model
            must learn it jointly with every other column).
    """

    def __init__(self, target=None, categorical=None, discrete=None, nan: str = "category", *,
                 target_as_label: bool = True):
        if nan not in NAN_MODES:
            raise ValueError(f"nan: expected one of {NAN_MODES}, got {nan!r}")
        if isinstance(target, (list, set, frozenset, dict, np.ndarray, pd.Index, pd.Series)):
            raise ValueError(f"target: expected one column name, got a {type(target).__name__} {target!r}; "
                             "TabDDPM models one target column")
        self.target, self.nan, self.target_as_label = target, nan, bool(target_as_label)
        self.categorical = _column_list("categorical", categorical)
        self.discrete = _column_list("discrete", discrete)
        self.columns: list = []
        self.multi_index, self.column_names, self.column_dtype = False, [None], None
        self.specs: dict = {}
        self.quantiles: dict = {}

    # ------------------------------------------------------------------------------------------- fit

    def fit(self, df: pd.DataFrame) -> TableTransformer:
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
        if len(df) < 1 or df.shape[1] < 1:
            raise ValueError(f"df: expected at least one row and one column, got shape {df.shape}")
        if df.columns.duplicated().any():
            raise ValueError(f"df: duplicated column names {list(df.columns[df.columns.duplicated()])}")
        columns = [_label(c) for c in df.columns]
        for c in columns:
            if not _savable(c):
                raise ValueError(f"df: the column name {c!r} ({type(c).__name__}) cannot be saved; rename it "
                                 "(allowed: str, int, float, bool, None and tuples of these)")
        for name, listed in (("target", [self.target] if self.target is not None else []),
                             ("categorical", self.categorical or []), ("discrete", self.discrete or [])):
            unknown = [c for c in listed if not _has_column(columns, c)]
            if unknown:
                raise ValueError(f"{name}: columns {unknown} are not in the DataFrame")
        both = [c for c in self.categorical or [] if _has_column(self.discrete or [], c)]
        if both:
            raise ValueError(f"categorical, discrete: columns {both} are listed in both")
        self.columns = columns
        self.multi_index = isinstance(df.columns, pd.MultiIndex)
        self.column_dtype = None if self.multi_index else str(df.columns.dtype)
        self.column_names = [_label(n) if _savable(_label(n)) else None for n in df.columns.names]
        self.specs = {name: self._fit_column(df.iloc[:, j], name) for j, name in enumerate(columns)}
        self.quantiles = {c: QuantileNormal.fit(self._numeric_values(df.iloc[:, columns.index(c)], self.specs[c]),
                                                discrete=True)
                          for c in self.numeric_columns}
        return self

    def _fit_column(self, series: pd.Series, name) -> ColumnSpec:
        dtype = str(series.dtype)
        if ptypes.is_datetime64_any_dtype(series.dtype) or ptypes.is_timedelta64_dtype(series.dtype):
            raise ValueError(f"df: column {name!r} has dtype {dtype}; convert dates to numbers or strings first")
        if ptypes.is_complex_dtype(series.dtype):
            raise ValueError(f"df: column {name!r} has complex dtype {dtype}; split it into real columns first")
        offset = _integer_offset(series) if _is_numeric(series) else 0
        if _is_numeric(series):
            values = _float_values(series, offset)
            if np.isinf(values).any():
                raise ValueError(f"df: column {name!r} contains {int(np.isinf(values).sum())} infinite values; "
                                 "replace them (e.g. with NaN) before fitting")
        user_cat = self.categorical is not None and _has_column(self.categorical, name)
        user_discrete = self.discrete is not None and _has_column(self.discrete, name)
        detected_cat = not _is_numeric(series) and not user_discrete
        observed = series.dropna()
        has_missing = len(observed) < len(series)
        if user_cat or detected_cat:
            return self._fit_categorical(series, name, dtype, has_missing)
        if not _is_numeric(series):
            raise ValueError(f"discrete: column {name!r} has non-numeric dtype {dtype}")
        values = values[~np.isnan(values)]
        if values.size == 0 or (np.unique(values).size == 1 and not (has_missing and self.nan == "category")):
            constant = _python(observed.iloc[0]) if len(observed) else None
            return ColumnSpec(name, "constant", dtype, constant=constant)
        integer = user_discrete or (self.discrete is None and ptypes.is_integer_dtype(series.dtype))
        if user_discrete and not np.allclose(values, np.round(values)):
            raise ValueError(f"discrete: column {name!r} has non-integer values")
        spec = ColumnSpec(name, "discrete" if integer else "continuous", dtype, low=float(values.min()),
                          high=float(values.max()), fill=float(np.median(values)),
                          missing=has_missing and self.nan == "category", offset=offset)
        if integer:
            unique = np.unique(values)
            spec.values = unique.tolist() if unique.size <= SNAP_LIMIT else []
        else:
            spec.decimals = next((d for d in range(7) if np.allclose(values, np.round(values, d), rtol=0,
                                                                     atol=1e-9 * max(1.0, np.abs(values).max()))),
                                 None)
        return spec

    @staticmethod
    def _levels(observed: pd.Series, name) -> list:
        """The distinct values of a column without missing values: sorted, or in first-seen order when they do
        not sort. An object column is scanned by :func:`_level_key`, so ``True`` and ``1`` stay apart."""
        if observed.dtype != object:  # bool, str, numeric dtypes hold one type: pandas' unique is exact
            levels = [_python(v) for v in observed.unique().tolist()]
        else:
            seen = {}
            for value in observed.tolist():
                value = _python(value)
                try:
                    seen.setdefault(_level_key(value), value)
                except TypeError:
                    raise ValueError(f"df: column {name!r} holds an unhashable {type(value).__name__} value "
                                     f"({value!r}); a level must be a str, number, bool or tuple") from None
            levels = list(seen.values())
        for level in levels:
            if not _savable(level):
                raise _unsavable(name, level)
        try:
            return sorted(levels)
        except TypeError:  # mixed types: keep first-seen order
            return levels

    def _fit_categorical(self, series: pd.Series, name, dtype: str, has_missing: bool) -> ColumnSpec:
        pandas_category = isinstance(series.dtype, pd.CategoricalDtype)
        if pandas_category:
            levels = [_python(v) for v in series.cat.categories]
            for level in levels:
                if not _savable(level):
                    raise _unsavable(name, level)
            ordered = bool(series.cat.ordered)
            distinct = series.dropna().nunique()
        else:
            levels = self._levels(series.dropna(), name)
            ordered = False
            distinct = len(levels)
        if has_missing and self.nan == "category":
            levels = levels + [None]
        if not levels:
            return ColumnSpec(name, "constant", dtype, constant=None)
        spec = ColumnSpec(name, "categorical", dtype, levels=levels, ordered=ordered,
                          pandas_category=pandas_category)
        if self.nan == "impute" and distinct:
            spec.fill = float(np.bincount(self._codes(series.dropna(), spec)).argmax())
        label = self.target_as_label and self.target is not None and _has_column([self.target], name)
        if distinct == 1 and not (has_missing and self.nan == "category") and not label:
            constant = _python(series.dropna().iloc[0])
            return ColumnSpec(name, "constant", dtype, levels=levels, ordered=ordered,
                              pandas_category=pandas_category, constant=constant)
        return spec

    # ------------------------------------------------------------------------------------- structure

    @property
    def numeric_columns(self) -> list:
        return [c for c in self.columns if self.specs[c].kind in ("continuous", "discrete")]

    @property
    def categorical_columns(self) -> list:
        """Categorical columns diffused by the multinomial part (the categorical target is y, not here)."""
        return [c for c in self.columns if self.specs[c].kind == "categorical" and not self.is_label(c)]

    def is_label(self, name) -> bool:
        return (self.target_as_label and self.target is not None and _has_column([self.target], name)
                and self.specs[name].kind == "categorical")

    @property
    def label_levels(self) -> list | None:
        """The target's levels when it is the categorical conditioning label, else None."""
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
        values = _float_values(series, spec.offset)
        if np.isinf(values).any():
            raise ValueError(f"df: column {spec.name!r} contains infinite values")
        return np.where(np.isnan(values), spec.fill, values)

    def _codes(self, series, spec: ColumnSpec, argument: str = "df") -> np.ndarray:
        """Level indices (n,) of ``series`` (a Series or a list); an unseen level (or a missing value where the
        column had none and nothing is imputed) raises ValueError naming ``argument`` and the column."""
        values = series.tolist() if isinstance(series, pd.Series) else list(series)
        lookup = {_level_key(level): i for i, level in enumerate(spec.levels) if level is not None}
        missing_code = spec.levels.index(None) if None in spec.levels else None
        known = f"known levels: {spec.levels[:20]}{' ...' if len(spec.levels) > 20 else ''}"
        codes = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values):
            value = _python(value)
            if value is None:
                if missing_code is not None:
                    codes[i] = missing_code
                elif self.nan == "impute" and argument == "df":
                    codes[i] = int(spec.fill)
                else:
                    raise ValueError(f"{argument}: column {spec.name!r} has a missing value (None/NaN), unseen when "
                                     f"fitting; {known}")
                continue
            try:
                code = lookup.get(_level_key(value))
            except TypeError:  # unhashable
                code = None
            if code is None:
                raise ValueError(f"{argument}: column {spec.name!r} has the level {value!r}, unseen when fitting; "
                                 f"{known}")
            codes[i] = code
        return codes

    def label_codes(self, values) -> np.ndarray:
        """Target values (a ``conditions`` entry) -> label indices; an unseen value, or a missing one where the
        target had no missing values, raises ValueError listing the known levels."""
        return self._codes(list(values), self.specs[self.target], "conditions")

    def _column_positions(self, df: pd.DataFrame) -> dict:
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
        positions = {}
        for j, c in enumerate(df.columns):
            positions.setdefault(_level_key(_label(c)), j)
        missing = [c for c in self.columns if _level_key(c) not in positions]
        if missing:
            raise ValueError(f"df: columns {missing} are missing")
        return {c: positions[_level_key(c)] for c in self.columns}

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(x_num: (n, numeric) float32 normal scores, x_cat: (n, multinomial columns) int64, y: (n,) | None)."""
        positions = self._column_positions(df)

        def column(name):
            return df.iloc[:, positions[name]]

        numeric = self.numeric_columns
        if numeric:
            x_num = np.stack([self.quantiles[c].transform(self._numeric_values(column(c), self.specs[c]))
                              for c in numeric], 1).astype(np.float32)
        else:
            x_num = np.zeros((len(df), 0), np.float32)
        blocks = [self._codes(column(c), self.specs[c]) for c in self.categorical_columns]
        blocks += [column(c).isna().to_numpy().astype(np.int64) for c in numeric if self.specs[c].missing]
        x_cat = np.stack(blocks, 1) if blocks else np.zeros((len(df), 0), np.int64)
        y = self._codes(column(self.target), self.specs[self.target]) if self.label_levels is not None else None
        return x_num, x_cat, y

    def inverse_transform(self, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray | None) -> pd.DataFrame:
        """The DataFrame of sampled arrays: original column labels and order, dtypes, levels; bounds and
        integers kept."""
        n = x_num.shape[0] if x_num.ndim == 2 and x_num.shape[1] else x_cat.shape[0] if x_cat.ndim == 2 \
            else len(y)
        out: dict = {}
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
        frame = pd.concat([out[name].reset_index(drop=True) for name in self.columns], axis=1, ignore_index=True)
        frame.columns = self._column_index()
        return frame

    def _column_index(self) -> pd.Index:
        """The fitted frame's column index: its labels, its dtype (object where that would change a label:
        None or 0 in a float index), a MultiIndex with its level names."""
        if self.multi_index:
            return pd.MultiIndex.from_tuples(self.columns, names=self.column_names)
        try:
            index = pd.Index(self.columns, dtype=self.column_dtype, name=self.column_names[0], tupleize_cols=False)
        except (TypeError, ValueError):
            index = None
        if index is None or [(type(c), c) for c in map(_label, index)] != [(type(c), c) for c in self.columns]:
            index = pd.Index(self.columns, dtype=object, name=self.column_names[0], tupleize_cols=False)
        return index

    @staticmethod
    def _numeric_series(column: np.ndarray, spec: ColumnSpec) -> pd.Series:
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

    @staticmethod
    def _level_array(levels: list) -> np.ndarray:
        array = np.empty(len(levels), dtype=object)
        for i, level in enumerate(levels):  # element-wise: numpy would unpack tuple levels
            array[i] = np.nan if level is None else level
        return array

    @classmethod
    def _categorical_series(cls, codes: np.ndarray, spec: ColumnSpec) -> pd.Series:
        values = cls._level_array(spec.levels)[np.asarray(codes, dtype=np.int64)]
        if spec.pandas_category:
            categories = [level for level in spec.levels if level is not None]
            return pd.Series(pd.Categorical(values, categories=categories, ordered=spec.ordered), name=spec.name)
        return restore_dtype(pd.Series(values, name=spec.name, dtype=object), spec.dtype)

    @classmethod
    def _constant_series(cls, spec: ColumnSpec, n: int) -> pd.Series:
        value = np.nan if spec.constant is None else spec.constant
        if spec.pandas_category:
            categories = [level for level in spec.levels if level is not None]
            return pd.Series(pd.Categorical(cls._level_array([spec.constant] * n), categories=categories,
                                            ordered=spec.ordered), name=spec.name)
        if spec.dtype == "object" or isinstance(value, (str, tuple)):
            series = pd.Series(cls._level_array([spec.constant] * n), name=spec.name, dtype=object)
        else:
            series = pd.Series([value] * n, name=spec.name)
        return restore_dtype(series, spec.dtype)

    # ---------------------------------------------------------------------------------- persistence

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON config, arrays) to save; ``from_state`` rebuilds the transformer. Labels, levels and constants
        go through :func:`encode_value`."""
        def names(listed):
            return None if listed is None else [encode_value(c) for c in listed]

        config = {"target": encode_value(self.target), "nan": self.nan, "target_as_label": self.target_as_label,
                  "columns": names(self.columns), "multi_index": self.multi_index,
                  "column_dtype": self.column_dtype,
                  "column_names": names(self.column_names), "categorical": names(self.categorical),
                  "discrete": names(self.discrete), "specs": [self.specs[c].to_dict() for c in self.columns]}
        arrays = {}
        for j, name in enumerate(self.numeric_columns):
            quantile = self.quantiles[name]
            arrays[f"knots.{j}"], arrays[f"scores.{j}"] = quantile.knots, quantile.scores
            arrays[f"cdf.{j}"], arrays[f"lower.{j}"] = quantile.cdf, quantile.lower
            config["specs"][self.columns.index(name)]["quantile_discrete"] = quantile.discrete
        return config, arrays

    @classmethod
    def from_state(cls, config: dict, arrays: dict[str, np.ndarray]) -> TableTransformer:
        """Rebuild from :meth:`state` (raises KeyError / TypeError / ValueError on a malformed state)."""
        def names(listed):
            return None if listed is None else [decode_value(c) for c in listed]

        self = cls(decode_value(config["target"]), names(config["categorical"]), names(config["discrete"]),
                   config["nan"], target_as_label=config.get("target_as_label", True))
        self.columns = names(config["columns"])
        self.multi_index = bool(config.get("multi_index", False))
        self.column_dtype = config.get("column_dtype")
        self.column_names = names(config.get("column_names", [None]))
        specs = [dict(s) for s in config["specs"]]
        discrete = [s.pop("quantile_discrete", False) for s in specs]
        specs = [ColumnSpec.from_dict(s) for s in specs]
        if [s.name for s in specs] != self.columns:
            raise ValueError("specs: the column specs do not match the column list")
        self.specs = dict(zip(self.columns, specs, strict=True))
        discrete = dict(zip(self.columns, discrete, strict=True))
        for j, name in enumerate(self.numeric_columns):
            self.quantiles[name] = QuantileNormal(*(np.asarray(arrays[f"{k}.{j}"], np.float64)
                                                    for k in ("knots", "scores", "cdf")), discrete[name],
                                                  np.asarray(arrays[f"lower.{j}"], np.float64))
        return self
