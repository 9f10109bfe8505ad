"""TabSyn's own checks: its two stages train through the core Trainer with the paper's sampler, and its fitted
latent statistics are sane. The API every table model keeps is in test_latent_models.py (fixtures: conftest.py)."""

import torch

from polydiff.tabular.tabsyn import TabSynConfig


def test_the_score_model_trains_through_the_core_trainer_with_paper_sampler(fitted_tabsyn):
    model, _ = fitted_tabsyn
    assert model.history == {"vae_steps": 150, "steps": 200}
    assert TabSynConfig().solver == "heun" and TabSynConfig().sample_steps == 50 and TabSynConfig().d_token == 4
    assert not any(p.requires_grad for p in model.vae.parameters())
    assert bool(torch.isfinite(model.latent_mean).all()) and bool((model.latent_scale > 0).all())


def test_the_latent_statistics_survive_save_and_load(fitted_tabsyn, tmp_path):
    from polydiff.tabular.tabsyn import TabSyn

    model, _ = fitted_tabsyn
    loaded = TabSyn.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert torch.equal(loaded.latent_mean, model.latent_mean) and torch.equal(loaded.latent_scale, model.latent_scale)
