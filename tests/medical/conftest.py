"""Small shared fixtures: a tiny DWI and a tiny fitted slice prior (trained a few steps, once per session)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_dwi():
    """A 16 x 16 x 2 x 8 DWI (2 b0 + 6 weighted volumes) with Rician-like noise, float32, and its b-values."""
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(-1, 1, 16), np.linspace(-1, 1, 16), indexing="ij")
    anatomy = 100 + 50 * (x**2 + y**2 < 0.5)
    bvals = np.array([0, 1000, 1000, 0, 2000, 2000, 1000, 2000], dtype=float)
    attenuation = np.exp(-bvals / 1000 * rng.uniform(0.5, 1.5, size=bvals.size))
    clean = anatomy[:, :, None, None] * np.ones((1, 1, 2, 1)) * attenuation
    noisy = np.abs(clean + 5 * rng.standard_normal(clean.shape)).astype(np.float32)
    return noisy, bvals


@pytest.fixture(scope="session")
def tiny_prior():
    from polydiff.medical.prior import SlicePrior

    rng = np.random.default_rng(1)
    images = np.clip(rng.standard_normal((4, 16, 16)) * 0.3, -1, 1)
    return SlicePrior(train_steps=2, batch_size=2, crop=16, channels=(8, 8, 8), seed=0, device="cpu").fit(images)
