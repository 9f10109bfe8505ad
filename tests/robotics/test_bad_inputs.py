"""Bad input -> ValueError naming the argument."""

import numpy as np
import pytest

from polydiff.robotics.data import Episodes, collect_demos, load_episodes, sequence_windows
from polydiff.robotics.diffuser import Diffuser
from polydiff.robotics.dppo import dppo_finetune
from polydiff.robotics.envs.obstacle import ObstacleReachEnv, ObstacleReachExpert
from polydiff.robotics.evaluate import rollout
from polydiff.robotics.normalize import MinMaxNormalizer
from polydiff.robotics.policy import DiffusionPolicy, MLPPolicy
from polydiff.robotics.tasks import make_env
from polydiff.robotics.video import write_video

OBS = np.zeros((4, 1))


def _policy():
    stats = {"low": [0.0] * 6, "high": [1.0] * 6}
    return DiffusionPolicy(6, 2, obs_stats=stats, action_stats={"low": [-1.0, -1.0], "high": [1.0, 1.0]})


def _env_step_nan():
    env = ObstacleReachEnv()
    env.reset(seed=0)
    env.step(np.array([np.nan, 0.0]))


CASES = [
    ("obs", lambda: _policy().select_action(np.zeros(5))),
    ("obs", lambda: _policy().select_action(np.full(6, np.nan))),
    ("obs", lambda: _policy().predict_action_chunk(np.zeros((3, 6)))),
    ("obs", lambda: _policy().predict_action_chunk(np.zeros((2, 2, 6, 1)))),
    ("obs", lambda: _policy().select_action(np.array(["a"] * 6))),
    ("policy", lambda: DiffusionPolicy(6, 2).predict_action_chunk(np.zeros((2, 6)))),
    ("solver", lambda: _policy().predict_action_chunk(np.zeros((2, 6)), solver="nope")),
    ("n_action_steps", lambda: DiffusionPolicy(6, 2, horizon=8, n_action_steps=9)),
    ("horizon", lambda: DiffusionPolicy(6, 2, horizon=0)),
    ("obs_dim", lambda: DiffusionPolicy(0, 2)),
    ("obs_stats", lambda: DiffusionPolicy(6, 2, obs_stats={"low": [0.0], "high": [1.0]})),
    ("hidden", lambda: MLPPolicy(6, 2, hidden=[0])),
    ("action", lambda: ObstacleReachEnv().step(np.zeros(3))),
    ("action", _env_step_nan),
    ("max_episode_steps", lambda: ObstacleReachEnv(max_episode_steps=0)),
    ("render_mode", lambda: ObstacleReachEnv(render_mode="human")),
    ("noise", lambda: ObstacleReachExpert(noise=-1.0)),
    ("side", lambda: ObstacleReachExpert().reset(side=2)),
    ("task", lambda: make_env("lift")),
    ("task", lambda: collect_demos("lift", 2)),
    ("episodes", lambda: collect_demos("obstacle", 0)),
    ("episodes", lambda: rollout(_policy(), "obstacle", 0)),
    ("obs", lambda: Episodes(np.zeros((0, 2)), np.zeros((0, 2)), [1])),
    ("action", lambda: Episodes(OBS, np.zeros((3, 1)), [4])),
    ("episode_ends", lambda: Episodes(OBS, OBS, [2, 3])),
    ("obs, action", lambda: Episodes(np.full((4, 1), np.nan), OBS, [4])),
    ("horizon", lambda: sequence_windows(Episodes(OBS, OBS, [4]), 0)),
    ("horizon", lambda: sequence_windows(Episodes(OBS, OBS, [4]), 9)),
    ("action_pad", lambda: sequence_windows(Episodes(OBS, OBS, [4]), 2, action_pad="mirror")),
    ("path", lambda: Episodes(OBS, OBS, [4]).save("demos.zarr")),
    ("path", lambda: load_episodes("missing.npz")),
    ("low, high", lambda: MinMaxNormalizer([1.0], [0.0])),
    ("data", lambda: MinMaxNormalizer.fit(np.array([[np.inf]]))),
    ("x", lambda: MinMaxNormalizer([0.0], [1.0]).normalize(np.zeros((2, 3)))),
    ("replan_every", lambda: Diffuser(4, 2, horizon=4, replan_every=5)),
    ("state_dim", lambda: Diffuser(1, 2)),
    ("stats", lambda: Diffuser(4, 2).plan(np.zeros((1, 6)))),
    ("policy", lambda: dppo_finetune(object(), "obstacle")),
    ("envs", lambda: dppo_finetune(_policy(), "obstacle", envs=1)),
    ("min_std", lambda: dppo_finetune(_policy(), "obstacle", min_std=0.0)),
    ("shaping", lambda: dppo_finetune(_policy(), "obstacle", shaping=-1.0)),
    ("gae_lambda", lambda: dppo_finetune(_policy(), "obstacle", gae_lambda=1.5)),
    ("path", lambda: write_video("a.avi", [np.zeros((4, 4, 3))])),
    ("frames", lambda: write_video("a.gif", [])),
]


@pytest.mark.parametrize(("name", "call"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_input_raises_value_error_naming_it(name, call):
    with pytest.raises(ValueError, match=f"^{name}") as info:
        call()
    assert name in str(info.value)
