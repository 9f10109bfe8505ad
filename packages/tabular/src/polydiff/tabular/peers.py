"""Peer generators run in the same benchmark: SMOTENC (imbalanced-learn), and SDV's GaussianCopula, CTGAN and
TVAE. Every peer has the TabDDPM verbs: ``fit(df, target)`` and ``sample(n, seed) -> DataFrame``.

* SMOTENC (Chawla et al., 2002; the "SMOTE" baseline of Kotelnikov et al., 2023): new rows interpolate between a
  training row and one of its k = 5 nearest neighbours of the same class (categorical features take the most
  frequent value among the neighbours). For a regression target the classes are the two halves of the target
  split at its median, and the target is interpolated as a feature. Without categorical features it is SMOTE.
* SDV 2.x single-table synthesizers, with every column's sdtype set from its dtype (numeric -> "numerical",
  anything else -> "categorical") so all methods see the same column types. CTGAN and TVAE train for ``epochs``
  epochs (SDV's default 300) with their default batch size 500, on CPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .columns import _is_numeric

__all__ = ["PEERS", "make_peer", "SMOTENCGenerator", "SDVGenerator"]

PEERS = ("SMOTENC", "GaussianCopula", "CTGAN", "TVAE")


def _restore_dtypes(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c in like.columns:
        series = frame[c]
        if _is_numeric(like[c]) and pd.api.types.is_integer_dtype(like[c].dtype):
            series = pd.to_numeric(series, errors="coerce").round()
        try:
            series = series.astype(like[c].dtype)
        except (TypeError, ValueError):
            pass
        out[c] = series.reset_index(drop=True)
    return pd.DataFrame(out)[list(like.columns)]


class SMOTENCGenerator:
    """SMOTENC as a generator: ``sample(n)`` returns n new interpolated rows, class shares as in training."""

    def __init__(self, k_neighbors: int = 5, seed: int = 0):
        self.k_neighbors, self.seed = k_neighbors, seed

    def fit(self, df: pd.DataFrame, target: str | None = None) -> SMOTENCGenerator:
        self.frame, self.target = df.reset_index(drop=True), target
        return self

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        from polydiff.core.optional import require

        require("imblearn", "polydiff-tabular[bench]", "the SMOTENC peer")
        from imblearn.over_sampling import SMOTE, SMOTENC

        df, target = self.frame, self.target
        features = [c for c in df.columns if c != target] if target is not None else list(df.columns)
        regression = target is None or _is_numeric(df[target]) and df[target].nunique() > 20
        if regression:
            features = list(df.columns)
            if target is not None:
                labels = (df[target] > df[target].median()).astype(int).to_numpy()
            else:
                labels = np.arange(len(df)) % 2
        else:
            labels = df[target].astype(str).to_numpy()
        x = df[features].copy()
        categorical = [i for i, c in enumerate(features) if not _is_numeric(df[c])]
        for c in features:
            if _is_numeric(df[c]):
                x[c] = pd.to_numeric(x[c]).fillna(x[c].median()).astype(float)
            else:
                x[c] = x[c].astype(object).where(x[c].notna(), "nan").astype(str)
        classes, counts = np.unique(labels, return_counts=True)
        shares = counts / counts.sum()
        extra = np.floor(shares * n).astype(int)
        extra[: n - extra.sum()] += 1
        strategy = {c: int(count + e) for c, count, e in zip(classes, counts, extra, strict=True)}
        k = int(max(1, min(self.k_neighbors, counts.min() - 1)))
        rng_seed = self.seed if seed is None else seed
        if categorical and len(categorical) < len(features):
            sampler = SMOTENC(categorical_features=categorical, sampling_strategy=strategy, k_neighbors=k,
                              random_state=rng_seed)
        elif not categorical:
            sampler = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=rng_seed)
        else:
            raise ValueError("df: SMOTENC needs at least one numerical feature")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            new_x, new_y = sampler.fit_resample(x, labels)
        new_x, new_y = new_x.iloc[len(x):].reset_index(drop=True), np.asarray(new_y)[len(x):]
        if not regression:
            lookup = {str(v): v for v in df[target].dropna().unique()}
            new_x[target] = [lookup.get(v, v) for v in new_y]
        for c in features:
            if not _is_numeric(df[c]):
                lookup = {str(v): v for v in df[c].dropna().unique()}
                new_x[c] = [lookup.get(v, np.nan) for v in new_x[c]]
        return _restore_dtypes(new_x, df)


class SDVGenerator:
    """One of SDV's single-table synthesizers ("GaussianCopula", "CTGAN", "TVAE")."""

    def __init__(self, name: str, epochs: int = 300, seed: int = 0):
        if name not in ("GaussianCopula", "CTGAN", "TVAE"):
            raise ValueError(f"name: expected GaussianCopula, CTGAN or TVAE, got {name!r}")
        self.name, self.epochs, self.seed = name, epochs, seed

    def fit(self, df: pd.DataFrame, target: str | None = None) -> SDVGenerator:
        import torch

        from polydiff.core.optional import require

        require("sdv", "polydiff-tabular[bench]", f"the SDV peer {self.name}")
        from sdv.metadata import Metadata
        from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

        self.columns = list(df.columns)
        self.like = df
        frame = df.copy()
        frame.columns = [str(c) for c in frame.columns]
        metadata = Metadata.detect_from_dataframes({"table": frame}, infer_keys=None)
        for c in frame.columns:
            sdtype = "numerical" if _is_numeric(frame[c]) else "categorical"
            metadata.update_column(column_name=c, sdtype=sdtype, table_name="table")
        np.random.seed(self.seed)  # noqa: NPY002 -- SDV's samplers draw from numpy's global RNG
        torch.manual_seed(self.seed)
        warnings.filterwarnings("ignore", module="sdv")
        if self.name == "GaussianCopula":
            model = GaussianCopulaSynthesizer(metadata)
        elif self.name == "CTGAN":
            model = CTGANSynthesizer(metadata, epochs=self.epochs, enable_gpu=False)
        else:
            model = TVAESynthesizer(metadata, epochs=self.epochs, enable_gpu=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit({"table": frame})  # SDV 2.x takes {table name: frame}
        self.model = model
        return self

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        import torch

        seed = self.seed if seed is None else seed
        np.random.seed(seed)  # noqa: NPY002 -- as in fit
        torch.manual_seed(seed)
        # SDV 2.x seeds its first draw after a fit with a fixed number (73251), whatever the global RNGs hold, so
        # without this every fit of GaussianCopula (whose fit is deterministic) returned the same rows for every
        # seed; SDV has no public argument for it
        self.model._set_random_state(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = self.model.sample(num_rows=n)
        if isinstance(frame, dict):
            frame = frame["table"]
        frame.columns = self.columns
        return _restore_dtypes(frame, self.like)


def make_peer(name: str, *, epochs: int = 300, seed: int = 0):
    """A peer generator by name (``PEERS``)."""
    if name == "SMOTENC":
        return SMOTENCGenerator(seed=seed)
    if name in PEERS:
        return SDVGenerator(name, epochs=epochs, seed=seed)
    raise ValueError(f"name: unknown peer {name!r}; choices: {list(PEERS)}")
