import numpy as np
import pytest
import torch

from polydiff.core.training import TrainConfig
from polydiff.robotics.diffuser import Diffuser
from polydiff.robotics.dppo import dppo_finetune
from polydiff.robotics.evaluate import rollout
from polydiff.robotics.policy import DiffusionPolicy


@pytest.fixture(scope="module")
def planner(demos):
    torch.manual_seed(0)
    model = Diffuser.from_episodes(demos, horizon=16, channels=(16, 32), steps=5)
    model.fit(demos, TrainConfig(steps=10, batch_size=32, device="cpu"))
    return model


def test_plan_keeps_the_inpainted_start_and_goal_exactly(planner, demos):
    obs = demos.obs[[0, 20]]
    plan = planner.plan(obs, generator=torch.Generator().manual_seed(0))
    assert plan.shape == (2, 16, 6)
    np.testing.assert_allclose(plan[:, 0, :4], obs[:, :4], atol=1e-5)
    np.testing.assert_allclose(plan[:, -1, :2], obs[:, :2] + obs[:, 4:6], atol=1e-5)


def test_planner_replans_every_k_steps(planner, demos):
    calls = []
    original = planner.plan
    planner.plan = lambda obs, **kw: calls.append(1) or original(obs, **kw)
    planner.reset()
    for _ in range(9):
        planner.select_action(demos.obs[:3])
    del planner.plan
    assert len(calls) == 3  # replan_every = 4: steps 0, 4, 8


def test_rollout_runs_the_planner_on_seeded_episodes(planner):
    result = rollout(planner, "obstacle", 2)
    assert set(result) >= {"success", "mode_left", "paths"} and len(result["paths"]) == 2


def test_dppo_iteration_updates_the_policy_and_reports(demos):
    torch.manual_seed(0)
    policy = DiffusionPolicy.from_episodes(demos, channels=(16, 32))
    policy.fit(demos, TrainConfig(steps=5, batch_size=32, device="cpu"))
    before = [p.detach().clone() for p in policy.unet.parameters()]
    history = dppo_finetune(policy, "obstacle", iterations=1, envs=4, steps=3, lr=1e-3)
    assert len(history) == 1 and 0.0 <= history[0]["success"] <= 1.0
    if not history[0].get("skipped"):
        assert any(not torch.equal(a, b) for a, b in zip(before, policy.unet.parameters(), strict=True))
        assert np.isfinite(history[0]["loss"])


def test_dppo_can_restrict_the_loss_to_the_last_chain_steps(demos):
    torch.manual_seed(0)
    policy = DiffusionPolicy.from_episodes(demos, channels=(16, 32))
    policy.fit(demos, TrainConfig(steps=5, batch_size=32, device="cpu"))
    history = dppo_finetune(policy, "obstacle", iterations=1, envs=4, steps=3, lr=1e-3, fine_tune_steps=1)
    assert len(history) == 1
    with pytest.raises(ValueError, match="fine_tune_steps"):
        dppo_finetune(policy, "obstacle", iterations=1, envs=4, steps=3, fine_tune_steps=4)
