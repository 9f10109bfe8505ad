"""Evaluation metrics against exact answers: identical tables, known distances, copying generators, a
single-class synthetic table."""

import math

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
