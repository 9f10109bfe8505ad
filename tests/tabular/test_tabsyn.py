"""TabSyn: the table API (columns, dtypes, levels, seeds, save/load) and that it learns a joint law."""

import pandas as pd
import pytest
import torch

from polydiff.tabular.tabsyn import TabSyn, TabSynConfig

from ._latent_models import dependent_frame, joint_quality

TINY = dict(vae_steps=150, steps=200, hidden=(64, 64), batch_size=256, vae_batch_size=256, sample_steps=10)


@pytest.fixture(scope="module")
def fitted():
    df = dependent_frame()
    return TabSyn(**TINY).fit(df, target="label"), df


def test_sample_has_the_frame_columns_dtypes_and_levels(fitted):
    model, df = fitted
    synthetic = model.sample(300, seed=0)
    assert list(synthetic.columns) == list(df.columns)
    assert synthetic.dtypes.equals(df.dtypes)
    assert set(synthetic.city) <= {"Oslo", "Rome"} and set(synthetic.k) <= {0, 1, 2}
    assert list(synthetic.label.cat.categories) == list(df.label.cat.categories)


def test_learns_the_joint_law(fitted):
    correlation, agreement = joint_quality(fitted[0].sample(500, seed=1))
    assert correlation > 0.8 and agreement > 0.8, (correlation, agreement)


def test_seeded_and_round_trips(fitted, tmp_path):
    model, _ = fitted
    pd.testing.assert_frame_equal(model.sample(50, seed=3), model.sample(50, seed=3))
    assert not model.sample(50, seed=3).equals(model.sample(50, seed=4))
    loaded = TabSyn.from_pretrained(model.save_pretrained(tmp_path / "m"))
    pd.testing.assert_frame_equal(loaded.sample(50, seed=3), model.sample(50, seed=3))
    assert loaded.config == model.config


def test_the_score_model_trains_through_the_core_trainer_with_paper_sampler(fitted):
    model, _ = fitted
    assert model.history == {"vae_steps": 150, "steps": 200}
    assert TabSynConfig().solver == "heun" and TabSynConfig().sample_steps == 50 and TabSynConfig().d_token == 4
    assert not any(p.requires_grad for p in model.vae.parameters())
    assert bool(torch.isfinite(model.latent_mean).all()) and bool((model.latent_scale > 0).all())


def test_numeric_only_and_categorical_only_tables():
    df = dependent_frame(120)
    for columns in (["a", "b"], ["label", "city"]):
        out = TabSyn(**{**TINY, "vae_steps": 5, "steps": 5}).fit(df[columns]).sample(20, seed=0)
        assert list(out.columns) == columns and len(out) == 20
