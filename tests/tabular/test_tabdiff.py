"""TabDiff's own checks: its per-column schedules are learned (or held fixed when asked) and survive save/load;
the whitening of its numerical scores.
The API every table model keeps is in test_latent_models.py (fixtures: conftest.py)."""

import dataclasses

import pytest
import torch

from polydiff.tabular.tabdiff import TabDiff, TabDiffConfig


def test_schedules_are_learned_per_column_or_fixed(fitted_tabdiff, dependent_frame):
    model, _ = fitted_tabdiff
    rho, k = model.network.sigma.rho, model.network.masking.k
    assert rho.shape == (3,) and k.shape == (2,)  # a, b, k (an integer column is numeric); label, city
    assert not torch.allclose(rho, torch.full_like(rho, 7.0)) and not torch.allclose(k, torch.ones_like(k))
    fixed = TabDiff(dataclasses.replace(model.config, steps=20, learn_schedules=False))
    fixed.fit(dependent_frame(100), target="label")
    assert torch.allclose(fixed.network.sigma.rho, torch.full((3,), 7.0))
    assert TabDiffConfig().sample_steps == 50 and TabDiffConfig().sigma_max == 80.0


def test_the_learned_schedules_survive_save_and_load(fitted_tabdiff, tmp_path):
    model, _ = fitted_tabdiff
    loaded = TabDiff.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert torch.equal(loaded.network.sigma.rho, model.network.sigma.rho)
    assert torch.equal(loaded.network.masking.k, model.network.masking.k)


def test_churn_is_the_papers_stochastic_sampler_and_survives_save_and_load(fitted_tabdiff, tmp_path):
    model, _ = fitted_tabdiff
    plain = model.sample(200, seed=0)
    stochastic = TabDiff.from_pretrained(model.save_pretrained(tmp_path / "m"))
    stochastic.config = dataclasses.replace(stochastic.config, churn=1.0)
    assert TabDiff.from_pretrained(stochastic.save_pretrained(tmp_path / "s")).config.churn == 1.0
    churned = stochastic.sample(200, seed=0)
    assert list(churned.columns) == list(plain.columns) and not churned.equals(plain)
    assert churned.equals(stochastic.sample(200, seed=0))  # still seeded
    with pytest.raises(ValueError, match="churn"):
        TabDiffConfig(churn=-1.0)


def test_whitening_decorrelates_the_scores_and_colours_samples_back(dependent_frame, tmp_path):
    df = dependent_frame(400)  # b = 2a + small noise: a direction of tiny variance in the scores
    model = TabDiff(steps=300, hidden=(64, 64), batch_size=256, sample_steps=20, whiten=True)
    model.fit(df, target="label")
    x_num, _, _ = model.transformer.transform(df)
    x = torch.from_numpy(x_num).double()
    mean, colour = model.whitening
    assert torch.allclose(mean, x.mean(0)) and torch.allclose(colour, colour.T)
    assert torch.allclose(colour @ colour, torch.cov(x.T), atol=1e-9)  # C^(1/2) C^(1/2) = C
    white = model._fit_whitening(x.float()).double()  # the same fit again: the scores the network trained on
    assert torch.allclose(torch.cov(white.T), torch.eye(3, dtype=torch.float64), atol=1e-4)
    synthetic = model.sample(2000, seed=0)
    assert synthetic["a"].corr(synthetic["b"]) > 0.95  # the tight relation survives the round trip
    loaded = TabDiff.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert loaded.config.whiten and torch.equal(loaded.whitening[1], colour)
    assert loaded.sample(300, seed=1).equals(model.sample(300, seed=1))
    with pytest.raises(ValueError, match="whiten"):
        TabDiffConfig(whiten=1)


def test_whiten_auto_whitens_only_a_table_with_a_near_exact_linear_relation(dependent_frame):
    import numpy as np

    assert TabDiffConfig().whiten == "auto"
    tight = dependent_frame(300)  # b = 2a + small noise: correlation eigenvalue about 0.001
    loose = tight.assign(b=np.random.default_rng(1).normal(size=300))  # a and b independent
    options = dict(steps=5, hidden=(16,), batch_size=64, sample_steps=2)
    assert TabDiff(**options).fit(tight, target="label").whitening is not None
    assert TabDiff(**options).fit(loose, target="label").whitening is None
    assert TabDiff(whiten=True, **options).fit(loose, target="label").whitening is not None
    assert TabDiff(whiten=False, **options).fit(tight, target="label").whitening is None


def test_a_saved_whitening_that_is_broken_is_refused_naming_the_file(dependent_frame, tmp_path):
    import json

    model = TabDiff(steps=20, hidden=(16,), batch_size=64, sample_steps=2, whiten=True)
    path = model.fit(dependent_frame(100), target="label").save_pretrained(tmp_path / "m")
    config = path / "config.json"
    document = json.loads(config.read_text())
    document["state"]["whiten_colour"] = document["state"]["whiten_colour"][:2]
    config.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="config.json.*whiten_colour"):
        TabDiff.from_pretrained(path)


def test_a_file_saved_before_churn_and_whiten_loads_as_the_model_it_was(dependent_frame, tmp_path):
    import json

    model = TabDiff(steps=20, hidden=(16,), batch_size=64, sample_steps=2, whiten=False)
    path = model.fit(dependent_frame(100), target="label").save_pretrained(tmp_path / "m")
    config = path / "config.json"
    document = json.loads(config.read_text())
    for field in ("churn", "whiten"):
        del document["config"][field]
    config.write_text(json.dumps(document))
    loaded = TabDiff.from_pretrained(path)
    assert loaded.config.whiten is False and loaded.config.churn == 0.0 and loaded.whitening is None
    assert loaded.sample(50, seed=0).equals(model.sample(50, seed=0))
    document["config"]["colour"] = 1  # a field no version had is still refused
    config.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="unknown fields"):
        TabDiff.from_pretrained(path)
