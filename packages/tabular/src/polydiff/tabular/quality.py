"""The synthetic-data scores the TabSyn and TabDiff papers report, all higher-is-better in [0, 1], every one fitted
on the real training rows and the synthetic rows only (never on held-out rows):

* :func:`alpha_precision` and :func:`beta_recall` (Alaa et al., 2022, "How Faithful is your Synthetic Data?",
  sec. 3): rows are embedded (numeric columns standardised by the real rows, categorical columns one-hot) and
  centred on the real mean. The alpha-support of the real data is the ball holding a share alpha of the real rows;
  the precision curve P(alpha) is the share of synthetic rows inside it. The beta-support of the synthetic data is
  the ball holding a share beta of the synthetic rows; the recall curve R(beta) is the share of real rows whose
  nearest synthetic row lies in that ball and within the real row's k-nearest-neighbour radius among real rows.
  A faithful generator has P(alpha) = alpha and R(beta) = beta; the scores are 1 - 2 mean|P(alpha) - alpha| and
  1 - 2 mean|R(beta) - beta| over an even alpha grid (the "delta" forms the TabSyn paper reports).
* :func:`detection_score`: SDMetrics' LogisticDetection, 1 - 2 max(AUC - 0.5, 0) with AUC the mean over three
  stratified folds of a logistic regression telling real from synthetic rows (standardised numeric, one-hot
  categorical features).
* :func:`column_shape_score`: SDMetrics' Column Shapes, the mean over columns of 1 - KS statistic (numeric) or
  1 - total variation distance (categorical).
* :func:`pair_trend_score`: SDMetrics' Column Pair Trends, the mean over column pairs of
  1 - |r_real - r_synthetic| / 2 (Pearson r, two numeric columns) or 1 - TVD of the pair's joint frequencies
  (any pair with a categorical column; the numeric column binned at the real rows' deciles).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .columns import _is_numeric

__all__ = ["alpha_precision", "beta_recall", "detection_score", "column_shape_score", "pair_trend_score",
           "embed_rows"]


def _text(series: pd.Series) -> np.ndarray:
    return series.astype(object).where(series.notna(), "<NA>").astype(str).to_numpy()


def embed_rows(reference: pd.DataFrame):
    """An encoder fitted on ``reference``: numeric columns standardised by its mean and sd (NaN -> its mean, plus
    a 0/1 missing indicator when it has missing values), categorical ones one-hot over its levels. Returns
    ``encode(frame) -> (rows, features) float array``."""
    numeric = [c for c in reference.columns if _is_numeric(reference[c])]
    categorical = [c for c in reference.columns if c not in numeric]
    stats = {}
    for c in numeric:
        values = pd.to_numeric(reference[c], errors="coerce").to_numpy(float)
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if len(finite) else 0.0
        sd = float(finite.std()) if len(finite) > 1 else 0.0
        stats[c] = (mean, sd or 1.0, bool(np.isnan(values).any()))
    levels = {c: sorted(set(_text(reference[c]))) for c in categorical}

    def encode(frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for c in numeric:
            mean, sd, missing = stats[c]
            values = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
            parts.append(np.where(np.isfinite(values), (values - mean) / sd, 0.0))
            if missing:
                parts.append(np.isnan(values).astype(float))
        for c in categorical:
            text = _text(frame[c])
            parts += [(text == level).astype(float) for level in levels[c]]
        return np.stack(parts, 1) if parts else np.zeros((len(frame), 0))

    return encode


def _subsample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=max_rows, random_state=seed) if len(frame) > max_rows else frame


def _check(real, synthetic) -> None:
    for name, frame in (("real", real), ("synthetic", synthetic)):
        if not isinstance(frame, pd.DataFrame) or len(frame) < 2:
            raise ValueError(f"{name}: expected a DataFrame with at least 2 rows")
    missing = [c for c in real.columns if c not in synthetic.columns]
    if missing:
        raise ValueError(f"synthetic: columns {missing} of the real table are missing")


_ALPHAS = np.linspace(0.0, 1.0, 31)  # symmetric about 1/2: a curve stuck at 0 or at 1 scores exactly 0


def _embedded(real, synthetic, max_rows, seed):
    _check(real, synthetic)
    real, synthetic = _subsample(real, max_rows, seed), _subsample(synthetic[list(real.columns)], max_rows, seed)
    encode = embed_rows(real)
    r, s = encode(real), encode(synthetic)
    center = r.mean(0)
    return r, s, center


def alpha_precision(real: pd.DataFrame, synthetic: pd.DataFrame, *, max_rows: int = 5000, seed: int = 0) -> float:
    """1 - 2 mean over alpha of |P(alpha) - alpha| (module docstring); 1 when the synthetic rows spread over the
    real support as the real rows do, 0 when they all sit at its centre or all far outside it."""
    r, s, center = _embedded(real, synthetic, max_rows, seed)
    real_radius, synth_radius = np.linalg.norm(r - center, axis=1), np.linalg.norm(s - center, axis=1)
    balls = np.quantile(real_radius, _ALPHAS)
    curve = (synth_radius[None, :] <= balls[:, None]).mean(1)
    return float(1 - 2 * np.abs(curve - _ALPHAS).mean())


def beta_recall(real: pd.DataFrame, synthetic: pd.DataFrame, *, k: int = 5, max_rows: int = 5000,
                seed: int = 0) -> float:
    """1 - 2 mean over beta of |R(beta) - beta| (module docstring); k: the neighbours of a real row's radius."""
    from sklearn.neighbors import NearestNeighbors

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    r, s, center = _embedded(real, synthetic, max_rows, seed)
    k = min(k, len(r) - 1)
    real_knn = NearestNeighbors(n_neighbors=k + 1).fit(r).kneighbors(r)[0][:, -1]  # the row itself is first
    distance, nearest = NearestNeighbors(n_neighbors=1).fit(s).kneighbors(r)
    distance, nearest = distance[:, 0], nearest[:, 0]
    synth_radius = np.linalg.norm(s - center, axis=1)
    balls = np.quantile(synth_radius, _ALPHAS)
    close = distance <= real_knn + 1e-12
    curve = (close[None, :] & (synth_radius[nearest][None, :] <= balls[:, None])).mean(1)
    return float(1 - 2 * np.abs(curve - _ALPHAS).mean())


