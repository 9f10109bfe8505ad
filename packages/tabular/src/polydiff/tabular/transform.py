"""The table transformer: a DataFrame <-> the tensors the table models diffuse.

Which column is what, and where it goes. Numerical columns go through the tie-aware Gaussian quantile transform
(:mod:`polydiff.tabular.quantile`) into the numerical block; categorical columns become class indices for the
categorical block; a categorical target becomes the conditioning label y (TabDDPM's class conditioning). Columns
with a single value are kept aside and written back as they are. How one column is read, saved and written back
is :mod:`polydiff.tabular.columns`.

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

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from .columns import (
    EXACT_FLOAT_INTEGER,
    ColumnSpec,
    _float_values,
    _has_column,
    _integer_offset,
    _is_numeric,
    _label,
    _level_key,
    _python,
    _savable,
    _unsavable,
    categorical_series,
    constant_series,
    decode_value,
    encode_value,
    numeric_series,
    numeric_values,
    restore_dtype,
)
from .quantile import ATOM_SHARE, MAX_KNOTS, SNAP_LIMIT, QuantileNormal

# the column and quantile names are defined in .columns and .quantile, and importable from here too
__all__ = ["ColumnSpec", "TableTransformer", "QuantileNormal", "NAN_MODES", "SNAP_LIMIT", "MAX_KNOTS", "ATOM_SHARE",
           "EXACT_FLOAT_INTEGER", "encode_value", "decode_value", "restore_dtype"]

NAN_MODES = ("category", "impute")


def _column_list(name: str, columns) -> list | None:
    """``categorical`` / ``discrete``: None or a list of column names (a lone string is refused, not split)."""
    if columns is None:
        return None
    if isinstance(columns, (str, bytes)) or not isinstance(columns, (list, tuple, set, frozenset, pd.Index,
                                                                      np.ndarray)):
        raise ValueError(f"{name}: expected a list of column names, got {columns!r}"
                         + (f"; write [{columns!r}] for one column" if isinstance(columns, (str, bytes)) else ""))
    return list(columns)


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
            column = numeric_values(x_num[:, j], self.quantiles[name], spec)
            if spec.missing:
                column = np.where(x_cat[:, indicator_at] == 1, np.nan, column)
                indicator_at += 1
            out[name] = numeric_series(column, spec)
        for j, name in enumerate(self.categorical_columns):
            out[name] = categorical_series(x_cat[:, j], self.specs[name])
        if self.label_levels is not None:
            out[self.target] = categorical_series(np.asarray(y), self.specs[self.target])
        for name in self.columns:
            if self.specs[name].kind == "constant":
                out[name] = constant_series(self.specs[name], n)
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
