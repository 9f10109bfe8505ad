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
* The TabSyn / TabDiff papers' scores (:mod:`polydiff.tabular.quality`, higher is better, 1 ideal):
  ``detection_score`` (SDMetrics' LogisticDetection), ``column_shape_score`` and ``pair_trend_score``
  (SDMetrics' Column Shapes and Column Pair Trends), ``alpha_precision`` and ``beta_recall`` (Alaa et al., 2022).
  Like every fidelity metric here they compare the synthetic rows with the real *training* rows; the test rows
  are used only to score the classifiers of ML efficiency and as the privacy holdout.
* Privacy: distance to closest record (DCR) from each synthetic row to the training rows, on min-max-scaled
  numeric and one-hot categorical features — median and 5th percentile; ``closer_to_train_share``: the share of
  synthetic rows closer to the training rows than to a same-size sample of holdout rows (0.5 for a generator
  that does not copy; 1.0 for one that copies).

:func:`evaluate` returns an :class:`Evaluation`: the dict ``{metric: value}`` of earlier versions (plus
``ml_note`` and ``ml_classifier``), with ``table`` — one row per metric: its value, which way is better
(``METRICS``), its ideal value and the real-data reference computed in the same call (real training rows scored
as if they were synthetic: ML efficiency of real train -> test, test rows against train for fidelity and DCR,
half the test rows against the other half for the closer-to-train share) — and ``print(result)`` shows it. It
warns when the test rows repeat the training rows (a test split that is not held out).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score, r2_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors

from .columns import _is_numeric

__all__ = ["evaluate", "Evaluation", "ml_efficiency", "column_shapes", "association_matrix", "correlation_diff",
           "detection_auc", "privacy", "classifier_name", "METRICS", "METRICS_BETTER", "TASKS"]

TASKS = ("binary", "multiclass", "regression")

#: metric -> (better, ideal, meaning). better: "higher", "lower", "closest" (closest to ``ideal``) or "none" (a
#: spread, not a score); ideal: NaN where there is none — compare with the real-data reference instead.
METRICS = {
    "ml_efficiency": ("higher", 1.0, "macro-F1 (classification) or R^2 (regression) on the real test rows of a "
                                     "classifier trained on the synthetic rows"),
    "ml_efficiency_sd": ("none", math.nan, "sd of ml_efficiency over the classifier seeds (a spread, not a score)"),
    "ml_auc": ("higher", 1.0, "ROC AUC of the same classifiers (classification only)"),
    "fidelity_ks_tvd": ("lower", 0.0, "mean over columns of the KS statistic (numeric) or total variation "
                                      "distance (categorical) to the real training rows"),
    "correlation_diff": ("lower", 0.0, "mean absolute difference of the pairwise association matrices"),
    "detection_auc": ("closest", 0.5, "ROC AUC of a classifier telling real training rows from synthetic rows; "
                                      "0.5 is ideal (indistinguishable), 1.0 fully distinguishable"),
    "detection_score": ("higher", 1.0, "SDMetrics' LogisticDetection, 1 - 2 max(AUC - 0.5, 0) of a logistic "
                                       "regression telling real training rows from synthetic rows (1: undetectable)"),
    "column_shape_score": ("higher", 1.0, "SDMetrics' Column Shapes: mean over columns of 1 - KS (numeric) or "
                                          "1 - TVD (categorical)"),
    "pair_trend_score": ("higher", 1.0, "SDMetrics' Column Pair Trends: mean over column pairs of "
                                        "1 - |r_real - r_synthetic| / 2 or 1 - TVD of the pair's joint frequencies"),
    "alpha_precision": ("higher", 1.0, "Alaa et al. (2022) alpha-precision, 1 - 2 mean |P(alpha) - alpha|: "
                                       "synthetic rows spread over the real support as real rows do"),
    "beta_recall": ("higher", 1.0, "Alaa et al. (2022) beta-recall, 1 - 2 mean |R(beta) - beta|: the synthetic "
                                   "rows cover the real rows"),
    "dcr_median": ("higher", math.nan, "median distance from a synthetic row to its closest training row; 0 means "
                                       "copies; fresh real rows score the real-data reference"),
    "dcr_p5": ("higher", math.nan, "5th percentile of the same distances"),
    "closer_to_train_share": ("closest", 0.5, "share of synthetic rows closer to a training row than to a holdout "
                                              "row; 0.5 is ideal (no copying), 1.0 copies"),
}

#: metric -> "min" / "max": the ranking :mod:`polydiff.core.benchkit` reads. The two 0.5-ideal metrics
#: (``METRICS[...][0] == "closest"``) are listed as "min" here only because benchkit has no "closest to" ranking.
METRICS_BETTER = {
    "ml_efficiency": "max", "ml_efficiency_sd": "min", "ml_auc": "max", "fidelity_ks_tvd": "min",
    "correlation_diff": "min", "detection_auc": "min", "dcr_median": "max", "dcr_p5": "max",
    "closer_to_train_share": "min", "fit_seconds": "min", "fit_cpu_seconds": "min", "sample_seconds": "min",
    "detection_score": "max",
    "column_shape_score": "max", "pair_trend_score": "max", "alpha_precision": "max", "beta_recall": "max",
}


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


def classifier_name() -> str:
    """The model ML efficiency trains: CatBoost, or scikit-learn's HistGradientBoosting when catboost is absent."""
    try:
        import catboost  # noqa: F401
    except ImportError:
        return "HistGradientBoosting (catboost is not installed)"
    return "CatBoost"


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


def _check_frame(name: str, frame) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) < 1 or frame.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one row and one column, got shape {frame.shape}")


def _check_seeds(seeds) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds: expected a sequence of integer seeds, got {seeds!r}")
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one classifier seed (two or more give ml_efficiency_sd), got ()")
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds: expected non-negative integers, got {seeds!r}")
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"seeds: expected distinct seeds (a repeated seed repeats a score), got {seeds!r}")
    return tuple(int(s) for s in seeds)


