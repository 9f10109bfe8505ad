import numpy as np
import pytest
import torch

from polydiff.robotics.data import Episodes, load_episodes, sequence_windows
from polydiff.robotics.normalize import MinMaxNormalizer


def _toy():
    # two episodes of lengths 3 and 2; obs = step index (+10 for the second episode), action = -obs
    obs = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    return Episodes(obs, -obs, [3, 5])


def test_windows_pad_with_edge_values_and_never_cross_episodes():
    obs, act = sequence_windows(_toy(), horizon=3, pad_before=1, pad_after=1)
    expected = [[0, 0, 1], [0, 1, 2], [1, 2, 2], [10, 10, 11], [10, 11, 11]]
    np.testing.assert_array_equal(obs[..., 0], expected)
    np.testing.assert_array_equal(act[..., 0], -np.array(expected))


def test_zero_action_padding_after_the_end():
    obs, act = sequence_windows(_toy(), horizon=2, pad_after=1, action_pad="zero")
    np.testing.assert_array_equal(obs[..., 0], [[0, 1], [1, 2], [2, 2], [10, 11], [11, 11]])
    np.testing.assert_array_equal(act[..., 0], [[0, -1], [-1, -2], [-2, 0], [-10, -11], [-11, 0]])


def test_save_load_round_trip_and_refuse_overwrite(tmp_path):
    episodes = Episodes(_toy().obs, _toy().action, [3, 5], {"task": "toy", "mode": [1, -1]})
    path = episodes.save(tmp_path / "d.npz")
    back = load_episodes(path)
    np.testing.assert_array_equal(back.obs, episodes.obs)
    np.testing.assert_array_equal(back.action, episodes.action)
    np.testing.assert_array_equal(back.episode_ends, [3, 5])
    assert back.meta == {"task": "toy", "mode": [1, -1]}
    with pytest.raises(ValueError, match="path"):
        episodes.save(path)
    episodes.subset([1]).save(path, force=True)
    assert len(load_episodes(path)) == 1 and load_episodes(path).meta["mode"] == [-1]


def test_normalizer_maps_to_unit_box_and_round_trips():
    data = np.array([[0.0, 5.0, 3.0], [2.0, 7.0, 3.0], [1.0, 6.0, 3.0]])
    norm = MinMaxNormalizer.fit(data)
    z = norm.normalize(data)
    np.testing.assert_allclose(z[:, 0], [-1, 1, 0])
    np.testing.assert_allclose(z[:, 1], [-1, 1, 0])
    np.testing.assert_allclose(z[:, 2], 0)  # a constant feature maps to 0
    np.testing.assert_allclose(norm.unnormalize(z), data)
    t = torch.tensor(data, dtype=torch.float64)
    torch.testing.assert_close(norm.unnormalize(norm.normalize(t)), t)
    again = MinMaxNormalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(again.normalize(data), z)


def test_collected_demos_hold_both_modes(demos):
    assert len(demos) == 12 and demos.obs_dim == 6 and demos.action_dim == 2
    assert set(demos.meta["mode"]) == {-1, 1}
    assert np.abs(demos.action).max() <= 1.0


def test_perturbed_demos_record_the_clean_expert_action():
    from polydiff.robotics.data import collect_demos
    from polydiff.robotics.envs.obstacle import ObstacleReachExpert

    clean = collect_demos("obstacle", 2, seed=0)
    shaken = collect_demos("obstacle", 2, seed=0, perturb=0.3)
    assert shaken.meta["perturb"] == 0.3
    assert not np.allclose(shaken.obs[:10], clean.obs[:10])  # the executed actions were perturbed
    # replaying the expert on the recorded states gives exactly the recorded actions
    obs, actions = shaken.episode(0)
    expert = ObstacleReachExpert()
    expert.reset(seed=shaken.meta["seed"])
    np.testing.assert_allclose([expert(o) for o in obs], actions, atol=1e-6)
    with pytest.raises(ValueError, match="perturb"):
        collect_demos("obstacle", 1, perturb=-1.0)


def test_collect_demos_keeps_the_successful_expert_episodes_in_seed_order():
    from polydiff.robotics.data import collect_demos, expert_episode

    demos = collect_demos("obstacle", 2, seed=7)
    first = next(s for s in range(7, 20) if expert_episode("obstacle", s)[2]["success"])
    obs, action, info = expert_episode("obstacle", first)
    np.testing.assert_array_equal(demos.episode(0)[0], obs)
    np.testing.assert_array_equal(demos.episode(0)[1], action)
    assert demos.meta["attempts"] >= 2


def test_bench_reuses_a_larger_pusht_demo_file_cut_to_its_first_episodes(tmp_path):
    from polydiff.robotics.bench import expert_demos
    from polydiff.robotics.tasks import expert_version

    obs = np.arange(10.0)[:, None].repeat(5, 1)
    meta = {"seed": 0, "mode": [0, 0, 0], "expert_version": expert_version("pusht")}
    Episodes(obs, obs[:, :2], [3, 6, 10], meta).save(tmp_path / "pusht_demos.npz")
    demos = expert_demos("pusht", tmp_path, 2, seed=0)
    assert len(demos) == 2 and demos.episode_ends.tolist() == [3, 6] and demos.meta["mode"] == [0, 0]
