import numpy as np
import pytest
import torch

from polydiff.core import list_solvers
from polydiff.core.training import TrainConfig
from polydiff.robotics.policy import DiffusionPolicy, MLPPolicy, load_policy


@pytest.fixture(scope="module")
def trained(demos):
    torch.manual_seed(0)
    policy = DiffusionPolicy.from_episodes(demos)
    policy.fit(demos, TrainConfig(steps=20, batch_size=32, lr=1e-3, device="cpu"))
    return policy


def test_action_queue_predicts_once_per_action_steps(demos):
    policy = MLPPolicy.from_episodes(demos, n_action_steps=3)
    calls = []
    original = policy.predict_action_chunk

    def counting(obs, **options):
        calls.append(np.array(obs)[0])  # select_action passes a batch of one
        return original(obs, **options)

    policy.predict_action_chunk = counting
    policy.reset()
    obs = demos.obs[:7]
    actions = [policy.select_action(o) for o in obs]
    assert len(calls) == 3  # steps 0, 3, 6
    # the first history is padded with the first observation; later ones are the last two observations
    np.testing.assert_array_equal(calls[0], [obs[0], obs[0]])
    np.testing.assert_array_equal(calls[1], [obs[2], obs[3]])
    chunk = original(calls[1])
    np.testing.assert_allclose(np.stack(actions[3:6]), chunk, rtol=1e-6)
    policy.reset()
    policy.select_action(obs[5])
    np.testing.assert_array_equal(calls[-1], [obs[5], obs[5]])


def test_batched_select_action_shapes(trained, demos):
    trained.reset()
    batch = np.stack([demos.obs[0], demos.obs[5], demos.obs[9]])
    action = trained.select_action(batch)
    assert action.shape == (3, 2) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1.0 + 1e-6)  # inside the demonstrated action range
    assert trained.predict_action_chunk(np.stack([demos.obs[:2]] * 3)).shape == (3, 8, 2)


@pytest.mark.parametrize("solver", ["ddpm", "ddim", "dpmpp_2m", "unipc", "euler", "heun", "dpm_solver_3m"])
def test_any_core_solver_samples_the_policy(trained, demos, solver):
    assert solver in list_solvers()
    chunk = trained.predict_action_chunk(demos.obs[:2], solver=solver, steps=4)
    assert chunk.shape == (8, 2) and np.all(np.isfinite(chunk))


def test_save_load_round_trip_gives_identical_chunks(trained, demos, tmp_path):
    trained.save_pretrained(tmp_path / "p")
    back = load_policy(tmp_path / "p")
    assert isinstance(back, DiffusionPolicy) and back.config == trained.config
    obs = demos.obs[:2]
    a = trained.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3), solver="ddim")
    b = back.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3), solver="ddim")
    np.testing.assert_array_equal(a, b)
    mlp = MLPPolicy.from_episodes(demos)
    mlp.save_pretrained(tmp_path / "m")
    np.testing.assert_array_equal(load_policy(tmp_path / "m").predict_action_chunk(obs), mlp.predict_action_chunk(obs))


def test_training_lowers_the_denoising_loss(demos):
    torch.manual_seed(0)
    policy = DiffusionPolicy.from_episodes(demos)
    network, loss_fn, data = policy._training_parts(demos)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    generator = torch.Generator().manual_seed(0)
    before = loss_fn(network, batch, generator=generator).item()
    policy.fit(demos, TrainConfig(steps=60, batch_size=64, lr=2e-3, ema_decay=None, device="cpu"))
    after = loss_fn(network, batch, generator=torch.Generator().manual_seed(0)).item()
    assert after < 0.6 * before


def test_mlp_regression_fits_its_windows(demos):
    torch.manual_seed(0)
    policy = MLPPolicy.from_episodes(demos, n_action_steps=1)
    network, loss_fn, data = policy._training_parts(demos)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    before = loss_fn(network, batch).item()
    policy.fit(demos, TrainConfig(steps=80, batch_size=64, lr=2e-3, ema_decay=None, device="cpu"))
    assert loss_fn(network, batch).item() < 0.3 * before