def _check_task(task, target: str, train: pd.DataFrame) -> str:
    from .data import task_type

    if task is None:
        return task_type(train[target])
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS} or None (inferred from the target), got {task!r}")
    if task == "regression" and not _is_numeric(train[target]):
        raise ValueError(f"task: 'regression' needs a numeric target; {target!r} has dtype {train[target].dtype}")
    return task


def ml_efficiency(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str | None = None, *,
                  seeds=(0, 1, 2), iterations: int = 500) -> dict:
    """Train on ``train`` (synthetic or real), score on real ``test``: macro-F1 (classification, plus ROC AUC)
    or R^2 (regression); returns {"ml_efficiency", "ml_efficiency_sd", "ml_auc", "ml_note", "ml_classifier"}.
    The sd is NaN for a single seed (there is no spread to report); ``task`` None infers it from the target."""
    _check_frame("train", train)
    _check_frame("test", test)
    for name, frame in (("train", train), ("test", test)):
        if target not in frame.columns:
            raise ValueError(f"target: {target!r} is not a column of {name}")
    missing = [c for c in test.columns if c not in train.columns]
    if missing:
        raise ValueError(f"train: columns {missing} of test are missing")
    seeds = _check_seeds(seeds)
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
        raise ValueError(f"iterations: expected a positive integer, got {iterations!r}")
    task = _check_task(task, target, test)
    classifier = classifier_name()
    result = _ml_efficiency(train, test, target, task, seeds, iterations)
    return {**result, "ml_classifier": classifier}


def _ml_efficiency(train, test, target, task, seeds, iterations) -> dict:
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
            if len(scores) > 1 else math.nan, "ml_auc": float(np.mean(aucs)) if aucs else math.nan, "ml_note": ""}


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


