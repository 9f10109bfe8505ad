"""Image observations: the offscreen-rendered ObstacleReach, the CNN encoder and the image policies."""

import numpy as np
import pytest
import torch

from polydiff.core.training import TrainConfig
from polydiff.robotics.data import Episodes, load_episodes
from polydiff.robotics.image_policy import ImageDiffusionPolicy, ImageMLPPolicy
from polydiff.robotics.policy import load_policy
from polydiff.robotics.vision import ImageEncoder, SpatialSoftmax

SIZE = 32


@pytest.fixture(scope="module")
def gl():
    """Skip the rendering tests where no OpenGL backend works (MUJOCO_GL: egl by default, osmesa, glfw)."""
    from polydiff.robotics.envs.obstacle import ObstacleReachEnv

    try:
        ObstacleReachEnv(obs="image", image_size=SIZE).reset(seed=0)
    except RuntimeError as error:
        pytest.skip(f"no MuJoCo offscreen rendering here: {error}")


@pytest.fixture(scope="module")
def image_demos(demos):
    """The state demonstrations with synthetic frames (the policies' tests need no OpenGL)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(demos.obs), SIZE, SIZE, 3), dtype=np.uint8)
    return Episodes(demos.obs[:, :4], demos.action, demos.episode_ends, demos.meta, images)


def _run(env, seed, actions):
    obs, info = env.reset(seed=seed)
    frames, states = [obs["pixels"]], [obs["state"]]
    for action in actions:
        obs, *_ = env.step(action)
        frames.append(obs["pixels"])
        states.append(obs["state"])
    return np.stack(frames), np.stack(states), info


def test_image_env_is_deterministic_under_a_seed(gl):
    from polydiff.robotics.tasks import make_env

    actions = np.random.default_rng(1).uniform(-1, 1, (6, 2)).astype(np.float32)
    frames, states, info = _run(make_env("obstacle", obs="image", image_size=SIZE), 3, actions)
    again, states_again, _ = _run(make_env("obstacle", obs="image", image_size=SIZE), 3, actions)
    assert frames.dtype == np.uint8 and frames.shape == (7, SIZE, SIZE, 3)
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(states, states_again)
    assert not np.array_equal(frames[0], frames[-1])  # the agent moved in the picture
    other, _, _ = _run(make_env("obstacle", obs="image", image_size=SIZE), 4, actions)
    assert not np.array_equal(frames[0], other[0])  # another start and goal
    # the state part is the state observation's position and velocity; the expert's full state is in info
    state_obs, _ = make_env("obstacle").reset(seed=3)
    np.testing.assert_array_equal(states[0], state_obs[:4])
    np.testing.assert_array_equal(info["full_state"], state_obs)


def test_image_demos_match_the_state_demos(gl):
    from polydiff.robotics.data import collect_demos

    image = collect_demos("obstacle", 2, seed=0, obs="image", image_size=SIZE)
    state = collect_demos("obstacle", 2, seed=0)
    assert image.images.shape == (len(state.obs), SIZE, SIZE, 3)
    np.testing.assert_array_equal(image.obs, state.obs[:, :4])
    np.testing.assert_array_equal(image.action, state.action)
    np.testing.assert_array_equal(image.episode_ends, state.episode_ends)


def test_spatial_softmax_finds_a_peak():
    maps = torch.zeros(1, 2, 5, 7)
    maps[0, 0, 1, 6] = 100.0  # row 1 of 5, column 6 of 7
    maps[0, 1, 4, 0] = 100.0
    coords = SpatialSoftmax(5, 7)(maps)
    np.testing.assert_allclose(coords[0].detach().numpy(), [1.0, -0.5, -1.0, 1.0], atol=1e-5)


def test_encoder_output_shape():
    encoder = ImageEncoder(SIZE, channels=(4, 8), keypoints=6, feature_dim=10)
    features = encoder(torch.randint(0, 256, (5, SIZE, SIZE, 3), dtype=torch.uint8))
    assert features.shape == (5, 10) and torch.isfinite(features).all()
    assert encoder.spatial_softmax.grid.shape == ((SIZE // 4) ** 2, 2)
    with pytest.raises(ValueError, match="image_size"):
        ImageEncoder(30)


def test_encoder_downsample_sets_the_keypoint_grid_and_reaches_the_policy_config(image_demos, tmp_path):
    pixels = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8)
    for downsample, cells in ((2, SIZE // 4), (1, SIZE // 2), (0, SIZE)):
        encoder = ImageEncoder(SIZE, channels=(4, 8), keypoints=6, feature_dim=10, downsample=downsample)
        assert encoder.spatial_softmax.grid.shape == (cells ** 2, 2)
        assert encoder.convs(pixels.permute(0, 3, 1, 2).float()).shape[-2:] == (cells, cells)
    with pytest.raises(ValueError, match="encoder_downsample"):
        ImageEncoder(SIZE, channels=(4,), downsample=2)
    policy = ImageMLPPolicy.from_episodes(image_demos, encoder_downsample=1)
    policy.save_pretrained(tmp_path / "p")
    back = load_policy(tmp_path / "p")
    assert back.config["encoder_downsample"] == 1
    assert back.encoder.spatial_softmax.grid.shape == ((SIZE // 2) ** 2, 2)


def test_image_episodes_save_load_and_subset(image_demos, tmp_path):
    path = image_demos.save(tmp_path / "demos.npz")
    loaded = load_episodes(path)
    np.testing.assert_array_equal(loaded.images, image_demos.images)
    part = image_demos.subset([2, 0])
    first, third = image_demos.episode(0), image_demos.episode(2)
    assert len(part.images) == len(first[0]) + len(third[0])
    np.testing.assert_array_equal(part.images[:len(third[0])], image_demos.images[image_demos.episode_ends[1]:
                                                                                  image_demos.episode_ends[2]])
    with pytest.raises(ValueError, match="images"):
        Episodes(image_demos.obs, image_demos.action, image_demos.episode_ends, images=image_demos.images[:-1])


def test_image_windows_follow_the_state_windows(image_demos):
    from polydiff.robotics.data import sequence_windows

    policy = ImageDiffusionPolicy.from_episodes(image_demos, horizon=4, n_action_steps=2, channels=(8, 16),
                                                encoder_channels=(4, 8), keypoints=4, feature_dim=8)
    data = policy._image_windows(image_demos, policy.horizon)
    obs, _ = sequence_windows(image_demos, 1 + policy.horizon, pad_before=1, pad_after=1)
    frames = data.frames[data.index].numpy()  # (windows, To, H, W, 3)
    # each window's frames are the frames of its (padded) observations
    lookup = {image_demos.obs[i].tobytes(): image_demos.images[i] for i in range(len(image_demos.obs))}
    for w in (0, 1, len(obs) // 2, len(obs) - 1):
        for k in range(policy.n_obs_steps):
            np.testing.assert_array_equal(frames[w, k], lookup[obs[w, k].tobytes()])


@pytest.fixture(scope="module")
def trained_image_policy(image_demos):
    torch.manual_seed(0)
    policy = ImageDiffusionPolicy.from_episodes(image_demos, horizon=4, n_action_steps=2, channels=(8, 16),
                                                encoder_channels=(4, 8), keypoints=4, feature_dim=8)
    policy.fit(image_demos, TrainConfig(steps=3, batch_size=8, device="cpu"))
    return policy.eval()


def _history(demos, steps=2, start=5):
    return {"pixels": demos.images[start:start + steps], "state": demos.obs[start:start + steps]}


@pytest.mark.parametrize("solver,steps", [("ddim", 10), ("dpmpp_2m", 5)])
def test_image_policy_save_load_round_trip(trained_image_policy, image_demos, tmp_path, solver, steps):
    policy = trained_image_policy
    policy.save_pretrained(tmp_path / "policy")
    assert sorted(p.name for p in (tmp_path / "policy").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_policy(tmp_path / "policy").eval()
    assert isinstance(loaded, ImageDiffusionPolicy) and loaded.image_size == SIZE
    history = _history(image_demos)
    chunk = policy.predict_action_chunk(history, solver=solver, steps=steps, generator=torch.Generator().manual_seed(0))
    again = loaded.predict_action_chunk(history, solver=solver, steps=steps, generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (2, 2)
    np.testing.assert_array_equal(chunk, again)
    batch = {k: np.stack([v, v]) for k, v in history.items()}
    assert policy.predict_action_chunk(batch).shape == (2, 2, 2)


def test_image_mlp_round_trip_and_action_queue(image_demos, tmp_path):
    torch.manual_seed(0)
    policy = ImageMLPPolicy.from_episodes(image_demos, n_action_steps=3, encoder_channels=(4, 8), keypoints=4,
                                          feature_dim=8, hidden=(16,))
    policy.fit(image_demos, TrainConfig(steps=2, batch_size=8, device="cpu"))
    policy.eval().save_pretrained(tmp_path / "mlp")
    loaded = load_policy(tmp_path / "mlp").eval()
    policy.reset()
    loaded.reset()
    for i in range(4):
        obs = {"pixels": image_demos.images[i], "state": image_demos.obs[i]}
        np.testing.assert_array_equal(policy.select_action(obs), loaded.select_action(obs))


def _bad(history, key, value):
    return {**history, key: value}


@pytest.mark.parametrize("make,match", [
    (lambda h: h["pixels"], "obs: expected a dict"),
    (lambda h: {"pixels": h["pixels"]}, "obs: expected a dict"),
    (lambda h: _bad(h, "pixels", h["pixels"][:, :16]), r"obs\['pixels'\]: expected shape"),
    (lambda h: _bad(h, "pixels", h["pixels"][:1]), r"obs\['pixels'\]: expected shape"),
    (lambda h: _bad(h, "pixels", h["pixels"].astype(np.float32)), r"obs\['pixels'\]: expected uint8"),
    (lambda h: _bad(h, "pixels", np.full(h["pixels"].shape, np.nan, np.float32)), r"obs\['pixels'\]: contains NaN"),
    (lambda h: _bad(h, "state", np.full(h["state"].shape, np.nan)), r"obs\['state'\]: contains NaN"),
    (lambda h: _bad(h, "state", h["state"][:, :3]), r"obs\['state'\]: expected shape"),
    (lambda h: _bad(h, "state", np.stack([h["state"]] * 3)), "obs"),
])
def test_bad_image_input_raises_value_error_naming_it(trained_image_policy, image_demos, make, match):
    with pytest.raises(ValueError, match=match):
        trained_image_policy.predict_action_chunk(make(_history(image_demos)))


def test_image_policy_rejects_state_episodes(demos):
    with pytest.raises(ValueError, match="episodes"):
        ImageDiffusionPolicy.from_episodes(demos)


def test_image_rollout(gl, trained_image_policy):
    from polydiff.robotics.evaluate import chunk_latency_ms, rollout

    result = rollout(trained_image_policy, "obstacle", 2, solver="ddim", steps=2)
    assert 0 <= result["success"] <= 1 and len(result["paths"]) == 2 and result["paths"][0].shape[1] == 2
    assert chunk_latency_ms(trained_image_policy, repeats=1, solver="ddim", steps=2) > 0


def test_cli_image_demos_train_eval(gl, tmp_path, capsys):
    import json

    from polydiff.core.cli import main

    demos, policy = tmp_path / "demos.npz", tmp_path / "policy"
    assert main(["robotics", "demos", "-n", "3", "--obs", "image", "--perturb", "0.5", "--out", str(demos),
                 "--quiet"]) == 0
    assert load_episodes(demos).images.shape[1:] == (64, 64, 3)
    assert load_episodes(demos).meta["perturb"] == 0.5
    assert main(["robotics", "train", str(demos), "--out", str(policy), "--steps", "2", "--batch-size", "8",
                 "--horizon", "8", "--n-action-steps", "4", "--quiet"]) == 0
    assert isinstance(load_policy(policy), ImageDiffusionPolicy)
    capsys.readouterr()
    assert main(["robotics", "eval", str(policy), "--episodes", "2", "--steps", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and 0 <= summary["success"] <= 1


def test_shift_frames_moves_each_window_by_one_offset():
    from polydiff.robotics.image_policy import shift_frames

    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (6, 2, 8, 8, 3), dtype=torch.uint8)
    shifted = shift_frames(pixels, 2)
    assert shifted.shape == pixels.shape
    padded = torch.nn.functional.pad(pixels.permute(0, 1, 4, 2, 3).float().flatten(1, 2), (2, 2, 2, 2),
                                     mode="replicate").unflatten(1, (2, 3)).permute(0, 1, 3, 4, 2)
    for b in range(6):  # one offset explains both frames of the window
        assert any(torch.equal(shifted[b], padded[b, :, dy:dy + 8, dx:dx + 8]) for dy in range(5) for dx in range(5))
    assert shift_frames(pixels, 1).shape == pixels.shape
    with pytest.raises(ValueError, match="random_shift"):
        ImageMLPPolicy(4, 2, image_size=SIZE, random_shift=-1)


def test_image_policy_x0_prediction_reaches_its_loss_sampler_and_config(image_demos, tmp_path):
    torch.manual_seed(0)
    policy = ImageDiffusionPolicy.from_episodes(image_demos, horizon=8, n_action_steps=4, prediction="x0")
    _, loss, _ = policy._training_parts(image_demos)
    assert loss.prediction == "x0" and policy.denoiser().prediction == "x0"
    policy.fit(image_demos, TrainConfig(steps=2, batch_size=8, lr=1e-3, device="cpu"))
    obs = {"pixels": image_demos.images[:2], "state": image_demos.obs[:2]}
    chunk = policy.predict_action_chunk(obs, solver="ddim", steps=3, generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (4, 2) and np.all(np.isfinite(chunk))
    policy.save_pretrained(tmp_path / "x0")
    back = load_policy(tmp_path / "x0")
    assert isinstance(back, ImageDiffusionPolicy) and back.prediction == "x0"
