"""Evaluation of a synthetic table against the real one: ML efficiency, fidelity and privacy.

* ML efficiency (Kotelnikov et al., 2023, sec. 5.1): train CatBoost (or scikit-learn's
  HistGradientBoosting when catboost is absent) on the synthetic table, test on real held-out rows; macro-F1
  (and ROC AUC) for classification, R^2 for regression; mean and sd over several model seeds. A synthetic
  table whose target has a single class is reported (``ml_note``), not a crash.
* Fidelity: per-column shape distance — Kolmogorov-Smirnov statistic for numerical columns, total variation
  distance for categorical ones (sdmetrics' KSComplement / TVComplement, as distances) — averaged into
  ``fidelity_ks_tvd``; ``correlation_diff``: the mean absolute difference of the pairwise association matrices
  (Pearson r for numeric pairs, Cramér's V for categorical pairs, the correlation ratio eta for mixed pairs);
  ``detection_auc``: the cross-validated ROC AUC of a gradient-boosting classifier telling real training rows from
  synthetic rows (0.5: indistinguishable).
* Privacy: distance to closest record (DCR) from each synthetic row to the training rows, on min-max-scaled
  numeric and one-hot categorical features — median and 5th percentile; ``closer_to_train_share``: the share of
  synthetic rows closer to the training rows than to a same-size sample of holdout rows (0.5 for a generator
  that does not copy; 1.0 for one that copies).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score, r2_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors

__all__ = ["evaluate", "ml_efficiency", "column_shapes", "association_matrix", "correlation_diff",
           "detection_auc", "privacy", "METRICS_BETTER"]

METRICS_BETTER = {
    "ml_efficiency": "max", "ml_efficiency_sd": "min", "ml_auc": "max", "fidelity_ks_tvd": "min",
    "correlation_diff": "min", "detection_auc": "min", "dcr_median": "max", "dcr_p5": "max",
    "closer_to_train_share": "min", "fit_seconds": "min", "sample_seconds": "min",
}


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _as_text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "nan").astype(str)


def _features(frames: list[pd.DataFrame], reference: pd.DataFrame) -> tuple[list[pd.DataFrame], list[str]]:
    """Align frames on the reference's columns; categorical columns as strings (NaN -> "nan")."""
    categorical = [c for c in reference.columns if not _is_numeric(reference[c])]
    out = []
    for frame in frames:
        frame = frame[list(reference.columns)].copy()
        for c in reference.columns:
            frame[c] = _as_text(frame[c]) if c in categorical else pd.to_numeric(frame[c], errors="coerce")
        out.append(frame)
    return out, categorical


# --------------------------------------------------------------------------------------- ML efficiency


def _fit_predict(train_x, train_y, test_x, categorical, task, seed, iterations):
    try:
        from catboost import CatBoostClassifier, CatBoostRegressor
    except ImportError:  # the documented fallback
        CatBoostClassifier = CatBoostRegressor = None
    if CatBoostClassifier is not None:
        options = dict(iterations=iterations, random_seed=seed, verbose=False, thread_count=int(os.environ.get("POLYDIFF_THREADS", "1")),
                       cat_features=categorical, allow_writing_files=False)
        if task == "regression":
            model = CatBoostRegressor(**options).fit(train_x, train_y)
            return model.predict(test_x), None, None
        model = CatBoostClassifier(**options).fit(train_x, train_y)
        return np.asarray(model.predict(test_x)).ravel(), model.predict_proba(test_x), list(model.classes_)
    from sklearn.ensemble import HistGradientBoostingRegressor

    encoded_train, encoded_test = train_x.copy(), test_x.copy()
    for c in categorical:
        levels = {v: i for i, v in enumerate(sorted(set(train_x[c]) | set(test_x[c])))}
        encoded_train[c], encoded_test[c] = train_x[c].map(levels), test_x[c].map(levels)
    mask = [c in categorical for c in train_x.columns]
    options = dict(max_iter=iterations, random_state=seed, categorical_features=mask or None)
    if task == "regression":
        return HistGradientBoostingRegressor(**options).fit(encoded_train, train_y).predict(encoded_test), None, None
    model = HistGradientBoostingClassifier(**options).fit(encoded_train, train_y)
    return model.predict(encoded_test), model.predict_proba(encoded_test), list(model.classes_)


