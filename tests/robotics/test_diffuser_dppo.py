import numpy as np
import pytest
import torch

from polydiff.core.training import TrainConfig
from polydiff.robotics.diffuser import Diffuser
from polydiff.robotics.dppo import chain_log_prob, dppo_finetune, sample_chain
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


def test_window_pad_keeps_the_windows_that_start_near_an_episode_start(demos, tmp_path):
    every = Diffuser.from_episodes(demos, horizon=16, channels=(16, 32))._trajectories(demos)
    near = Diffuser.from_episodes(demos, horizon=16, channels=(16, 32), window_pad=2)
    windows = near._trajectories(demos)
    lengths = np.diff(np.concatenate([[0], demos.episode_ends]))
    # a window of 16 reaching at most 2 steps past the end starts at one of the first (length + 2 - 16 + 1) steps
    assert windows.shape[0] == int(np.clip(lengths + 2 - 16 + 1, 0, None).sum()) < every.shape[0]
    first = near.normalizer.normalize(np.concatenate([demos.obs[0, :4], demos.action[0]])[None])[0]
    assert np.allclose(windows[0, :, 0].numpy(), first, atol=1e-6)  # the first window starts the first episode
    near.save_pretrained(tmp_path / "d")
    assert Diffuser.from_pretrained(tmp_path / "d").window_pad == 2
    for bad in (16, -1, 2.5):
        with pytest.raises(ValueError, match="window_pad"):
            Diffuser.from_episodes(demos, horizon=16, window_pad=bad)


def test_tracking_gain_steers_towards_the_planned_positions(planner, demos, tmp_path):
    obs = demos.obs[[0, 20]].copy()
    planner.reset()
    open_loop = planner.select_action(obs)
    plan = planner._plan.copy()
    planner.tracking_gain = 2.0
    try:
        planner.reset()
        planner._plan, planner._cursor = plan, 0  # the same plan, executed from positions 0.05 m off it
        moved = obs.copy()
        moved[:, :2] += 0.05
        tracked = planner.select_action(moved)
    finally:
        planner.tracking_gain = 0.0
    expected = np.clip(plan[:, 0, 4:] + 2.0 * (plan[:, 0, :2] - moved[:, :2]), planner.normalizer.low[4:],
                       planner.normalizer.high[4:])
    np.testing.assert_allclose(tracked, expected, atol=1e-6)
    np.testing.assert_allclose(open_loop, plan[:, 0, 4:], atol=1e-6)
    model = Diffuser.from_episodes(demos, horizon=16, channels=(16, 32), tracking_gain=2.0)
    model.save_pretrained(tmp_path / "d")
    assert Diffuser.from_pretrained(tmp_path / "d").tracking_gain == 2.0
    model.tracking_gain = 3  # set after construction: validated and saved with the planner
    model.save_pretrained(tmp_path / "e")
    assert Diffuser.from_pretrained(tmp_path / "e").tracking_gain == 3.0
    with pytest.raises(ValueError, match="tracking_gain"):
        model.tracking_gain = -2
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValueError, match="tracking_gain"):
            Diffuser.from_episodes(demos, horizon=16, tracking_gain=bad)
    with pytest.raises(ValueError, match="tracking_gain"):
        Diffuser(4, 3, horizon=16, tracking_gain=1.0)


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
    with pytest.raises(ValueError, match="min_std"):
        dppo_finetune(policy, "obstacle", iterations=1, envs=4, steps=3, min_std=0.0)


def test_dppo_chain_without_noise_is_the_evaluated_ddim_sampler(demos):
    from polydiff.core import make_grid

    torch.manual_seed(0)
    policy = DiffusionPolicy.from_episodes(demos, channels=(16, 32), horizon=8, n_action_steps=4)
    policy.fit(demos, TrainConfig(steps=5, batch_size=32, device="cpu"))
    policy.eval()
    obs = np.stack([demos.obs[[0, 0]], demos.obs[[5, 6]]])  # (2, To, obs_dim)
    features = torch.as_tensor(policy.obs_normalizer.normalize(obs), dtype=torch.float32).flatten(1)
    grid = make_grid(policy.schedule, 10, "trailing", final_zero=True)
    states = sample_chain(policy, features, grid, 0.0, torch.Generator().manual_seed(3))
    chunk = policy.action_normalizer.unnormalize(
        states[-1].clamp(-1, 1).transpose(1, 2)[:, :4].double().numpy())
    expected = policy.predict_action_chunk(obs, solver="ddim", steps=10, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(chunk, expected, atol=1e-4)


def test_chain_log_prob_is_the_mean_clipped_gaussian_density():
    mean = torch.zeros(2, 3, 4)
    x = mean.clone()
    x[1] = 10.0  # far out: every element's density is clipped at the floor
    lp = chain_log_prob(x, mean, 0.1, floor=-5.0)
    assert lp.shape == (2,)
    assert float(lp[0]) == pytest.approx(-np.log(0.1) - 0.5 * np.log(2 * np.pi), rel=1e-5)
    assert float(lp[1]) == pytest.approx(-5.0)


def test_dppo_callback_runs_after_each_iteration_in_eval_mode(demos):
    torch.manual_seed(0)
    policy = DiffusionPolicy.from_episodes(demos, channels=(16, 32), horizon=8, n_action_steps=4)
    policy.fit(demos, TrainConfig(steps=5, batch_size=32, device="cpu"))
    seen = []
    history = dppo_finetune(policy, "obstacle", iterations=2, envs=3, steps=3, minibatch_size=512,
                            update_epochs=1, callback=lambda r: seen.append((r["iteration"], policy.unet.training)))
    assert seen == [(0, False), (1, False)] and len(history) == 2
