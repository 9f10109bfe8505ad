"""Probabilistic forecast metrics, as GluonTS, statsforecast's utilsforecast and the Chronos benchmark define them.

Shapes: ``y`` (points,) or any shape; ``samples`` (num_samples, *y.shape); ``quantiles`` (num_levels, *y.shape)
at probability ``levels`` (num_levels,). All functions take numpy arrays (or array-likes) and return floats or
arrays.

    crps_samples      energy form  E|X - y| - E|X - X'| / 2  (Gneiting & Raftery, 2007, eq. 21), per point
    crps_quantiles    2 * mean over levels of the pinball loss: the quantile approximation of CRPS, per point
    wql               weighted quantile loss  sum_points crps_quantiles / sum |y|  (GluonTS mean_wQuantileLoss)
    crps_sum          wql of the sum over series (TimeGrad's CRPS-sum, Rasul et al., 2021)
    mase              mean |y - yhat| / mean |insample_t - insample_{t - season}|  (Hyndman & Koehler, 2006)
    coverage, width   share of points inside [lo, hi] and the mean interval width
    discriminative_score, frechet_distance   for generation (Diffusion-TS, Yuan & Qiao, 2024, sec. 5.1)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["QUANTILE_LEVELS", "crps_samples", "crps_quantiles", "pinball_loss", "wql", "crps_sum", "mase", "coverage",
           "interval_width", "sample_quantiles", "discriminative_score", "frechet_distance", "level_quantiles"]

#: the 19 levels 0.05, 0.10, ..., 0.95 used for wQL and the quantile CRPS
QUANTILE_LEVELS = np.round(np.arange(1, 20) / 20, 2)


def _array(value, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or inf")
    return array


def crps_samples(y, samples) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` (m, *shape) at ``y`` (*shape), per point:
    (1/m) sum_i |x_i - y| - (1/(2 m^2)) sum_ij |x_i - x_j|, with the pair term from the sorted samples,
    sum_ij |x_i - x_j| = 2 sum_i (2 i - m - 1) x_(i)."""
    y, samples = _array(y, "y"), _array(samples, "samples")
    if samples.ndim < 1 or samples.shape[1:] != y.shape:
        raise ValueError(f"samples: expected shape (num_samples, *{y.shape}), got {samples.shape}")
    m = samples.shape[0]
    first = np.abs(samples - y[None]).mean(0)
    ordered = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, m + 1) - m - 1).reshape((m,) + (1,) * y.ndim)
    pairs = 2 * (weights * ordered).sum(0) / m**2
    return first - pairs / 2


def pinball_loss(y, quantiles, levels) -> np.ndarray:
    """rho_q(y - q_hat) = max(q (y - q_hat), (q - 1) (y - q_hat)) per level and point: (num_levels, *shape)."""
    y, quantiles, levels = _array(y, "y"), _array(quantiles, "quantiles"), _array(levels, "levels")
    if levels.ndim != 1 or np.any((levels <= 0) | (levels >= 1)):
        raise ValueError("levels: expected a 1-D array of probabilities in (0, 1)")
    if quantiles.shape != (len(levels), *y.shape):
        raise ValueError(f"quantiles: expected shape ({len(levels)}, *{y.shape}), got {quantiles.shape}")
    q = levels.reshape((-1,) + (1,) * y.ndim)
    error = y[None] - quantiles
    return np.maximum(q * error, (q - 1) * error)


def crps_quantiles(y, quantiles, levels=QUANTILE_LEVELS) -> np.ndarray:
    """2 x the mean pinball loss over the levels, per point: the CRPS as the integral of the quantile score,
    approximated on ``levels`` (the 19 levels 0.05..0.95 by default)."""
    return 2 * pinball_loss(y, quantiles, levels).mean(0)


def wql(y, quantiles, levels=QUANTILE_LEVELS) -> float:
    """Weighted quantile loss: sum of ``crps_quantiles`` over all points / sum |y|."""
    y = _array(y, "y")
    scale = np.abs(y).sum()
    if scale == 0:
        raise ValueError("y: sum |y| is 0, the weighted quantile loss is undefined")
    return float(crps_quantiles(y, quantiles, levels).sum() / scale)


def sample_quantiles(samples, levels=QUANTILE_LEVELS) -> np.ndarray:
    """Empirical quantiles of ``samples`` (m, *shape) at ``levels``: (num_levels, *shape) (linear interpolation,
    numpy's default)."""
    return np.quantile(_array(samples, "samples"), _array(levels, "levels"), axis=0)


