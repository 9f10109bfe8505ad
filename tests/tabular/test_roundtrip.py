"""Property tests (hypothesis): generated frames — int, float, bool, category and object columns, missing values,
ids beyond 2**53, mixed and tuple levels, odd column names — round-trip exactly through the transformer and its
saved state, and through TabDDPM's fit -> save -> load -> sample with their column labels, dtypes and levels."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polydiff.tabular import TabDDPM
from polydiff.tabular.transform import TableTransformer

TINY = dict(steps=2, batch_size=16, hidden=(8,), time_embedding_dim=8, sample_steps=2, progress=False)
NAMES = ["a", "with space", "ünïcode", "", "0", 0, 1, -5, 2.5, None, ("t", 1), ("t", "u")]


def _column(kind: str, rows: int):
    """A strategy for one column of ``kind`` with ``rows`` values."""
    def lists(elements):
        return st.lists(elements, min_size=rows, max_size=rows)

    if kind == "int":
        return lists(st.integers(-1000, 1000)).map(lambda v: pd.Series(v, dtype=np.int64))
    if kind == "id":  # beyond 2**53: float64 would merge neighbours
        return lists(st.integers(0, 10**6)).map(lambda v: pd.Series(np.int64(2**60) + np.array(v, np.int64)))
    if kind == "nullable":
        return lists(st.one_of(st.none(), st.integers(-50, 50))).map(lambda v: pd.Series(v, dtype="Int64"))
    if kind == "float":
        value = st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 3))
        return lists(st.one_of(value, st.just(float("nan")))).map(lambda v: pd.Series(v, dtype=np.float64))
    if kind == "bool":
        return lists(st.booleans()).map(lambda v: pd.Series(v, dtype=bool))
    if kind == "category":
        return st.tuples(lists(st.sampled_from(["lo", "mid", "hi"])), st.booleans()).map(
            lambda a: pd.Series(pd.Categorical(a[0], categories=["hi", "mid", "lo"], ordered=a[1])))
    if kind == "text":
        return lists(st.one_of(st.none(), st.sampled_from(["x", "y", "z z", "ü"]))).map(
            lambda v: pd.Series(v, dtype=object))
    # "mixed": an object column whose levels Python would merge (True == 1) or unpack (tuples)
    return lists(st.sampled_from([True, 1, False, 0, "s", (1, 2), ("p", None)])).map(
        lambda v: pd.Series(v, dtype=object))


KINDS = ["int", "id", "nullable", "float", "bool", "category", "text", "mixed"]


@st.composite
def frames(draw, multi_index=False):
    rows = draw(st.integers(1, 10))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    if multi_index:
        names = [("g", i) for i in range(len(kinds))]
    else:
        names = draw(st.lists(st.sampled_from(NAMES), min_size=len(kinds), max_size=len(kinds),
                              unique_by=lambda name: (type(name), name)))
    frame = pd.concat([draw(_column(kind, rows)) for kind in kinds], axis=1, ignore_index=True)
    if multi_index:
        frame.columns = pd.MultiIndex.from_tuples(names, names=["group", "index"])
    else:
        frame.columns = pd.Index(names, dtype=object, tupleize_cols=False)
    return frame


def _same_frame(out: pd.DataFrame, df: pd.DataFrame) -> None:
    pd.testing.assert_index_equal(out.columns, df.columns, exact=False)
    assert [type(c) for c in out.columns] == [type(c) for c in df.columns]
    assert list(out.dtypes) == list(df.dtypes)


@given(frames())
def test_transformer_round_trips_exactly_also_through_its_saved_state(df):
    transformer = TableTransformer().fit(df)
    back = transformer.inverse_transform(*transformer.transform(df))
    pd.testing.assert_frame_equal(back, df, check_exact=True, check_column_type=False)
    _same_frame(back, df)
    for column in df.columns:
        if df[column].dtype == object:  # True stays a bool, 1 an int, a tuple a tuple
            assert [type(v) for v in back[column].dropna()] == [type(v) for v in df[column].dropna()]
    config, arrays = transformer.state()
    config = json.loads(json.dumps(config, allow_nan=False))
    loaded = TableTransformer.from_state(config, arrays)
    pd.testing.assert_frame_equal(loaded.inverse_transform(*loaded.transform(df)), df, check_exact=True,
                                  check_column_type=False)


def _levels(series: pd.Series) -> set:
    return {(type(v), v) for v in series.dropna()}


@settings(max_examples=12)
@given(df=st.one_of(frames(), frames(multi_index=True)))
def test_fit_save_load_sample_keeps_labels_dtypes_and_levels(df, tmp_path_factory):
    folder = tmp_path_factory.mktemp("roundtrip")
    model = TabDDPM(**TINY).fit(df)
    model.save_pretrained(folder)
    loaded = TabDDPM.from_pretrained(folder)
    out = loaded.sample(6, seed=0)
    pd.testing.assert_frame_equal(out, model.sample(6, seed=0))
    _same_frame(out, df)
    for j in range(df.shape[1]):
        real, synthetic = df.iloc[:, j], out.iloc[:, j]
        if isinstance(real.dtype, pd.CategoricalDtype):  # every category is a level, used or not
            assert list(synthetic.cat.categories) == list(real.cat.categories)
            assert synthetic.cat.ordered == real.cat.ordered
        elif real.dtype == np.float64:
            values = synthetic.dropna()
            assert values.between(real.min(), real.max()).all()
        else:  # integers (few distinct values here), ids, bools, categories, objects: observed values only
            assert _levels(synthetic) <= _levels(real)
        if not real.isna().any():
            assert not synthetic.isna().any()


def test_ids_beyond_2_53_are_exact_and_true_stays_apart_from_1():
    """The two regressions behind the property test, written out: float64 merged 2**60 + 1 into 2**60."""
    df = pd.DataFrame({"id": np.int64(2**60) + np.arange(6, dtype=np.int64),
                       "mixed": pd.Series([True, 1, 1, True, 0, False], dtype=object)})
    transformer = TableTransformer().fit(df)
    back = transformer.inverse_transform(*transformer.transform(df))
    assert back["id"].tolist() == df["id"].tolist()
    assert [type(v) for v in back["mixed"]] == [bool, int, int, bool, int, bool]
    levels = transformer.specs["mixed"].levels  # sorted by value, first-seen order among equals
    assert [(type(v), v) for v in levels] == [(int, 0), (bool, False), (bool, True), (int, 1)]


@pytest.mark.parametrize("names", [[0, 1, 2], [None, "b", 3], [("a", "x"), ("a", "y"), ("b", "x")]])
def test_column_labels_come_back_unchanged(names):
    df = pd.DataFrame(np.arange(12.0).reshape(4, 3))
    if isinstance(names[0], tuple):
        df.columns = pd.MultiIndex.from_tuples(names)
    else:
        df.columns = pd.Index(names, dtype=object)
    transformer = TableTransformer().fit(df)
    back = transformer.inverse_transform(*transformer.transform(df))
    assert list(back.columns) == list(df.columns)
    assert isinstance(back.columns, pd.MultiIndex) == isinstance(df.columns, pd.MultiIndex)