class Evaluation(dict):
    """What :func:`evaluate` returns: ``{metric: value}`` (plus ``ml_note`` and ``ml_classifier`` when ML
    efficiency ran), as earlier versions returned, and

    table: DataFrame with one row per metric and the columns metric, value, better ("higher", "lower",
        "closest" to ideal, "none"), ideal (NaN: none), real_reference (the same metric for real data, computed
        in the same call; NaN when not computed), note.
    classifier: the ML efficiency model that ran (:func:`classifier_name`), or None.
    notes: what a reader must know (overlapping train and test rows, a single seed, a failed metric).

    ``print(result)`` shows the table with the classifier and the notes.
    """

    def __init__(self, values: dict, table: pd.DataFrame, classifier: str | None, notes: list[str]):
        super().__init__(values)
        self.table, self.classifier, self.notes = table, classifier, notes

    def __str__(self) -> str:
        def number(value) -> str:
            if isinstance(value, float) and not math.isfinite(value):
                return "–"
            return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)

        words = {"higher": "higher is better", "lower": "lower is better", "none": "(spread)"}
        rows = [["metric", "synthetic", "real data", "better", "ideal"]]
        for row in self.table.itertuples(index=False):
            better = (f"{number(row.ideal)} is ideal" if row.better == "closest" else words.get(row.better, ""))
            ideal = "" if row.better == "closest" or not math.isfinite(row.ideal) else number(row.ideal)
            rows.append([row.metric, number(row.value), number(row.real_reference), better, ideal])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip() for r in rows]
        if self.classifier:
            lines.append(f"ML efficiency classifier: {self.classifier}")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _row_keys(frame: pd.DataFrame, columns: list) -> np.ndarray:
    """One hash per row over ``columns`` (values compared as text, so 1 and 1.0 or a category and its string
    agree)."""
    text = pd.DataFrame({i: _as_text(frame[c]) for i, c in enumerate(columns)})
    return pd.util.hash_pandas_object(text, index=False).to_numpy()


def _overlap_note(train: pd.DataFrame, test: pd.DataFrame) -> str | None:
    """A warning when the test rows repeat training rows more often than training rows repeat each other (the
    rate a table with few distinct rows shows for a genuine split): the test split is then not held out."""
    columns = list(train.columns)
    train_keys, test_keys = _row_keys(train, columns), _row_keys(test, columns)
    shared = int(np.isin(test_keys, train_keys).sum())
    if not shared:
        return None
    share = shared / len(test_keys)
    natural = float(pd.Series(train_keys).duplicated(keep=False).mean()) if len(train_keys) > 1 else 0.0
    if share <= natural + 0.05:
        return None
    return (f"test: {shared} of {len(test_keys)} test rows ({share:.0%}) are identical to rows of train (training "
            f"rows repeat each other at {natural:.0%}); the test rows are not held out, so ML efficiency and the "
            "closer-to-train share measure memory, not generalisation — evaluate on rows the generator never saw")


