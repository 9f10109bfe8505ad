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
