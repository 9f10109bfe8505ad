"""What TabSyn and TabDiff both promise, checked on each (fixtures in conftest.py): the table API (columns, dtypes,
levels, seeds, save/load), that they learn a joint law, and numeric-only and categorical-only tables."""

import pandas as pd


def test_sample_has_the_frame_columns_dtypes_and_levels(fitted_latent_model):
    model, df = fitted_latent_model
    synthetic = model.sample(300, seed=0)
    assert list(synthetic.columns) == list(df.columns)
    assert synthetic.dtypes.equals(df.dtypes)
    assert set(synthetic.city) <= {"Oslo", "Rome"} and set(synthetic.k) <= {0, 1, 2}
    assert list(synthetic.label.cat.categories) == list(df.label.cat.categories)


def test_learns_the_joint_law(fitted_latent_model, joint_quality):
    correlation, agreement = joint_quality(fitted_latent_model[0].sample(500, seed=1))
    assert correlation > 0.8 and agreement > 0.8, (correlation, agreement)


def test_seeded_and_round_trips(fitted_latent_model, latent_model, tmp_path):
    model, _ = fitted_latent_model
    cls, _ = latent_model
    pd.testing.assert_frame_equal(model.sample(50, seed=3), model.sample(50, seed=3))
    assert not model.sample(50, seed=3).equals(model.sample(50, seed=4))
    loaded = cls.from_pretrained(model.save_pretrained(tmp_path / "m"))
    pd.testing.assert_frame_equal(loaded.sample(50, seed=3), model.sample(50, seed=3))
    assert loaded.config == model.config


def test_numeric_only_and_categorical_only_tables(latent_model, dependent_frame):
    cls, tiny = latent_model
    df = dependent_frame(120)
    budget = {**tiny, "steps": 5, **({"vae_steps": 5} if "vae_steps" in tiny else {})}
    for columns in (["a", "b"], ["label", "city"]):
        out = cls(**budget).fit(df[columns]).sample(20, seed=0)
        assert list(out.columns) == columns and len(out) == 20
