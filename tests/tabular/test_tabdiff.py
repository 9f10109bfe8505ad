"""TabDiff: the table API (columns, dtypes, levels, seeds, save/load), that it learns a joint law, and that its
per-column schedules are learned (or held fixed when asked)."""

import pandas as pd
import pytest
import torch

from polydiff.tabular.tabdiff import TabDiff, TabDiffConfig

from ._latent_models import dependent_frame, joint_quality

TINY = dict(steps=300, hidden=(64, 64), batch_size=256, sample_steps=20)


@pytest.fixture(scope="module")
def fitted():
    df = dependent_frame()
    return TabDiff(**TINY).fit(df, target="label"), df


def test_sample_has_the_frame_columns_dtypes_and_levels(fitted):
    model, df = fitted
    synthetic = model.sample(300, seed=0)
    assert list(synthetic.columns) == list(df.columns)
    assert synthetic.dtypes.equals(df.dtypes)
    assert set(synthetic.city) <= {"Oslo", "Rome"} and set(synthetic.k) <= {0, 1, 2}


def test_learns_the_joint_law(fitted):
    correlation, agreement = joint_quality(fitted[0].sample(500, seed=1))
    assert correlation > 0.8 and agreement > 0.8, (correlation, agreement)


def test_seeded_and_round_trips(fitted, tmp_path):
    model, _ = fitted
    pd.testing.assert_frame_equal(model.sample(50, seed=3), model.sample(50, seed=3))
    assert not model.sample(50, seed=3).equals(model.sample(50, seed=4))
    loaded = TabDiff.from_pretrained(model.save_pretrained(tmp_path / "m"))
    pd.testing.assert_frame_equal(loaded.sample(50, seed=3), model.sample(50, seed=3))
    assert torch.equal(loaded.network.sigma.rho, model.network.sigma.rho)


def test_schedules_are_learned_per_column_or_fixed(fitted):
    model, _ = fitted
    rho, k = model.network.sigma.rho, model.network.masking.k
    assert rho.shape == (3,) and k.shape == (2,)  # a, b, k (an integer column is numeric); label, city
    assert not torch.allclose(rho, torch.full_like(rho, 7.0)) and not torch.allclose(k, torch.ones_like(k))
    fixed = TabDiff(**{**TINY, "steps": 20, "learn_schedules": False}).fit(dependent_frame(100), target="label")
    assert torch.allclose(fixed.network.sigma.rho, torch.full((3,), 7.0))
    assert TabDiffConfig().sample_steps == 50 and TabDiffConfig().sigma_max == 80.0


def test_numeric_only_and_categorical_only_tables():
    df = dependent_frame(120)
    for columns in (["a", "b"], ["label", "city"]):
        out = TabDiff(**{**TINY, "steps": 5}).fit(df[columns]).sample(20, seed=0)
        assert list(out.columns) == columns and len(out) == 20
