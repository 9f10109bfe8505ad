"""TabDiff's own checks: its per-column schedules are learned (or held fixed when asked) and survive save/load.
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
