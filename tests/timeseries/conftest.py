"""Fixtures shared by the forecaster tests."""

import numpy as np
import pytest


@pytest.fixture
def persistence():
    """A stand-in for a trained network's sampler (``DiffusionForecaster._sample``) that carries the last observed
    residual over the horizon ``h`` in every one of its 16 paths: with it a forecast is the transform's reference
    plus that residual, so the inversion can be checked exactly."""

    def make(h: int):
        def sample(values, cond, side, ids):
            last = values[..., :-h][..., -1:]
            paths = np.concatenate([values[..., :-h], np.repeat(last, h, -1)], -1)
            return np.repeat(paths[:, None], 16, 1)

        return sample

    return make
