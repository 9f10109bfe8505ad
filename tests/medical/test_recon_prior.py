"""The reconstruction-conditioned prior, continued training and the validation slices."""

import json

import numpy as np
import pytest

from polydiff.medical.prior import (
    TEST_SLICES,
    TRAIN_SLICES,
    PriorConfig,
    SlicePrior,
    _Undersampled,
    validation_slices,
    zero_filled_pair,
)
from polydiff.medical.recon import reconstruct, undersample


@pytest.fixture(scope="module")
def recon_prior():
    rng = np.random.default_rng(2)
    images = np.clip(rng.standard_normal((3, 16, 16)) * 0.3, -1, 1)
    return SlicePrior(task="recon", train_steps=2, batch_size=2, channels=(8, 8, 8), seed=0, device="cpu").fit(images)


def test_zero_filled_pair_maps_target_and_condition_by_the_same_affine_map():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 5, (16, 16))
    lines = np.zeros(16, bool)
    lines[[0, 1, 15, 4, 12]] = True
    target, condition = zero_filled_pair(image, lines)
    zero = np.fft.ifft2(np.fft.fft2(image, norm="ortho") * lines[:, None], norm="ortho").real
    low, high = np.percentile(zero, [0.5, 99.5])
    np.testing.assert_allclose(condition, 2 * (zero - low) / (high - low) - 1, atol=1e-12)
    np.testing.assert_allclose(target, 2 * (image - low) / (high - low) - 1, atol=1e-12)
    # the condition is the zero-filled image of the target itself (the map is affine, F is linear)
    again = np.fft.ifft2(np.fft.fft2(target + 1, norm="ortho") * lines[:, None], norm="ortho").real - 1
    np.testing.assert_allclose(again, condition + np.fft.ifft2(np.fft.fft2(np.ones((16, 16)), norm="ortho")
                                                                * (lines[:, None] - 1), norm="ortho").real, atol=1e-10)


def test_undersampled_items_are_seeded_and_shaped():
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16)).astype(np.float32)
    first, second = _Undersampled(images, 4, 0, (4.0,)), _Undersampled(images, 4, 0, (4.0,))
    a, b = first[1], second[1]
    assert a[0].shape == (1, 16, 16) and a[1]["cond"].shape == (1, 16, 16)
    assert np.array_equal(a[0].numpy(), b[0].numpy()) and np.array_equal(a[1]["cond"].numpy(), b[1]["cond"].numpy())


def test_recon_prior_keeps_the_measured_lines_and_round_trips(recon_prior, tmp_path):
    image = np.random.default_rng(3).uniform(0, 100, (16, 16))
    kspace, lines = undersample(image, 4, seed=0)
    out = reconstruct(kspace, lines, recon_prior, method="conditional", steps=3, num_samples=2)
    measured = np.fft.fftshift(np.fft.fft2(out, norm="ortho"))[lines]
    np.testing.assert_allclose(measured, kspace[lines], atol=1e-3 * np.abs(kspace).max())
    recon_prior.save_pretrained(tmp_path / "recon")
    loaded = SlicePrior.from_pretrained(tmp_path / "recon")
    assert loaded.config.task == "recon" and loaded.config.accelerations == (4.0, 8.0)
    np.testing.assert_allclose(reconstruct(kspace, lines, loaded, method="conditional", steps=3, num_samples=2), out,
                               atol=1e-5 * np.abs(out).max())


def test_recon_prior_and_method_must_match(recon_prior, tiny_prior):
    kspace, lines = undersample(np.ones((16, 16)), 4)
    with pytest.raises(ValueError, match="prior"):
        reconstruct(kspace, lines, recon_prior, method="diffpir", steps=2)
    with pytest.raises(ValueError, match="prior"):
        reconstruct(kspace, lines, tiny_prior, method="conditional", steps=2)
    with pytest.raises(ValueError, match="prior"):
        recon_prior.denoiser  # noqa: B018
    assert not recon_prior.conditional  # no inpainting condition


@pytest.mark.parametrize("options, name", [({"task": "denoise"}, "task"), ({"clip_x0": 0}, "clip_x0"),
                                           ({"accelerations": (0.5,)}, "accelerations"),
                                           ({"num_workers": -1}, "num_workers"),
                                           ({"checkpoint_every": 0}, "checkpoint_every")])
def test_prior_config_names_the_bad_argument(options, name):
    with pytest.raises(ValueError, match=name):
        PriorConfig(**options)


def test_a_larger_train_steps_continues_a_finished_run(tmp_path):
    rng = np.random.default_rng(4)
    images = np.clip(rng.standard_normal((3, 16, 16)) * 0.3, -1, 1)
    options = {"batch_size": 2, "crop": 16, "channels": (8, 8, 8), "seed": 0, "device": "cpu",
               "checkpoint_dir": str(tmp_path)}
    SlicePrior(train_steps=3, checkpoint_every=3, **options).fit(images)
    with pytest.warns(RuntimeWarning, match="dataset"):
        SlicePrior(train_steps=5, checkpoint_every=5, **options).fit(images)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 5 and sorted(p.name for p in tmp_path.glob("step-*"))[-1] == "step-00000005"


def test_validation_slices_are_neither_test_slices_nor_training_contrasts():
    images, masks, names = validation_slices()
    assert images.shape == masks.shape and len(names) == len(images) == 4
    volumes = set(np.linspace(0, 63, 8).round().astype(int))
    for name in names:
        z, v = (int(part[1:]) for part in name.split("-")[1:])
        assert z in TRAIN_SLICES and z not in TEST_SLICES and v not in volumes
    with pytest.raises(ValueError, match="slices"):
        validation_slices(slices=(7,))


def test_conditional_default_zeta_is_fresh_noise_every_step(recon_prior):
    image = np.random.default_rng(5).uniform(0, 100, (16, 16))
    kspace, lines = undersample(image, 4, seed=1)
    default = reconstruct(kspace, lines, recon_prior, method="conditional", steps=3, num_samples=2)
    np.testing.assert_array_equal(default, reconstruct(kspace, lines, recon_prior, method="conditional", steps=3,
                                                       num_samples=2, diffpir_zeta=1.0))
    assert not np.array_equal(default, reconstruct(kspace, lines, recon_prior, method="conditional", steps=3,
                                                   num_samples=2, diffpir_zeta=0.3))
    with pytest.raises(ValueError, match="diffpir_zeta"):
        reconstruct(kspace, lines, recon_prior, method="conditional", steps=3, diffpir_zeta=1.5)