def ml_efficiency(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, *, seeds=(0, 1, 2),
                  iterations: int = 500) -> dict:
    """Train on ``train`` (synthetic or real), score on real ``test``: macro-F1 (classification, plus ROC AUC)
    or R^2 (regression); returns {"ml_efficiency", "ml_efficiency_sd", "ml_auc", "ml_note"}."""
    features = [c for c in test.columns if c != target]
    (train_x, test_x), categorical = _features([train[features], test[features]], test[features])
    if task == "regression":
        train_y = pd.to_numeric(train[target], errors="coerce").to_numpy(float)
        keep = np.isfinite(train_y)
        train_x, train_y = train_x[keep], train_y[keep]
        test_y = pd.to_numeric(test[target]).to_numpy(float)
    else:
        train_y, test_y = _as_text(train[target]).to_numpy(), _as_text(test[target]).to_numpy()
        if len(set(train_y)) < 2:
            return {"ml_efficiency": math.nan, "ml_efficiency_sd": math.nan, "ml_auc": math.nan,
                    "ml_note": f"the training table has a single class ({train_y[0] if len(train_y) else 'none'})"}
    if len(train_x) < 2:
        return {"ml_efficiency": math.nan, "ml_efficiency_sd": math.nan, "ml_auc": math.nan,
                "ml_note": "fewer than 2 usable training rows"}
    scores, aucs = [], []
    real_classes = sorted(set(test_y)) if task != "regression" else None
    for seed in seeds:
        predicted, proba, classes = _fit_predict(train_x, train_y, test_x, categorical, task, seed, iterations)
        if task == "regression":
            scores.append(r2_score(test_y, predicted))
            continue
        scores.append(f1_score(test_y, np.asarray(predicted).astype(str), average="macro", labels=real_classes))
        full = np.zeros((len(test_y), len(real_classes)))
        for j, c in enumerate(classes):
            if c in real_classes:
                full[:, real_classes.index(c)] = proba[:, j]
        try:
            if len(real_classes) == 2:
                aucs.append(roc_auc_score(test_y == real_classes[1], full[:, 1]))
            else:
                full = full / np.clip(full.sum(1, keepdims=True), 1e-12, None)
                aucs.append(roc_auc_score(test_y, full, multi_class="ovr", labels=real_classes))
        except ValueError:
            pass
    return {"ml_efficiency": float(np.mean(scores)), "ml_efficiency_sd": float(np.std(scores, ddof=1))
            if len(scores) > 1 else 0.0, "ml_auc": float(np.mean(aucs)) if aucs else math.nan, "ml_note": ""}


# -------------------------------------------------------------------------------------------- fidelity


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """Per column: KS statistic (numeric; NaN share compared as one more category) or TVD (categorical)."""
    out = {}
    for c in real.columns:
        if _is_numeric(real[c]):
            a = pd.to_numeric(real[c], errors="coerce").to_numpy(float)
            b = pd.to_numeric(synthetic[c], errors="coerce").to_numpy(float)
            a_nan, b_nan = np.isnan(a).mean(), np.isnan(b).mean() if len(b) else 1.0
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            ks = stats.ks_2samp(a, b).statistic if len(a) and len(b) else float(len(a) != len(b))
            out[c] = float(max(ks, abs(a_nan - b_nan)))
        else:
            p = _as_text(real[c]).value_counts(normalize=True)
            q = _as_text(synthetic[c]).value_counts(normalize=True)
            out[c] = float(0.5 * p.sub(q, fill_value=0).abs().sum())
    return out


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    table = pd.crosstab(a, b).to_numpy()
    if min(table.shape) < 2:
        return 0.0
    chi2 = stats.chi2_contingency(table, correction=False)[0]
    return float(np.sqrt(chi2 / table.sum() / (min(table.shape) - 1)))


def _correlation_ratio(categories: np.ndarray, values: np.ndarray) -> float:
    total = values.var()
    if not np.isfinite(total) or total == 0:
        return 0.0
    frame = pd.DataFrame({"c": categories, "v": values})
    groups = frame.groupby("c")["v"]
    between = (groups.count() * (groups.mean() - values.mean()) ** 2).sum() / len(values)
    return float(np.sqrt(between / total))


def association_matrix(frame: pd.DataFrame, reference: pd.DataFrame) -> np.ndarray:
    """(columns, columns) associations: Pearson r, Cramér's V or the correlation ratio (module docstring)."""
    columns = list(reference.columns)
    numeric = {c: _is_numeric(reference[c]) for c in columns}
    data = {}
    for c in columns:
        if numeric[c]:
            values = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
            data[c] = np.where(np.isnan(values), np.nanmedian(values) if np.isfinite(values).any() else 0, values)
        else:
            data[c] = _as_text(frame[c]).to_numpy()
    matrix = np.eye(len(columns))
    for i, a in enumerate(columns):
        for j in range(i + 1, len(columns)):
            b = columns[j]
            if numeric[a] and numeric[b]:
                if data[a].std() == 0 or data[b].std() == 0:
                    value = 0.0
                else:
                    value = float(np.corrcoef(data[a], data[b])[0, 1])
            elif not numeric[a] and not numeric[b]:
                value = _cramers_v(data[a], data[b])
            else:
                cat, num = (data[a], data[b]) if not numeric[a] else (data[b], data[a])
                value = _correlation_ratio(cat, num)
            matrix[i, j] = matrix[j, i] = value
    return matrix