def detection_score(real: pd.DataFrame, synthetic: pd.DataFrame, *, max_rows: int = 5000, seed: int = 0) -> float:
    """SDMetrics' LogisticDetection: 1 - 2 max(AUC - 0.5, 0), AUC averaged over 3 stratified folds (module
    docstring). 1: the classifier cannot tell the tables apart; 0: it always can."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    _check(real, synthetic)
    real, synthetic = _subsample(real, max_rows, seed), _subsample(synthetic[list(real.columns)], max_rows, seed)
    encode = embed_rows(real)
    x = np.concatenate([encode(real), encode(synthetic)])
    y = np.r_[np.zeros(len(real)), np.ones(len(synthetic))]
    if x.shape[1] == 0 or min(len(real), len(synthetic)) < 3:
        return math.nan
    aucs = []
    for train, test in StratifiedKFold(3, shuffle=True, random_state=seed).split(x, y):
        model = LogisticRegression(max_iter=1000).fit(x[train], y[train])
        aucs.append(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    return float(1 - 2 * max(float(np.mean(aucs)) - 0.5, 0.0))


def column_shape_score(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    """SDMetrics' Column Shapes: mean over columns of 1 - KS (numeric) or 1 - TVD (categorical)."""
    from .evaluate import column_shapes

    _check(real, synthetic)
    return float(1 - np.mean(list(column_shapes(real, synthetic[list(real.columns)]).values())))


def _binned(series: pd.Series, edges: np.ndarray | None) -> np.ndarray:
    if edges is None:
        return _text(series)
    values = pd.to_numeric(series, errors="coerce").to_numpy(float)
    return np.where(np.isnan(values), -1, np.searchsorted(edges, values, side="right")).astype(str)


def pair_trend_score(real: pd.DataFrame, synthetic: pd.DataFrame, *, max_rows: int = 5000, seed: int = 0) -> float:
    """SDMetrics' Column Pair Trends (module docstring); 1.0 for a single column (no pairs)."""
    _check(real, synthetic)
    columns = list(real.columns)
    if len(columns) < 2:
        return 1.0
    real, synthetic = _subsample(real, max_rows, seed), _subsample(synthetic[columns], max_rows, seed)
    numeric = {c: _is_numeric(real[c]) for c in columns}
    edges = {}
    for c in columns:
        if numeric[c]:
            values = pd.to_numeric(real[c], errors="coerce").to_numpy(float)
            values = values[np.isfinite(values)]
            edges[c] = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9))) if len(values) else np.zeros(0)
        else:
            edges[c] = None
    scores = []
    for i, a in enumerate(columns):
        for b in columns[i + 1:]:
            if numeric[a] and numeric[b]:
                r = [_pearson(frame[a], frame[b]) for frame in (real, synthetic)]
                scores.append(1 - abs(r[0] - r[1]) / 2)
            else:
                p = pd.Series(list(zip(_binned(real[a], edges[a]), _binned(real[b], edges[b]), strict=True)))
                q = pd.Series(list(zip(_binned(synthetic[a], edges[a]), _binned(synthetic[b], edges[b]),
                                       strict=True)))
                tvd = 0.5 * p.value_counts(normalize=True).sub(q.value_counts(normalize=True), fill_value=0).abs().sum()
                scores.append(1 - float(tvd))
    return float(np.mean(scores))


def _pearson(a: pd.Series, b: pd.Series) -> float:
    x = pd.to_numeric(a, errors="coerce").to_numpy(float)
    y = pd.to_numeric(b, errors="coerce").to_numpy(float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])
