import time

import mujoco
import numpy as np
import pytest

from polydiff.robotics.envs.obstacle import GOAL_RADIUS, ObstacleReachEnv, ObstacleReachExpert


def _episode(seed, expert_seed, side=None):
    env, expert = ObstacleReachEnv(), ObstacleReachExpert()
    obs, _ = env.reset(seed=seed)
    expert.reset(seed=expert_seed, side=side)
    observations = [obs]
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(expert(obs))
        observations.append(obs)
        done = terminated or truncated
    return np.array(observations), info


def test_same_seed_same_episode_and_different_seed_differs():
    a, _ = _episode(3, 7)
    b, _ = _episode(3, 7)
    c, _ = _episode(4, 7)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)


def test_expert_success_at_least_98_percent_and_both_sides():
    outcomes = [_episode(seed, 1000 + seed)[1] for seed in range(100)]
    success = np.mean([info["success"] for info in outcomes])
    left = np.mean([info["side"] == -1 for info in outcomes])
    assert success >= 0.98
    assert 0.35 <= left <= 0.65  # 100 fair coin flips


@pytest.mark.parametrize("side", [-1, 1])
def test_expert_passes_on_the_side_it_chose(side):
    path, info = _episode(0, 0, side=side)
    assert info["success"] and info["side"] == side
    assert np.linalg.norm(path[-1, 4:6]) < GOAL_RADIUS  # the observation holds the goal's offset


def test_driving_straight_at_the_wall_fails_at_the_time_limit():
    env = ObstacleReachEnv()
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, info = env.step(np.array([0.0, 1.0]))
        steps, done = steps + 1, terminated or truncated
    assert not info["success"] and truncated and steps == env.max_episode_steps
    assert info["side"] == 0 and env.data.qpos[1] < 0  # stopped by the wall, below it


def test_physics_faster_than_10k_steps_per_second():
    env = ObstacleReachEnv()
    env.reset(seed=0)
    mujoco.mj_step(env.model, env.data, nstep=100)
    start = time.perf_counter()
    mujoco.mj_step(env.model, env.data, nstep=5000)
    assert 5000 / (time.perf_counter() - start) >= 10_000


def test_render_draws_agent_and_goal():
    env = ObstacleReachEnv(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render(64)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert (frame == (50, 75, 200)).all(-1).any() and (frame == (60, 170, 60)).all(-1).any()


def test_path_distance_goes_round_the_wall_and_is_straight_where_clear():
    from polydiff.robotics.envs.obstacle import (
        AGENT_RADIUS,
        WALL_HALF_THICKNESS,
        WALL_HALF_WIDTH,
        path_distance,
    )

    corner = np.array([WALL_HALF_WIDTH + AGENT_RADIUS, WALL_HALF_THICKNESS + AGENT_RADIUS])
    start, goal = np.array([0.0, -0.6]), np.array([0.0, 0.6])
    # round either side: start -> lower corner -> upper corner -> goal
    expected = 2 * np.linalg.norm([corner[0], 0.6 - corner[1]]) + 2 * corner[1]
    assert path_distance(start, goal) == pytest.approx(expected, rel=1e-5)
    assert path_distance([0.0, 0.3], goal) == pytest.approx(0.3)  # above the wall: a straight line
    assert path_distance([0.9, 0.0], goal) == pytest.approx(np.linalg.norm([0.9, -0.6]))  # beside it: clear
    # moving sideways along the wall's face brings the agent closer by this measure, never into the wall
    assert path_distance([0.2, -0.2], goal) < path_distance([0.0, -0.2], goal)
    # an agent pressed into the wall's face (contacts penetrate a little) still has a finite path length
    assert np.isfinite(path_distance([0.0, -corner[1] + 0.01], goal))
