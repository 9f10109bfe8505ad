"""The tie-aware Gaussian quantile transform of one numeric column: TabDDPM's numerical preprocessing.

Kotelnikov et al. (2023, sec. 4) map every numerical column through scikit-learn's
``QuantileTransformer(output_distribution="normal")``. It is written here with one change for tied values: a value v
maps to z = Phi^-1(mid-CDF(v)), mid-CDF(v) = (#{x < v} + #{x = v} / 2) / n, interpolated linearly between at most
``MAX_KNOTS`` knots. scikit-learn sends every copy of the minimum of a column to -5.2 (its clipping bound), so an
integer column whose smallest value holds 40 % of the rows (HMDA's ``chist``) becomes a spike at -5.2 with standard
deviation 3.5 — a hard target for a diffusion model that assumes unit scale. With mid-CDF knots the same column is
a set of well-separated points inside [-3.5, 3.5]. The inverse is the exact empirical quantile function for a
discrete column with at most ``SNAP_LIMIT`` values (u = Phi(z) -> the value whose CDF interval holds u, which keeps
the level frequencies) and linear interpolation between knots otherwise, where a value holding at least
``ATOM_SHARE`` of the rows keeps its whole CDF interval.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["QuantileNormal", "SNAP_LIMIT", "MAX_KNOTS", "ATOM_SHARE"]

SNAP_LIMIT = 256
MAX_KNOTS = 1000
ATOM_SHARE = 0.005


class QuantileNormal:
    """The tie-aware Gaussian quantile transform of one numeric column (module docstring).

    ``knots``: (k,) increasing values; ``scores``: (k,) their normal scores Phi^-1(mid-CDF); ``cdf``: (k,) the
    empirical CDF at each knot (used by the exact discrete inverse when ``discrete``).
    """

    def __init__(self, knots: np.ndarray, scores: np.ndarray, cdf: np.ndarray, discrete: bool,
                 lower: np.ndarray | None = None):
        self.knots, self.scores, self.cdf, self.discrete = knots, scores, cdf, discrete
        self.lower = cdf if lower is None else lower
        # atoms: values holding at least ATOM_SHARE of the rows (a column's many zeros); the inverse maps their
        # whole CDF interval onto the value, so a spike stays a spike instead of being smeared by interpolation
        self.atoms = np.flatnonzero(self.cdf - self.lower >= ATOM_SHARE)

    @classmethod
    def fit(cls, values: np.ndarray, discrete: bool) -> QuantileNormal:
        ordered = np.sort(np.asarray(values, np.float64))
        n = ordered.size
        unique = np.unique(ordered)
        discrete = discrete and unique.size <= SNAP_LIMIT  # the exact inverse only for few distinct values
        if unique.size <= MAX_KNOTS:
            knots = unique
        else:
            knots = np.unique(np.quantile(ordered, np.linspace(0, 1, MAX_KNOTS)))
        below = np.searchsorted(ordered, knots, "left")
        upto = np.searchsorted(ordered, knots, "right")
        scores = ndtri(np.clip((below + upto) / (2.0 * n), 1e-7, 1 - 1e-7))
        return cls(knots, scores, upto / n, discrete, below / n)

    def transform(self, values: np.ndarray) -> np.ndarray:
        if self.knots.size == 1:
            return np.zeros_like(values, dtype=np.float64)
        return np.interp(values, self.knots, self.scores)

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        if self.knots.size == 1:
            return np.full(np.shape(scores), self.knots[0])
        if self.discrete:
            index = np.searchsorted(self.cdf, ndtr(scores), "left")
            return self.knots[np.clip(index, 0, self.knots.size - 1)]
        values = np.interp(scores, self.scores, self.knots)
        if self.atoms.size:
            u = ndtr(scores)
            for k in self.atoms:
                values = np.where((u >= self.lower[k]) & (u <= self.cdf[k]), self.knots[k], values)
        return values
