import numpy as np
import pytest

from polydiff.medical.evaluate import brats_metrics, image_metrics, masked_psnr


def test_brats_metric_against_a_hand_computation():
    # target 0..255 on a 16 x 16 grid: the 0.5 / 99.5 percentiles (linear interpolation) are 1.275 and 253.725
    target = np.arange(256, dtype=float).reshape(16, 16)
    mask = np.zeros((16, 16), bool)
    mask[6:10, 6:10] = True  # values 102..153, far from the clipping bounds
    prediction = target + 10 * mask
    brain = np.ones((16, 16), bool)
    metrics = brats_metrics(prediction, target, mask, brain)
    mse = (10 / (253.725 - 1.275)) ** 2
    assert metrics["mse"] == pytest.approx(mse, rel=1e-9)
    assert metrics["psnr"] == pytest.approx(10 * np.log10(1 / mse), rel=1e-9)
    assert metrics["ssim"] < 1
    perfect = brats_metrics(target, target, mask, brain)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["mse"] == 0.0


def test_brats_metric_clips_to_the_percentile_range():
    target = np.arange(256, dtype=float).reshape(16, 16)
    mask = np.zeros((16, 16), bool)
    mask[0, 0] = True  # target 0 -> normalised 0 (clipped); prediction -100 -> also 0
    assert brats_metrics(target - 100 * mask, target, mask, np.ones((16, 16), bool))["mse"] == 0.0


def test_masked_psnr_by_hand():
    clean = np.zeros((2, 2, 1, 2))
    clean[0, 0, 0, 0] = 4.0
    estimate = clean + 1.0
    mask = np.zeros((2, 2, 1), bool)
    mask[0, :, 0] = True  # 2 voxels x 2 volumes, every error 1, peak 4
    assert masked_psnr(clean, estimate, mask) == pytest.approx(10 * np.log10(16 / 1))


def test_image_metrics_by_hand():
    target = np.zeros((8, 8))
    target[0, 0] = 2.0
    metrics = image_metrics(target + 0.5, target)
    assert metrics["mse"] == 0.25 and metrics["psnr"] == pytest.approx(10 * np.log10(4 / 0.25))
