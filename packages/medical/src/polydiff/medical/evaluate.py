"""Metrics of the three tasks.

``brats_metrics`` is the BraTS local-synthesis (inpainting) metric: both images normalised by the 0.5 and 99.5
percentiles of the ground truth inside the brain and clipped to [0, 1], then MSE, PSNR (data range 1) and SSIM
(the SSIM map of scikit-image, 7 x 7 window, data range 1, averaged over the mask) inside the inpainted region.
``masked_psnr`` is the denoising metric: PSNR over the brain voxels of every volume, peak = the ground truth's
maximum there. ``image_metrics`` scores a whole reconstructed slice (peak = the ground truth's maximum).
"""

from __future__ import annotations

import numpy as np

__all__ = ["brats_metrics", "masked_psnr", "image_metrics", "percentile_normalise"]


def percentile_normalise(image: np.ndarray, reference: np.ndarray, region: np.ndarray | None = None,
                         low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """clip((image - p_low) / (p_high - p_low), 0, 1) with the percentiles of ``reference`` (inside ``region``)."""
    values = reference[region] if region is not None else reference.reshape(-1)
    lo, hi = np.percentile(values, [low, high])
    return np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def brats_metrics(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray,
                  brain: np.ndarray | None = None) -> dict[str, float]:
    """{"ssim", "psnr", "mse"} inside ``mask`` (True = inpainted) after percentile normalisation (see the module
    docstring). prediction, target: 2-D images of one shape; brain: the region whose percentiles normalise
    (default: target > 0)."""
    from skimage.metrics import structural_similarity

    prediction, target, mask = np.asarray(prediction, float), np.asarray(target, float), np.asarray(mask, bool)
    if prediction.shape != target.shape or mask.shape != target.shape:
        raise ValueError(f"mask: prediction {prediction.shape}, target {target.shape} and mask {mask.shape} must "
                         "have one shape")
    if not mask.any():
        raise ValueError("mask: selects no pixel")
    brain = target > 0 if brain is None else np.asarray(brain, bool)
    a = percentile_normalise(prediction, target, brain)
    b = percentile_normalise(target, target, brain)
    mse = float(((a - b)[mask] ** 2).mean())
    _, ssim_map = structural_similarity(b, a, data_range=1.0, win_size=7, full=True)
    return {"ssim": float(ssim_map[mask].mean()), "psnr": float(10 * np.log10(1.0 / max(mse, 1e-20))),
            "mse": mse}


def masked_psnr(clean: np.ndarray, estimate: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over mask (X, Y, Z) voxels of every volume of (X, Y, Z, N) arrays; peak = clean's maximum there."""
    region = np.broadcast_to(np.asarray(mask, bool)[..., None], clean.shape)
    peak = float(clean[region].max())
    mse = float(((np.asarray(clean, float)[region] - np.asarray(estimate, float)[region]) ** 2).mean())
    return float(10 * np.log10(peak**2 / max(mse, 1e-30)))


def image_metrics(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """{"psnr", "ssim", "mse"} of a whole 2-D slice; peak / data range = target's max - min."""
    from skimage.metrics import structural_similarity

    prediction, target = np.asarray(prediction, float), np.asarray(target, float)
    data_range = float(target.max() - target.min()) or 1.0
    mse = float(((prediction - target) ** 2).mean())
    return {"psnr": float(10 * np.log10(data_range**2 / max(mse, 1e-30))),
            "ssim": float(structural_similarity(target, prediction, data_range=data_range)), "mse": mse}
