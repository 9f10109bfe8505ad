"""Masked-region inpainting of 2-D slices with a diffusion prior, after "Multitask Brain Tumor Inpainting with
Diffusion Models" (Kim & Park, 2023) and the BraTS local-synthesis task: fill a masked region with healthy-looking
tissue consistent with the rest of the slice.

``inpaint(image, mask, prior=...)`` samples the prior's mask-conditional model (known image and mask as condition,
any core solver: method "conditional"), or runs core's RePaint (Lugmayr et al., 2022) or DDNM (Wang et al., 2023)
on :class:`polydiff.core.inverse.Mask` with the prior's unconditional model; the image is normalised by the
percentiles of its known pixels, so nothing inside the mask is read.
``tumour_mask`` draws seeded tumour-shaped regions of a given share of the brain area.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["inpaint", "tumour_mask", "INPAINT_METHODS"]

INPAINT_METHODS = ("conditional", "repaint", "ddnm")


def tumour_mask(brain: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded tumour-like blob inside ``brain`` (2-D bool) covering ``fraction`` of the brain area (within one
    pixel): a star-shaped region r(theta) = r0 (1 + sum_k a_k cos(k theta + phi_k)), k = 2..4, around a centre
    drawn deep inside the brain, with r0 found by bisection. Returns a bool mask (True = to fill)."""
    brain = np.asarray(brain, dtype=bool)
    if brain.ndim != 2 or brain.sum() < 16:
        raise ValueError(f"brain: expected a 2-D mask of at least 16 pixels, got shape {brain.shape}")
    if not 0 < fraction < 0.5:
        raise ValueError(f"fraction: expected a value in (0, 0.5), got {fraction}")
    from scipy.ndimage import distance_transform_edt

    rng = np.random.default_rng(seed)
    depth = distance_transform_edt(brain)
    target = fraction * brain.sum()
    candidates = np.argwhere(depth >= np.quantile(depth[brain], 0.6))
    centre = candidates[rng.integers(len(candidates))]
    amplitudes, phases = rng.uniform(0, 0.15, 3), rng.uniform(0, 2 * np.pi, 3)
    rows, cols = np.indices(brain.shape)
    radius = np.hypot(rows - centre[0], cols - centre[1])
    angle = np.arctan2(rows - centre[0], cols - centre[1])
    shape = 1 + sum(a * np.cos(k * angle + p) for k, a, p in zip((2, 3, 4), amplitudes, phases, strict=True))

    def region(r0):
        return (radius <= r0 * shape) & brain

    low, high = 0.0, float(max(brain.shape))
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if region(middle).sum() < target else (low, middle)
    return region(high)


def _check(image, mask):
    image = np.asarray(image)
    if image.ndim != 2 or not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise ValueError(f"image: expected a 2-D real image, got shape {image.shape} dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise ValueError("image: contains NaN or inf")
    mask = np.asarray(mask)
    if mask.shape != image.shape:
        raise ValueError(f"mask: expected the image's shape {image.shape}, got {mask.shape}")
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("mask: selects no pixel to fill")
    if mask.all():
        raise ValueError("mask: covers the whole image; nothing is known")
    return image, mask


def inpaint(image, mask, prior=None, *, method: str | None = None, steps: int = 50, jump_length: int = 5,
            jump_n_sample: int = 4, seed: int = 0, num_samples: int = 1, solver: str = "ddim",
            t_start: float | None = None) -> np.ndarray:
    """Fill ``mask`` (True = unknown) of a 2-D ``image`` with the diffusion ``prior`` (a fitted
    :class:`~polydiff.medical.prior.SlicePrior`; any H and W: the image is extended by its edge values to the
    U-Net's multiple and cut back). method: "conditional" (the prior's
    mask-conditional model sampled by the core solver ``solver``; the default for a conditional prior), "repaint"
    (resampling path of ``jump_length`` / ``jump_n_sample``; the default otherwise) or "ddnm"; ``steps`` grid
    steps ending at t = 0; ``num_samples`` > 1 averages that many posterior samples. t_start (conditional only):
    None starts from pure noise at the schedule's t_max; a time in (0, t_max] starts there from the harmonic
    fill noised to that level (SDEdit-style). Known pixels are returned unchanged; the output has image's dtype
    (integers rounded and clipped)."""
    from polydiff.core import make_grid, sample
    from polydiff.core.inverse import Mask, sample_ddnm, sample_repaint

    from .models import pad_to_multiple
    from .prior import SlicePrior, check_sampling, denormalise, known_channel, normalise

    image, mask = _check(image, mask)
    if method is not None and method not in INPAINT_METHODS:
        raise ValueError(f"method: expected one of {INPAINT_METHODS}, got {method!r}")
    if not isinstance(prior, SlicePrior):
        raise ValueError(f"prior: expected a fitted SlicePrior, got {type(prior).__name__}")
    if method is None:
        method = "conditional" if prior.conditional else "repaint"
    check_sampling(steps, num_samples, t_start)
    values = image.astype(np.float64)
    scaled, bounds = normalise(values, ~mask)
    # the U-Net needs sides that are multiples of its down-sampling factor: extend the image by its edge values
    # (known pixels) to the next multiple and cut the result back
    padded, (height, width) = pad_to_multiple(torch.from_numpy(scaled)[None, None], prior.multiple)
    scaled = padded[0, 0].numpy()
    mask = np.pad(mask, ((0, scaled.shape[0] - height), (0, scaled.shape[1] - width)))  # the added pixels: known
    denoiser = prior.denoiser
    operator = Mask(torch.from_numpy(~mask)[None])
    x_known = torch.from_numpy(scaled).float()[None, None]
    y = operator.forward(x_known)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((num_samples, 1) + scaled.shape, generator=generator)
    grid = make_grid(prior.schedule, steps, "logsnr", final_zero=True)
    if method == "conditional":
        known = torch.from_numpy(~mask).float()[None, None]
        given = torch.from_numpy(known_channel(scaled, mask, prior.config.fill)).float()[None, None]
        cond = torch.cat([given, known], dim=1).expand(num_samples, -1, -1, -1)
        start = None
        if t_start is not None:
            start = min(float(t_start), prior.schedule.t_max)
            level = torch.tensor(start, dtype=torch.float64)
            harmonic = torch.from_numpy(known_channel(scaled, mask, "harmonic")).float()[None, None]
            noise = float(prior.schedule.alpha(level)) * harmonic + float(prior.schedule.sigma(level)) * noise
        out = sample(prior.conditional_denoiser, noise, solver, steps, "logsnr", final_zero=True, cond={"cond": cond},
                     generator=generator, t_start=start)
    elif method == "repaint":
        out = sample_repaint(denoiser, noise, grid, operator, y, jump_length=min(jump_length, steps),
                             jump_n_sample=jump_n_sample, generator=generator)
    else:
        out = sample_ddnm(denoiser, noise, grid, operator, y, generator=generator)
    filled = denormalise(out.mean(0)[0].double().numpy(), bounds)[:height, :width]
    result = np.where(mask[:height, :width], filled, values)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(image.dtype)
    return result.astype(image.dtype)