def level_quantiles(levels) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper probabilities of central intervals at ``levels`` percent: (1 - l/100)/2, (1 + l/100)/2."""
    levels = _array(levels, "level")
    if np.any((levels <= 0) | (levels >= 100)):
        raise ValueError(f"level: expected percentages in (0, 100), got {levels.tolist()}")
    return (1 - levels / 100) / 2, (1 + levels / 100) / 2


def crps_sum(y, samples, levels=QUANTILE_LEVELS) -> float:
    """CRPS-sum: the wQL of the sum over series. y: (time, series); samples: (m, time, series)."""
    y, samples = _array(y, "y"), _array(samples, "samples")
    if y.ndim != 2 or samples.ndim != 3 or samples.shape[1:] != y.shape:
        raise ValueError(f"samples: expected shape (num_samples, time, series) matching y {y.shape}, got "
                         f"{samples.shape}")
    total = samples.sum(-1)
    return wql(y.sum(-1), sample_quantiles(total, levels), levels)


def mase(y, point, insample, season: int = 1) -> float:
    """Mean absolute scaled error: mean |y - point| / mean |insample[s:] - insample[:-s]| (seasonal naive scale)."""
    y, point, insample = _array(y, "y"), _array(point, "point"), _array(insample, "insample")
    if point.shape != y.shape:
        raise ValueError(f"point: shape {point.shape} differs from y {y.shape}")
    if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 1:
        raise ValueError(f"season: expected a positive integer, got {season!r}")
    if insample.ndim != 1 or len(insample) <= season:
        raise ValueError(f"insample: expected a 1-D history longer than season={season}, got shape {insample.shape}")
    scale = np.abs(insample[season:] - insample[:-season]).mean()
    if scale == 0:
        raise ValueError("insample: the seasonal naive in-sample error is 0, MASE is undefined")
    return float(np.abs(y - point).mean() / scale)


def coverage(y, lo, hi) -> float:
    """Share of points with lo <= y <= hi."""
    y, lo, hi = _array(y, "y"), _array(lo, "lo"), _array(hi, "hi")
    return float(((y >= lo) & (y <= hi)).mean())


def interval_width(lo, hi) -> float:
    """Mean width hi - lo."""
    return float((_array(hi, "hi") - _array(lo, "lo")).mean())


# ------------------------------------------------------------------------------------------------ generation


def frechet_distance(real_features, fake_features) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (n, d):
    |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)) (Heusel et al., 2017, the FID formula)."""
    from scipy import linalg

    real, fake = _array(real_features, "real_features"), _array(fake_features, "fake_features")
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1] or min(len(real), len(fake)) < 2:
        raise ValueError(f"real_features, fake_features: expected (n, d) arrays with the same d and n >= 2, got "
                         f"{real.shape}, {fake.shape}")
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    root = linalg.sqrtm(cov_r @ cov_f)
    root = np.real(root)
    return float(np.sum((mu_r - mu_f) ** 2) + np.trace(cov_r + cov_f - 2 * root))


def discriminative_score(real, fake, *, steps: int = 1000, hidden: int = 16, seed: int = 0) -> float:
    """|accuracy - 0.5| of a 1-layer GRU classifier telling real from generated sequences on a held-out 20 %
    (the post-hoc discriminator of TimeGAN / Diffusion-TS). real, fake: (n, length, channels); 0 is ideal."""
    import torch
    from torch import nn

    real, fake = _array(real, "real"), _array(fake, "fake")
    if real.ndim != 3 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real, fake: expected (n, length, channels) arrays of equal shape, got {real.shape}, "
                         f"{fake.shape}")
    n = min(len(real), len(fake))
    rng = np.random.default_rng(seed)
    x = np.concatenate([real[rng.permutation(len(real))[:n]], fake[rng.permutation(len(fake))[:n]]])
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    order = rng.permutation(2 * n)
    split = int(0.8 * 2 * n)
    train, test = order[:split], order[split:]
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.gru = nn.GRU(x.shape[2], hidden, batch_first=True)
                self.head = nn.Linear(hidden, 1)

            def forward(self, batch):
                return self.head(self.gru(batch)[1][-1]).squeeze(-1)

        model = Classifier()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        inputs = torch.as_tensor(x, dtype=torch.float32)
        targets = torch.as_tensor(labels, dtype=torch.float32)
        train_index = torch.as_tensor(train)
        for _ in range(steps):
            batch = train_index[torch.randint(len(train_index), (128,), generator=generator)]
            loss = nn.functional.binary_cross_entropy_with_logits(model(inputs[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            predicted = (model(inputs[torch.as_tensor(test)]) > 0).float()
        accuracy = float((predicted == targets[torch.as_tensor(test)]).float().mean())
    return abs(accuracy - 0.5) if math.isfinite(accuracy) else math.nan