def correlation_diff(real: pd.DataFrame, synthetic: pd.DataFrame, max_rows: int = 5000, seed: int = 0) -> float:
    """Mean |A_real - A_synthetic| over column pairs (0 for a single column)."""
    if real.shape[1] < 2:
        return 0.0
    real = real.sample(n=min(len(real), max_rows), random_state=seed)
    synthetic = synthetic.sample(n=min(len(synthetic), max_rows), random_state=seed)
    diff = np.abs(association_matrix(real, real) - association_matrix(synthetic, real))
    upper = np.triu_indices(real.shape[1], 1)
    return float(np.mean(diff[upper]))


def detection_auc(real: pd.DataFrame, synthetic: pd.DataFrame, max_rows: int = 5000, seed: int = 0) -> float:
    """ROC AUC of 3-fold cross-validated HistGradientBoosting telling real from synthetic rows."""
    n = min(len(real), len(synthetic), max_rows)
    if n < 6:
        return math.nan
    both = pd.concat([real.sample(n=n, random_state=seed), synthetic.sample(n=n, random_state=seed)],
                     ignore_index=True)
    (both,), categorical = _features([both], real)
    for c in categorical:
        both[c] = both[c].astype("category").cat.codes
    labels = np.r_[np.zeros(n), np.ones(n)]
    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed,
                                           categorical_features=[c in categorical for c in both.columns] or None)
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, both, labels, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(labels, proba))


# --------------------------------------------------------------------------------------------- privacy


def _privacy_encoder(reference: pd.DataFrame):
    columns = list(reference.columns)
    numeric = [c for c in columns if _is_numeric(reference[c])]
    categorical = [c for c in columns if c not in numeric]
    low = {c: np.nanmin(pd.to_numeric(reference[c], errors="coerce")) for c in numeric}
    span = {c: (np.nanmax(pd.to_numeric(reference[c], errors="coerce")) - low[c]) or 1.0 for c in numeric}
    levels = {c: sorted(set(_as_text(reference[c]))) for c in categorical}

    def encode(frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for c in numeric:
            values = (pd.to_numeric(frame[c], errors="coerce").to_numpy(float) - low[c]) / span[c]
            parts += [np.nan_to_num(values, nan=-1.0)]
        for c in categorical:
            text = _as_text(frame[c]).to_numpy()
            parts += [(text == level).astype(float) for level in levels[c]]
        return np.stack(parts, 1) if parts else np.zeros((len(frame), 0))

    return encode


def privacy(train: pd.DataFrame, holdout: pd.DataFrame | None, synthetic: pd.DataFrame, max_rows: int = 5000,
            seed: int = 0) -> dict:
    """DCR median / 5th percentile (synthetic -> train) and the share of synthetic rows closer to train than to
    a same-size holdout sample (``holdout=None``: that share is not computed)."""
    encode = _privacy_encoder(train)
    synthetic = synthetic.sample(n=min(len(synthetic), max_rows), random_state=seed)
    s = encode(synthetic)
    d_train = NearestNeighbors(n_neighbors=1).fit(encode(train)).kneighbors(s)[0][:, 0]
    out = {"dcr_median": float(np.median(d_train)), "dcr_p5": float(np.percentile(d_train, 5)),
           "closer_to_train_share": math.nan}
    if holdout is not None and len(holdout):
        size = min(len(holdout), len(train))
        train_part = train.sample(n=size, random_state=seed)
        hold_part = holdout.sample(n=size, random_state=seed)
        near_train = NearestNeighbors(n_neighbors=1).fit(encode(train_part)).kneighbors(s)[0][:, 0]
        near_hold = NearestNeighbors(n_neighbors=1).fit(encode(hold_part)).kneighbors(s)[0][:, 0]
        out["closer_to_train_share"] = float(np.mean((near_train < near_hold) + 0.5 * (near_train == near_hold)))
    return out


# ------------------------------------------------------------------------------------------------- all


def evaluate(train: pd.DataFrame, test: pd.DataFrame, synthetic: pd.DataFrame, target: str | None = None,
             task: str | None = None, *, seeds=(0, 1, 2), iterations: int = 500, holdout_is_synthetic=False,
             ml: bool = True) -> dict:
    """Every metric of the module docstring for ``synthetic`` against real ``train`` (what the generator saw)
    and real ``test`` (held out). With ``target=None`` ML efficiency is skipped.

    ``holdout_is_synthetic`` (the "real" reference row, where the synthetic table *is* the test split): the
    closer-to-train share is not defined and is left out.
    """
    missing = [c for c in train.columns if c not in synthetic.columns]
    if missing:
        raise ValueError(f"synthetic: columns {missing} of the real table are missing")
    synthetic = synthetic[list(train.columns)]
    out: dict = {}
    if ml and target is not None:
        from .data import task_type

        out.update(ml_efficiency(synthetic, test, target, task or task_type(train[target]), seeds=seeds,
                                 iterations=iterations))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = column_shapes(train, synthetic)
        out["fidelity_ks_tvd"] = float(np.mean(list(shapes.values())))
        out["correlation_diff"] = correlation_diff(train, synthetic)
        out["detection_auc"] = detection_auc(train, synthetic)
        out.update(privacy(train, None if holdout_is_synthetic else test, synthetic))
    return out
