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


def test_executed_actions_are_the_chunk_steps_trained_as_the_current_step(demos, monkeypatch):
    import polydiff.robotics.policy as policy_module

    policy = DiffusionPolicy.from_episodes(demos, horizon=8, n_action_steps=4)
    features, targets = policy._windows(demos, policy.horizon)
    obs, actions = demos.episode(0)
    norm = policy.action_normalizer
    # window 1 of episode 0 has observations (step 0, step 1): its first target is the action taken at step 1
    np.testing.assert_allclose(norm.unnormalize(targets[1, 0].double().numpy()), actions[1], atol=1e-6)
    np.testing.assert_allclose(norm.unnormalize(targets[1, 3].double().numpy()), actions[4], atol=1e-6)

    def chunk_of_step_indices(denoiser, noise, *args, **kwargs):  # chunk[k] = the normalised action k steps ahead
        ahead = torch.as_tensor(norm.normalize(actions[1:1 + policy.horizon]), dtype=noise.dtype)
        return ahead.T.unsqueeze(0).expand_as(noise).clone()

    monkeypatch.setattr(policy_module, "sample", chunk_of_step_indices)
    chunk = policy.predict_action_chunk(obs[:2])
    np.testing.assert_allclose(chunk, actions[1:5], atol=1e-5)  # the executed actions start at step 1


def test_traced_inference_matches_the_eager_network_and_sees_weight_updates(demos):
    policy = DiffusionPolicy.from_episodes(demos, channels=(16, 32), horizon=8, n_action_steps=4)
    obs = np.stack([demos.obs[:2], demos.obs[5:7]])  # a batch of two histories

    def chunk():
        return policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))

    policy.train()  # training mode: the eager UNet
    eager = chunk()
    policy.eval()  # inference: the traced graph
    np.testing.assert_allclose(chunk(), eager, atol=1e-6)
    with torch.no_grad():
        for parameter in policy.unet.parameters():
            parameter.mul_(1.1)
    traced_after = chunk()
    policy.train()
    np.testing.assert_allclose(traced_after, chunk(), atol=1e-6)
    assert not np.allclose(traced_after, eager, atol=1e-4)


def test_x0_prediction_trains_samples_and_round_trips(demos, tmp_path):
    from polydiff.core.losses import DiffusionLoss

    torch.manual_seed(0)
    policy = DiffusionPolicy.from_episodes(demos, prediction="x0")
    network, loss, _ = policy._training_parts(demos)
    assert isinstance(loss, DiffusionLoss) and loss.prediction == "x0" and policy.denoiser().prediction == "x0"
    policy.fit(demos, TrainConfig(steps=10, batch_size=32, lr=1e-3, device="cpu"))
    chunks = {s: policy.predict_action_chunk(demos.obs[:2], solver=s, steps=4, generator=torch.Generator().manual_seed(1))
              for s in ("ddim", "dpmpp_2m")}
    assert all(c.shape == (8, 2) and np.all(np.isfinite(c)) for c in chunks.values())
    policy.save_pretrained(tmp_path / "x0")
    back = load_policy(tmp_path / "x0")
    assert back.prediction == "x0"
    np.testing.assert_allclose(back.predict_action_chunk(demos.obs[:2], solver="ddim", steps=4,
                                                         generator=torch.Generator().manual_seed(1)),
                               chunks["ddim"], atol=1e-5)
    with pytest.raises(ValueError, match="prediction"):
        DiffusionPolicy.from_episodes(demos, prediction="v")
