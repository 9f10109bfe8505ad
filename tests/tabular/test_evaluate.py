"""Evaluation metrics against exact answers: identical tables, known distances, copying generators, a
single-class synthetic table."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from polydiff.tabular.evaluate import (
    association_matrix,
    column_shapes,
    correlation_diff,
    evaluate,
    ml_efficiency,
    privacy,
)


def table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return pd.DataFrame({"x": x, "z": 2 * x + rng.standard_normal(n) * 0.1,
                         "c": np.where(x > 0, "pos", "neg").astype(object),
                         "y": np.where(x + rng.standard_normal(n) * 0.3 > 0, "yes", "no").astype(object)})


def test_column_shapes_are_ks_and_tvd():
    real = pd.DataFrame({"num": [1.0, 2.0, 3.0, 4.0], "cat": ["a", "a", "b", "b"]})
    synthetic = pd.DataFrame({"num": [3.0, 4.0, 5.0, 6.0], "cat": ["a", "b", "b", "b"]})
    shapes = column_shapes(real, synthetic)
    assert shapes["num"] == pytest.approx(0.5)   # KS: sup |F - G| at 2 or 3
    assert shapes["cat"] == pytest.approx(0.25)  # TVD: 0.5 |0.5 - 0.25| + 0.5 |0.5 - 0.75|
    assert column_shapes(real, real) == {"num": 0.0, "cat": 0.0}


def test_association_matrix_known_values_and_zero_difference_for_identical_tables():
    df = table()
    matrix = association_matrix(df, df)
    assert matrix[0, 1] == pytest.approx(np.corrcoef(df["x"], df["z"])[0, 1])
    assert matrix[2, 3] == pytest.approx(matrix[3, 2]) and 0 < matrix[2, 3] <= 1
    assert correlation_diff(df, df) == 0.0


def test_privacy_of_a_copy_and_of_a_fresh_sample():
    train, holdout = table(seed=0), table(seed=1)
    copied = privacy(train, holdout, train)
    assert copied["dcr_median"] == 0.0 and copied["dcr_p5"] == 0.0
    assert copied["closer_to_train_share"] > 0.9
    fresh = privacy(train, holdout, table(seed=2))
    assert fresh["dcr_median"] > 0 and 0.3 < fresh["closer_to_train_share"] < 0.7


def test_single_class_synthetic_table_is_reported_not_a_crash():
    real = table()
    synthetic = real.assign(y="yes")
    result = ml_efficiency(synthetic, real, "y", "binary", seeds=(0,), iterations=20)
    assert math.isnan(result["ml_efficiency"]) and "single class" in result["ml_note"]


def test_evaluate_real_on_itself_is_near_perfect():
    train, test = table(seed=0), table(seed=1)
    result = evaluate(train, test, train.sample(frac=1.0, random_state=0), "y", "binary", seeds=(0, 1),
                      iterations=30)
    assert result["fidelity_ks_tvd"] == 0.0 and result["correlation_diff"] < 1e-12
    assert result["ml_efficiency"] > 0.8 and result["ml_efficiency_sd"] >= 0
    assert result["detection_auc"] < 0.65


def test_missing_synthetic_column_raises():
    with pytest.raises(ValueError, match="missing"):
        evaluate(table(), table(), table().drop(columns="z"), "y")


def test_evaluate_reports_direction_ideal_real_reference_and_classifier():
    """Issue 9 item 6: every metric with which way is better, its ideal and the real-data reference of the same
    call; the classifier that ran is named; the dict keys of earlier versions are still there."""
    from polydiff.tabular.evaluate import METRICS, Evaluation, classifier_name

    train, test = table(seed=0), table(seed=1)
    result = evaluate(train, test, table(seed=2), "y", seeds=(0, 1), iterations=30)
    assert isinstance(result, Evaluation) and result.classifier == classifier_name() == result["ml_classifier"]
    assert result.classifier in ("CatBoost", "HistGradientBoosting (catboost is not installed)")
    table_ = result.table.set_index("metric")
    assert list(result.table.columns) == ["metric", "value", "better", "ideal", "real_reference", "note"]
    assert set(table_.index) == set(METRICS) and not result.notes
    for metric, value in result.items():
        if metric in table_.index:
            assert table_.loc[metric, "value"] == value
    assert table_.loc["detection_auc", "better"] == table_.loc["closer_to_train_share", "better"] == "closest"
    assert table_.loc["detection_auc", "ideal"] == table_.loc["closer_to_train_share", "ideal"] == 0.5
    assert table_.loc["ml_efficiency", "better"] == "higher" and table_.loc["fidelity_ks_tvd", "better"] == "lower"
    real = ml_efficiency(train, test, "y", "binary", seeds=(0, 1), iterations=30)
    assert table_.loc["ml_efficiency", "real_reference"] == pytest.approx(real["ml_efficiency"])
    assert table_["real_reference"].notna().all()
    text = str(result)
    assert "0.5 is ideal" in text and "higher is better" in text and result.classifier in text
    assert "real data" in text.splitlines()[0]


def test_evaluate_warns_when_test_rows_are_training_rows():
    """Issue 9 item 1: the README's flow trained on every row and tested on a split of the same file."""
    train = table(seed=0)
    with pytest.warns(UserWarning, match=r"test: 100 of 100 test rows \(100%\) are identical to rows of train"):
        result = evaluate(train, train.iloc[:100], table(seed=2), "y", seeds=(0,), iterations=5, reference=False)
    assert any("not held out" in note for note in result.notes)
    # a genuine split of a table with few distinct rows repeats training rows naturally: no warning
    rng = np.random.default_rng(0)
    coarse = pd.DataFrame({"a": rng.choice(["u", "v"], 400), "b": rng.choice(["p", "q"], 400)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(coarse.iloc[:300], coarse.iloc[300:], coarse.iloc[:300], reference=False)


def test_one_seed_reports_no_spread_with_a_note():
    """Regression: one seed reported sd 0.0 and no seeds NaN, both without a word."""
    train, test = table(seed=0), table(seed=1)
    result = evaluate(train, test, table(seed=2), "y", seeds=(0,), iterations=10, reference=False)
    assert math.isnan(result["ml_efficiency_sd"]) and math.isfinite(result["ml_efficiency"])
    assert any("one classifier seed" in note for note in result.notes)


def test_reference_can_be_given_or_skipped():
    train, test = table(seed=0), table(seed=1)
    skipped = evaluate(train, test, table(seed=2), None, reference=False)
    assert skipped.table["real_reference"].isna().all() and skipped.classifier is None
    given = evaluate(train, test, table(seed=2), None, reference={"fidelity_ks_tvd": 0.25})
    assert given.table.set_index("metric").loc["fidelity_ks_tvd", "real_reference"] == 0.25


# ------------------------------------------------------------------------ the TabSyn / TabDiff papers' scores

def _gaussians(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.standard_normal(n) + shift, "b": rng.standard_normal(n)})


def test_alpha_precision_and_beta_recall_known_answers():
    from polydiff.tabular.quality import alpha_precision, beta_recall

    real = _gaussians(2000, 0)
    # a copy: P(alpha) = alpha and R(beta) = beta at every grid point (up to quantile interpolation)
    assert alpha_precision(real, real) == pytest.approx(1.0, abs=1e-3)
    assert beta_recall(real, real) == pytest.approx(1.0, abs=1e-3)
    # a fresh sample of the same law: close to 1
    assert alpha_precision(real, _gaussians(2000, 1)) > 0.95
    assert beta_recall(real, _gaussians(2000, 1)) > 0.9
    # every synthetic row at the real centre: P(alpha) = 1 everywhere, a curve symmetric to the diagonal: 0
    centre = pd.DataFrame({"a": np.full(2000, real.a.mean()), "b": np.full(2000, real.b.mean())})
    assert alpha_precision(real, centre) == pytest.approx(0.0, abs=1e-12)
    # every synthetic row far outside: P = R = 0 everywhere: exactly 0
    assert alpha_precision(real, _gaussians(2000, 1, shift=50.0)) == pytest.approx(0.0, abs=1e-12)
    assert beta_recall(real, _gaussians(2000, 1, shift=50.0)) == pytest.approx(0.0, abs=1e-12)
    # mode collapse onto half the support: precision stays high, recall drops
    half = real[real.a > 0]
    assert beta_recall(real, half) < 0.8 < alpha_precision(real, half) + 0.1


def test_detection_score_is_sdmetrics_formula():
    from polydiff.tabular.quality import detection_score

    real = _gaussians(1000, 0)
    assert detection_score(real, real) == 1.0  # AUC 0.5 exactly: the same rows on both sides
    assert detection_score(real, _gaussians(1000, 1, shift=20.0)) == 0.0  # AUC 1: 1 - 2 * 0.5
    assert detection_score(real, _gaussians(1000, 1)) > 0.85


def test_column_shape_and_pair_trend_known_answers():
    from polydiff.tabular.quality import column_shape_score, pair_trend_score

    x = np.linspace(-1, 1, 400)
    real = pd.DataFrame({"x": x, "y": x, "c": np.where(x > 0, "p", "n"), "d": np.where(x > 0, "p", "n")})
    assert column_shape_score(real, real) == 1.0 and pair_trend_score(real, real) == 1.0
    # y = -x: Pearson r goes from 1 to -1, 1 - |1 - (-1)| / 2 = 0; the marginal of y is unchanged
    flipped = real.assign(y=-x)
    assert pair_trend_score(real[["x", "y"]], flipped[["x", "y"]]) == pytest.approx(0.0)
    assert column_shape_score(real, flipped) == pytest.approx(1.0, abs=0.01)
    # d swapped against c: the joint (c, d) moves all its mass, TVD 1, score 0; marginals unchanged
    swapped = real.assign(d=np.where(x > 0, "n", "p"))
    assert pair_trend_score(real[["c", "d"]], swapped[["c", "d"]]) == 0.0
    assert column_shape_score(real, swapped) == 1.0
    # a mixed pair: x binned at its deciles against d; every (bin, d) pair changes, so the joint moves all its mass
    assert pair_trend_score(real[["x", "d"]], swapped[["x", "d"]]) == pytest.approx(0.0, abs=1e-12)
    # the table score is the mean over the 6 pairs: (x,y)=1, (c,d)=0, (x,c)=1, (y,c)=1, (x,d)=0, (y,d)=0
    assert pair_trend_score(real, swapped) == pytest.approx(3 / 6)


def test_evaluate_reports_the_paper_scores_fitted_on_train_only(monkeypatch):
    from polydiff.tabular import quality

    train, test = table(300, 0), table(200, 1)
    seen = []
    real_detection = quality.detection_score

    def spy(real, synthetic, **kw):
        seen.append(len(real))
        return real_detection(real, synthetic, **kw)

    monkeypatch.setattr(quality, "detection_score", spy)
    result = evaluate(train, test, table(300, 2), "y", seeds=(0,), iterations=20, reference=False)
    for metric in ("detection_score", "column_shape_score", "pair_trend_score", "alpha_precision", "beta_recall"):
        assert 0.5 < result[metric] <= 1.0, (metric, result[metric])
        row = result.table.set_index("metric").loc[metric]
        assert row.better == "higher" and row.ideal == 1.0
    assert result["column_shape_score"] == pytest.approx(1 - result["fidelity_ks_tvd"])
    assert seen == [300]  # the real side is the training split, never the test split


@pytest.mark.parametrize("name", ["alpha_precision", "beta_recall", "detection_score", "column_shape_score",
                                  "pair_trend_score"])
def test_paper_scores_refuse_bad_frames_naming_them(name):
    from polydiff.tabular import quality

    score = getattr(quality, name)
    real = _gaussians(50, 0)
    with pytest.raises(ValueError, match="^real:"):
        score(real.to_numpy(), real)
    with pytest.raises(ValueError, match="^synthetic:"):
        score(real, real.iloc[:1])
    with pytest.raises(ValueError, match=r"^synthetic: columns \['b'\]"):
        score(real, real.drop(columns="b"))
