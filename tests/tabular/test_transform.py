"""The column spec and transformer: exact round trips of dtypes, levels, order, NaN; detection vs explicit spec;
the tie-aware quantile transform against its closed form."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import ndtri

from polydiff.tabular.transform import QuantileNormal, TableTransformer, restore_dtype


def mixed_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n), categories=["S", "M", "L"], ordered=True),
        "income": np.round(rng.lognormal(3, 1, n), 2),
        "count": rng.integers(0, 7, n).astype(np.int64),
        "flag": rng.random(n) < 0.3,
        "city": rng.choice(["Oslo", "Rome", "Lima", "Pune"], n).astype(object),
        "small": rng.integers(0, 100, n).astype(np.int32),
        "target": rng.choice(["yes", "no"], n).astype(object),
    })


def test_round_trip_restores_columns_dtypes_levels_exactly():
    df = mixed_frame()
    transformer = TableTransformer(target="target").fit(df)
    back = transformer.inverse_transform(*transformer.transform(df))
    pd.testing.assert_frame_equal(back, df)
    assert list(back["size"].cat.categories) == ["S", "M", "L"] and back["size"].cat.ordered


def test_round_trip_with_missing_values_as_category():
    df = mixed_frame()
    df.loc[::7, "income"] = np.nan
    df.loc[::5, "city"] = np.nan
    transformer = TableTransformer(nan="category").fit(df)
    assert transformer.num_classes[-1] == 2  # the income missing indicator
    back = transformer.inverse_transform(*transformer.transform(df))
    pd.testing.assert_frame_equal(back, df)


def test_impute_fills_missing_values():
    df = mixed_frame()
    df.loc[::7, "income"] = np.nan
    df.loc[::5, "city"] = np.nan
    transformer = TableTransformer(nan="impute").fit(df)
    back = transformer.inverse_transform(*transformer.transform(df))
    assert not back.isna().any().any()
    assert (back.loc[::7, "income"] == df["income"].median()).all()
    assert (back.loc[::5, "city"] == df["city"].mode()[0]).all()


def test_explicit_spec_wins_over_dtype_detection():
    df = mixed_frame()
    transformer = TableTransformer(categorical=["count"], discrete=["income"]).fit(df.assign(income=df["count"] * 1.0))
    assert transformer.specs["count"].kind == "categorical"
    assert transformer.specs["income"].kind == "discrete"
    assert transformer.specs["city"].kind == "categorical"  # not listed: detected from its dtype
    with pytest.raises(ValueError, match="both"):
        TableTransformer(categorical=["count"], discrete=["count"]).fit(df)
    with pytest.raises(ValueError, match="not in the DataFrame"):
        TableTransformer(categorical=["nope"]).fit(df)


def test_infinite_values_raise_naming_the_column():
    df = mixed_frame().assign(income=lambda d: d["income"].where(d.index != 3, np.inf))
    with pytest.raises(ValueError, match="'income'.*infinite"):
        TableTransformer().fit(df)


def test_constant_and_single_row_columns_are_kept_aside():
    df = mixed_frame().assign(one=5, word="same", empty=np.nan)
    transformer = TableTransformer().fit(df)
    assert {transformer.specs[c].kind for c in ("one", "word", "empty")} == {"constant"}
    back = transformer.inverse_transform(*transformer.transform(df))
    pd.testing.assert_frame_equal(back, df)
    single = df.iloc[:1].reset_index(drop=True)
    transformer = TableTransformer().fit(single)
    assert all(spec.kind == "constant" for spec in transformer.specs.values())
    pd.testing.assert_frame_equal(transformer.inverse_transform(*transformer.transform(single)), single)


def test_unseen_level_raises_listing_known_levels():
    df = mixed_frame()
    transformer = TableTransformer(target="target").fit(df)
    with pytest.raises(ValueError, match="unseen.*known levels"):
        transformer.label_codes(["maybe"])


def test_quantile_normal_scores_are_mid_cdf_normal_quantiles():
    values = np.array([5.0, 1.0, 1.0, 1.0, 2.0, 9.0])
    quantile = QuantileNormal.fit(values, discrete=False)
    # sorted: 1,1,1,2,5,9 -> mid-CDF 1.5/6, 3.5/6, 4.5/6, 5.5/6
    np.testing.assert_allclose(quantile.transform(np.array([1.0, 2.0, 5.0, 9.0])),
                               ndtri(np.array([1.5, 3.5, 4.5, 5.5]) / 6))
    np.testing.assert_allclose(quantile.inverse(quantile.transform(values)), values)


def test_discrete_inverse_keeps_level_frequencies():
    rng = np.random.default_rng(0)
    probs = np.array([0.5, 0.2, 0.2, 0.1])
    values = rng.choice([1, 2, 3, 7], size=5000, p=probs).astype(float)
    quantile = QuantileNormal.fit(values, discrete=True)
    drawn = quantile.inverse(rng.standard_normal(20000))
    observed = np.array([(drawn == v).sum() for v in (1, 2, 3, 7)])
    empirical = np.array([(values == v).mean() for v in (1, 2, 3, 7)])
    assert observed.sum() == 20000
    assert stats.chisquare(observed, empirical * 20000).pvalue > 1e-3


def test_continuous_inverse_keeps_an_atom():
    """A continuous column with 10 % zeros: normal scores mapped back reproduce the zero share exactly."""
    rng = np.random.default_rng(1)
    values = np.where(rng.random(5000) < 0.1, 0.0, rng.lognormal(0, 1, 5000))
    quantile = QuantileNormal.fit(values, discrete=True)  # > SNAP_LIMIT values: the continuous inverse
    assert not quantile.discrete and quantile.atoms.size == 1
    drawn = quantile.inverse(rng.standard_normal(40000))
    share = (drawn == 0).mean()
    assert abs(share - (values == 0).mean()) < 4 * np.sqrt(0.1 * 0.9 / 40000)
    assert (drawn > 0).mean() > 0.85 and np.unique(drawn[drawn > 0]).size > 30000  # not copies


def test_target_as_label_false_keeps_the_target_in_the_multinomial_block():
    """What TabDDPM(conditional=False) fits: the categorical target is one more diffused column, not y."""
    df = mixed_frame()
    transformer = TableTransformer(target="target", target_as_label=False).fit(df)
    assert transformer.label_levels is None and "target" in transformer.categorical_columns
    x_num, x_cat, y = transformer.transform(df)
    assert y is None and x_cat.shape[1] == len(transformer.categorical_columns)
    pd.testing.assert_frame_equal(transformer.inverse_transform(x_num, x_cat, y), df)


def test_a_missing_value_never_seen_when_fitting_is_refused_not_mapped_to_the_first_level():
    """Regression: a NaN in a categorical column fitted without missing values became its first level."""
    df = mixed_frame()
    transformer = TableTransformer(target="target").fit(df)
    with pytest.raises(ValueError, match="df: column 'city' has a missing value"):
        transformer.transform(df.assign(city=df["city"].where(df.index != 0, None)))
    with pytest.raises(ValueError, match="conditions: column 'target' has a missing value"):
        transformer.label_codes([None])
    imputing = TableTransformer(target="target", nan="impute").fit(df)  # impute mode fills the most frequent
    codes = imputing._codes([None], imputing.specs["city"])
    assert imputing.specs["city"].levels[codes[0]] == df["city"].mode()[0]


def _string_dtypes():
    """pandas' string dtypes on the pandas that runs: ``StringDtype()`` ("string", missing = pd.NA) and, from
    pandas 2.3, the NaN-valued one pandas 3 gives every string column ("str")."""
    dtypes = [pd.StringDtype()]
    try:
        dtypes.append(pd.StringDtype(na_value=np.nan))
    except TypeError:  # pandas < 2.3
        pass
    return dtypes


@pytest.mark.parametrize("dtype", _string_dtypes(), ids=str)
def test_string_dtype_columns_come_back_in_their_dtype_with_missing_values_missing(dtype):
    """Regression: under pandas 3 a constant string column (dtype "str") came back as object."""
    df = mixed_frame(60).assign(word="same")
    df["city"] = df["city"].where(df.index % 4 != 0, None)
    df = df.astype({"city": dtype, "word": dtype, "target": dtype})
    transformer = TableTransformer(target="target").fit(df)
    assert transformer.specs["word"].kind == "constant" and transformer.specs["city"].levels[-1] is None
    pd.testing.assert_frame_equal(transformer.inverse_transform(*transformer.transform(df)), df)
    config, arrays = transformer.state()  # the dtype survives the saved JSON spec
    loaded = TableTransformer.from_state(json.loads(json.dumps(config)), arrays)
    pd.testing.assert_frame_equal(loaded.inverse_transform(*loaded.transform(df)), df)


def test_a_str_dtype_recorded_by_pandas_3_keeps_missing_values_missing_on_any_pandas():
    """pandas 2 reads the dtype name "str" as Python's str: astype("str") writes NaN as the text "nan"."""
    back = restore_dtype(pd.Series(["a", np.nan, "b"], dtype=object), "str")
    assert back.isna().tolist() == [False, True, False] and back[0] == "a" and back[2] == "b"
    assert restore_dtype(pd.Series(["a", np.nan], dtype=object), "object").dtype == object
    assert restore_dtype(pd.Series(["a", None], dtype=object), "string").dtype == pd.StringDtype()
    # a dtype that cannot hold the values keeps the series as it is, rather than failing the whole sample
    assert restore_dtype(pd.Series([1, np.nan], dtype=object), "int64").dtype == object
