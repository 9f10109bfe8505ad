import dataclasses

import numpy as np
import pytest
import torch

from polydiff.core import VPCosineSchedule
from polydiff.medical.denoise import (
    DenoiseConfig,
    denoise_dwi,
    immerkaer_sigma,
    match_times,
    stage1_j_invariant,
)

FAST = dict(train_steps=2, batch_size=2, crop=8, seed=0, device="cpu")


@pytest.mark.parametrize("radius", [0, 1])
def test_stage1_equals_least_squares_without_the_own_volume(tiny_dwi, radius):
    """x1_j = lstsq([1, neighbourhoods of every other volume], y_j) predictions: volume j's own values (at any
    offset) never enter its estimate (J-invariance, Patch2Self)."""
    noisy, _ = tiny_dwi
    data = noisy.astype(np.float64)
    out = stage1_j_invariant(data, patch_radius=radius, ridge=1e-12, local_mean=False)
    padded = np.pad(data, [(radius, radius)] * 3 + [(0, 0)], mode="edge")
    x, y, z, n = data.shape
    shifts = [padded[i:i + x, j:j + y, k:k + z] for i in range(2 * radius + 1) for j in range(2 * radius + 1)
              for k in range(2 * radius + 1)]
    for volume in (0, 3, 7):
        columns = [s[..., other].reshape(-1) for s in shifts for other in range(n) if other != volume]
        design = np.column_stack([np.ones(x * y * z)] + columns)
        weights = np.linalg.lstsq(design, data[..., volume].reshape(-1), rcond=None)[0]
        np.testing.assert_allclose(out[..., volume].reshape(-1), design @ weights, rtol=1e-5, atol=1e-4)


def test_stage1_local_mean_features_equal_least_squares(tiny_dwi):
    from scipy.ndimage import uniform_filter

    data = tiny_dwi[0].astype(np.float64)
    out = stage1_j_invariant(data, ridge=1e-12, local_mean=True)
    box = uniform_filter(data, size=(3, 3, 3, 1), mode="nearest")
    for volume in (1, 4):
        others = [v for v in range(data.shape[-1]) if v != volume]
        design = np.column_stack([np.ones(data[..., 0].size)] + [a[..., v].reshape(-1) for v in others
                                                                  for a in (data, box)])
        weights = np.linalg.lstsq(design, data[..., volume].reshape(-1), rcond=None)[0]
        np.testing.assert_allclose(out[..., volume].reshape(-1), design @ weights, rtol=1e-5, atol=1e-4)


def test_stage1_recovers_an_exact_linear_relation():
    """With noise-free volumes where y_0 = 2 y_1 - y_2 + 3 the regression reproduces y_0 exactly."""
    rng = np.random.default_rng(2)
    data = rng.uniform(1, 2, (6, 5, 4, 4))
    data[..., 0] = 2 * data[..., 1] - data[..., 2] + 3
    out = stage1_j_invariant(data, ridge=1e-12, local_mean=False)
    np.testing.assert_allclose(out[..., 0], data[..., 0], rtol=1e-6)


def test_match_times_inverts_the_noise_level():
    schedule = VPCosineSchedule(t_max=0.6)
    target = torch.tensor([0.05, 0.1, 0.3], dtype=torch.float64)
    t = match_times(schedule, target)
    np.testing.assert_allclose(schedule.sigma_tilde(t).numpy(), target.numpy(), rtol=1e-9)


def test_immerkaer_estimates_white_noise():
    image = 3.0 * np.random.default_rng(0).standard_normal((200, 200))
    assert immerkaer_sigma(image) == pytest.approx(3.0, rel=0.03)
    assert immerkaer_sigma(np.ones((10, 10)) * 7) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint16, np.float64])
def test_denoise_keeps_shape_dtype_and_volume_order(tiny_dwi, dtype):
    noisy, bvals = tiny_dwi
    data = noisy.astype(dtype)
    out = denoise_dwi(data, bvals, **FAST)
    assert out.shape == data.shape and out.dtype == data.dtype
    # every volume (b0s included) stays in its place: output volume k is closest to a volume of its b-value
    means_in = data.reshape(-1, data.shape[-1]).astype(float).mean(0)
    means_out = out.reshape(-1, out.shape[-1]).astype(float).mean(0)
    for k in range(data.shape[-1]):
        assert bvals[np.argmin(np.abs(means_in - means_out[k]))] == bvals[k]
        if bvals[k] == 0:  # high-signal b0 volumes: the denoised mean stays within 5 % of the noisy one
            assert means_out[k] == pytest.approx(means_in[k], rel=0.05)


def test_denoise_with_mask_and_info(tiny_dwi):
    noisy, bvals = tiny_dwi
    mask = np.zeros(noisy.shape[:3], bool)
    mask[2:14, 2:14] = True
    out, info = denoise_dwi(noisy, bvals, mask, return_info=True, **FAST)
    assert out.shape == noisy.shape and np.isfinite(out).all()
    assert 0 < info["matched_time_median"] <= 0.6 and info["seconds"] > 0


def test_denoise_is_seeded(tiny_dwi):
    noisy, bvals = tiny_dwi
    np.testing.assert_array_equal(denoise_dwi(noisy, bvals, **FAST), denoise_dwi(noisy, bvals, **FAST))


def test_config_is_frozen_and_validated():
    config = DenoiseConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train_steps = 3
    with pytest.raises(ValueError, match="solver"):
        DenoiseConfig(solver="nope")


def test_rician_correction_inverts_the_rician_mean():
    from polydiff.medical.denoise import rician_correct, rician_mean

    signal = np.array([0.0, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0])
    np.testing.assert_allclose(rician_correct(rician_mean(signal, 2.0), 2.0), signal, atol=2e-3 * 2.0)
    # the noise floor: E|n1 + i n2| = sqrt(pi / 2) sigma, and anything below it maps to 0
    assert rician_mean(0.0, 3.0) == pytest.approx(3.0 * np.sqrt(np.pi / 2))
    assert rician_correct(np.array([0.5, 3.0]), 3.0)[0] == 0.0
    # Monte Carlo check of the mean function
    rng = np.random.default_rng(0)
    samples = np.abs(1.5 + rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000))
    assert float(rician_mean(1.5, 1.0)) == pytest.approx(samples.mean(), rel=5e-3)
    with pytest.raises(ValueError, match="sigma"):
        rician_correct(np.ones(3), 0.0)


def test_denoise_removes_the_rician_bias_of_a_constant_scan():
    """A noise-floor-level constant scan: the magnitude mean sits well above the signal; the correction brings the
    denoised values back near it, and rician=False leaves them at the magnitude mean."""
    rng = np.random.default_rng(1)
    signal, sigma = 1.0, 1.0
    shape = (12, 12, 2, 6)
    data = np.abs(signal + sigma * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)))
    bvals = np.array([0, 0, 0, 1000, 1000, 1000])
    corrected = denoise_dwi(data, bvals, **FAST)
    plain = denoise_dwi(data, bvals, rician=False, **FAST)
    assert abs(float(corrected.mean()) - signal) < abs(float(plain.mean()) - signal)
    assert float(plain.mean()) > 1.3 * signal
