"""The benchmark's data: a Gaussian mixture whose noisy marginals, and hence whose exact eps-prediction, are known.

For data x0 ~ sum_k w_k N(mu_k, S_k) and x_t = alpha x0 + sigma eps, every marginal is again a mixture,
component k being N(alpha mu_k, C_k) with C_k = alpha^2 S_k + sigma^2 I. Its score is
    grad log p_t(x) = -sum_k r_k(x) C_k^{-1} (x - alpha mu_k),   r_k = posterior responsibility of component k,
and the ideal network output is eps = -sigma * score (Song et al., 2021, "Score-Based Generative Modeling through
SDEs", eq. 4 and the eps-score identity of Ho et al., 2020). Writing S_k = U_k diag(e_k) U_k^T once, C_k has the
same eigenvectors and eigenvalues alpha^2 e_k + sigma^2, so a whole batch at per-sample times costs
O(batch * components * dim^2) with no matrix inverse in the loop.

Shapes: x (batch, dim); alpha, sigma scalars or (batch,).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..schedules import DiscreteSchedule, NoiseSchedule

__all__ = ["GaussianMixture", "make_mixture", "eps_model"]


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A mixture of K Gaussians in ``dim`` dimensions (float64 parameters).

    weights: (K,) positive, summing to 1; means: (K, dim); variances: (K, dim) eigenvalues of each S_k;
    bases: (K, dim, dim) orthonormal eigenvectors (columns) of each S_k, or None for axis-aligned components
    (isotropic when every row of ``variances`` is constant).
    """

    weights: Tensor
    means: Tensor
    variances: Tensor
    bases: Tensor | None = None

    def __post_init__(self):
        k, d = self.means.shape if self.means.ndim == 2 else (None, None)
        if k is None:
            raise ValueError(f"means: expected shape (components, dim), got {tuple(self.means.shape)}")
        if self.weights.shape != (k,) or bool((self.weights <= 0).any()) or abs(float(self.weights.sum()) - 1) > 1e-9:
            raise ValueError("weights: expected (components,) positive values summing to 1")
        if self.variances.shape != (k, d) or bool((self.variances <= 0).any()):
            raise ValueError(f"variances: expected ({k}, {d}) positive eigenvalues")
        if self.bases is not None and self.bases.shape != (k, d, d):
            raise ValueError(f"bases: expected ({k}, {d}, {d}) orthonormal matrices or None")
        # decided once here: a check inside score() would be a host sync on every model call
        isotropic = self.bases is None and bool((self.variances == self.variances[:, :1]).all())
        object.__setattr__(self, "_isotropic", isotropic)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def isotropic(self) -> bool:
        """Every component a multiple of the identity (no bases, one variance per row)."""
        return self._isotropic

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def _marginal_terms(self, x: Tensor, alpha, sigma) -> tuple[Tensor, Tensor, Tensor]:
        """(log responsibilities unnormalised (B, K), whitened-by-variance residual C^{-1}(x - alpha mu) in the
        eigenbasis (B, K, d), variances (B, K, d))."""
        dtype = x.dtype
        alpha = torch.as_tensor(alpha, dtype=dtype, device=x.device).reshape(-1, 1, 1)
        sigma = torch.as_tensor(sigma, dtype=dtype, device=x.device).reshape(-1, 1, 1)
        means, variances = self.means.to(x), self.variances.to(x)
        residual = x[:, None, :] - alpha * means[None]  # (B, K, d)
        if self.bases is not None:
            residual = torch.einsum("bkd,kde->bke", residual, self.bases.to(x))
        var = alpha**2 * variances[None] + sigma**2  # (B or 1, K, d)
        scaled = residual / var
        log_density = -0.5 * (residual * scaled).sum(-1) - 0.5 * var.log().sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return self.weights.to(x).log()[None] + log_density, scaled, var

    def _isotropic_terms(self, x: Tensor, alpha, sigma) -> tuple[Tensor, Tensor]:
        """(log responsibilities unnormalised (B, K), variances (B or 1, K)) of an isotropic mixture, from
        |x - alpha mu_k|^2 = |x|^2 - 2 alpha x.mu_k + alpha^2 |mu_k|^2: one (B, d) x (d, K) product instead of
        (B, K, d) residuals."""
        dtype = x.dtype
        alpha = torch.as_tensor(alpha, dtype=dtype, device=x.device).reshape(-1, 1)
        sigma = torch.as_tensor(sigma, dtype=dtype, device=x.device).reshape(-1, 1)
        means = self.means.to(x)
        var = alpha**2 * self.variances[:, 0].to(x)[None] + sigma**2  # (B or 1, K)
        squared = ((x * x).sum(-1, keepdim=True) - 2 * alpha * (x @ means.T) + alpha**2 * (means * means).sum(-1)[None])
        log_density = -0.5 * squared / var - 0.5 * self.dim * (var.log() + math.log(2 * math.pi))
        return self.weights.to(x).log()[None] + log_density, var

    def log_prob(self, x: Tensor, alpha=1.0, sigma=0.0) -> Tensor:
        """log p_t(x) of the marginal at (alpha, sigma): (batch,)."""
        if self.isotropic:
            return torch.logsumexp(self._isotropic_terms(x, alpha, sigma)[0], dim=1)
        log_joint, _, _ = self._marginal_terms(x, alpha, sigma)
        return torch.logsumexp(log_joint, dim=1)

    def score(self, x: Tensor, alpha=1.0, sigma=0.0) -> Tensor:
        """grad_x log p_t(x): (batch, dim), in x's dtype."""
        if self.isotropic:  # -sum_k r_k (x - alpha mu_k) / var_k = -(x sum_k r_k / var_k - alpha (r / var) mu)
            log_joint, var = self._isotropic_terms(x, alpha, sigma)
            weight = torch.softmax(log_joint, dim=1) / var  # (B, K)
            alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device).reshape(-1, 1)
            return -(x * weight.sum(-1, keepdim=True) - alpha * (weight @ self.means.to(x)))
        log_joint, scaled, _ = self._marginal_terms(x, alpha, sigma)
        responsibility = torch.softmax(log_joint, dim=1)[..., None]
        weighted = (responsibility * scaled)  # (B, K, d) in the eigenbasis
        if self.bases is not None:
            weighted = torch.einsum("bke,kde->bkd", weighted, self.bases.to(x))
        return -weighted.sum(1)

    def eps(self, x: Tensor, alpha, sigma) -> Tensor:
        """The exact noise prediction E[eps | x_t = x] = -sigma * score: (batch, dim)."""
        sigma_b = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1)
        return -sigma_b * self.score(x, alpha, sigma)

    def sample(self, n: int, generator: torch.Generator, alpha=1.0, sigma=0.0, dtype=torch.float64) -> Tensor:
        """n exact samples of the marginal alpha x0 + sigma eps: (n, dim)."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x0 = z * self.variances[component].sqrt()
        if self.bases is not None:
            x0 = torch.einsum("ke,kde->kd", x0, self.bases[component])
        x0 = x0 + self.means[component]
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (alpha * x0 + sigma * noise).to(dtype)


def make_mixture(dim: int = 16, components: int = 8, seed: int = 0, anisotropic: bool = False,
                 std_range: tuple[float, float] = (0.05, 0.3)) -> GaussianMixture:
    """The benchmark mixture: means ~ N(0, I), weights = softmax(N(0, 0.5^2)), component standard deviations
    log-uniform in ``std_range`` (one per component when isotropic; one per axis of a random rotation when
    ``anisotropic``)."""
    if dim < 1 or components < 1:
        raise ValueError(f"dim, components: expected positive integers, got {dim}, {components}")
    if not 0 < std_range[0] <= std_range[1]:
        raise ValueError(f"std_range: expected 0 < low <= high, got {std_range}")
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((components, dim))
    logits = 0.5 * rng.standard_normal(components)
    weights = np.exp(logits) / np.exp(logits).sum()
    low, high = np.log(std_range[0]), np.log(std_range[1])
    if anisotropic:
        stds = np.exp(rng.uniform(low, high, (components, dim)))
        bases = np.stack([np.linalg.qr(rng.standard_normal((dim, dim)))[0] for _ in range(components)])
    else:
        stds = np.repeat(np.exp(rng.uniform(low, high, (components, 1))), dim, axis=1)
        bases = None
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return GaussianMixture(as_t(weights), as_t(means), as_t(stds**2), None if bases is None else as_t(bases))


def eps_model(mixture: GaussianMixture, schedule: NoiseSchedule) -> Callable[[Tensor, Tensor], Tensor]:
    """The exact eps network ``model(x, t_model) -> eps`` for ``schedule``: t_model is what the network receives
    (``schedule.model_input(t)``; for a DiscreteSchedule the fractional training index t N - 1, as diffusers
    passes its integer timesteps). A scalar t_model is broadcast over the batch. Works in x's dtype."""
    if isinstance(schedule, DiscreteSchedule):
        n = schedule.num_train_timesteps
        to_time = lambda t_model: (t_model.to(torch.float64) + 1) / n  # noqa: E731
    elif type(schedule).model_input is NoiseSchedule.model_input:
        to_time = lambda t_model: t_model.to(torch.float64)  # noqa: E731
    else:
        raise ValueError(f"schedule: eps_model needs a discrete schedule or one whose model input is t, "
                         f"got {type(schedule).__name__}")

    def model(x: Tensor, t_model) -> Tensor:
        t = to_time(torch.as_tensor(t_model, device=x.device)).reshape(-1)
        alpha, sigma = schedule.alpha_sigma(t)
        return mixture.eps(x, alpha.to(x.dtype), sigma.to(x.dtype))

    return model