def _paper_scores(train: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """The TabSyn / TabDiff papers' scores (:mod:`polydiff.tabular.quality`), fitted on train and synthetic only."""
    from . import quality

    if len(train) < 2 or len(synthetic) < 2:
        return {}
    return {"detection_score": quality.detection_score(train, synthetic),
            "column_shape_score": quality.column_shape_score(train, synthetic),
            "pair_trend_score": quality.pair_trend_score(train, synthetic),
            "alpha_precision": quality.alpha_precision(train, synthetic),
            "beta_recall": quality.beta_recall(train, synthetic)}


def _reference(train, test, target, task, seeds, iterations, ml) -> dict:
    """The real-data reference of every metric: the real test rows scored as if they were the synthetic table."""
    out = {}
    if ml and target is not None:
        out.update(_ml_efficiency(train, test, target, task, seeds, iterations))
    shapes = column_shapes(train, test)
    out["fidelity_ks_tvd"] = float(np.mean(list(shapes.values())))
    out["correlation_diff"] = correlation_diff(train, test)
    out["detection_auc"] = detection_auc(train, test)
    out.update(_paper_scores(train, test))
    out.update(privacy(train, None, test))
    if len(test) >= 4:  # half the test rows as "synthetic", the other half as the holdout
        shuffled = test.sample(frac=1.0, random_state=0)
        half = len(shuffled) // 2
        out["closer_to_train_share"] = privacy(train, shuffled.iloc[half:], shuffled.iloc[:half])[
            "closer_to_train_share"]
    return out


def evaluate(train: pd.DataFrame, test: pd.DataFrame, synthetic: pd.DataFrame, target=None,
             task: str | None = None, *, seeds=(0, 1, 2), iterations: int = 500, holdout_is_synthetic=False,
             ml: bool = True, reference: bool | Mapping = True) -> Evaluation:
    """Every metric of the module docstring for ``synthetic`` against real ``train`` (what the generator saw)
    and real ``test`` (held out). With ``target=None`` (or ``ml=False``) ML efficiency is skipped.

    task: "binary", "multiclass", "regression" or None (inferred from the target). seeds: the classifier seeds
    (at least one; two or more for ``ml_efficiency_sd``). reference: True computes the real-data reference of
    every metric in the same call (about doubling its cost), False skips it, a mapping {metric: value} (e.g.
    an earlier result's real reference, or a benchmark's "real" row) is used as given.
    ``holdout_is_synthetic`` (the "real" reference row, where the synthetic table *is* the test split): the
    closer-to-train share is not defined and is left out, and the reference is the values themselves.

    Raises ValueError naming the argument for a frame that is empty or lacks train's columns, a target that
    is not a column, an unknown task or bad seeds; warns when test repeats train's rows (``Evaluation.notes``).
    """
    for name, frame in (("train", train), ("test", test), ("synthetic", synthetic)):
        _check_frame(name, frame)
    if not isinstance(ml, bool):
        raise ValueError(f"ml: expected True or False, got {ml!r}")
    if not isinstance(reference, (bool, Mapping)):
        raise ValueError(f"reference: expected True, False or a mapping {{metric: value}}, got {reference!r}")
    if target is not None:
        for name, frame in (("train", train), ("test", test), ("synthetic", synthetic)):
            if target not in frame.columns:
                raise ValueError(f"target: {target!r} is not a column of {name}")
    for name, frame in (("test", test), ("synthetic", synthetic)):
        missing = [c for c in train.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: columns {missing} of the real table are missing")
    run_ml = ml and target is not None
    if run_ml:
        seeds = _check_seeds(seeds)
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
            raise ValueError(f"iterations: expected a positive integer, got {iterations!r}")
        task = _check_task(task, target, train)
    elif task is not None and task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS} or None, got {task!r}")
    columns = list(train.columns)
    synthetic, test = synthetic[columns], test[columns]
    notes = []
    overlap = None if holdout_is_synthetic else _overlap_note(train, test)
    if overlap:
        warnings.warn(overlap, UserWarning, stacklevel=2)
        notes.append(overlap)
    out: dict = {}
    classifier = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if run_ml:
            classifier = classifier_name()
            out.update(_ml_efficiency(synthetic, test, target, task, seeds, iterations))
            out["ml_classifier"] = classifier
        shapes = column_shapes(train, synthetic)
        out["fidelity_ks_tvd"] = float(np.mean(list(shapes.values())))
        out["correlation_diff"] = correlation_diff(train, synthetic)
        out["detection_auc"] = detection_auc(train, synthetic)
        out.update(_paper_scores(train, synthetic))
        out.update(privacy(train, None if holdout_is_synthetic else test, synthetic))
        if holdout_is_synthetic:
            real = dict(out)
        elif isinstance(reference, Mapping):
            real = dict(reference)
        elif reference:
            real = _reference(train, test, target, task, seeds, iterations, run_ml)
        else:
            real = {}
    if run_ml and len(seeds) == 1:
        notes.append("ml_efficiency_sd: one classifier seed, so no spread is reported (give two or more seeds)")
    if out.get("ml_note"):
        notes.append(f"ml_efficiency: not computed — {out['ml_note']}")
    rows = []
    for metric, (better, ideal, meaning) in METRICS.items():
        if metric in out:
            reference_value = real.get(metric)
            rows.append({"metric": metric, "value": out[metric], "better": better, "ideal": ideal,
                         "real_reference": math.nan if reference_value is None else float(reference_value),
                         "note": meaning})
    table = pd.DataFrame(rows, columns=["metric", "value", "better", "ideal", "real_reference", "note"])
    return Evaluation(out, table, classifier, notes)
