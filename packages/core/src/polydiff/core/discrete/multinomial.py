"""Multinomial diffusion over several categorical columns at once, in log space.

Hoogeboom et al. (2021), "Argmax Flows and Multinomial Diffusion", sec. 4, as TabDDPM (Kotelnikov et al., 2023,
sec. 3) uses it for every categorical column of a table. A column with K classes is corrupted towards the
uniform distribution:

    q(x_t | x_0)      = Cat(x_t; abar_t x_0 + (1 - abar_t) / K)                                   (eq. 13)
    q(x_t | x_s)      = Cat(x_t; r x_s + (1 - r) / K),  r = abar_t / abar_s,  for s < t
    q(x_s | x_t, x_0) ∝ [r x_t + (1 - r) / K] ⊙ [abar_s x_0 + (1 - abar_s) / K]                  (eq. 14)

The last line is Bayes' rule with the symmetric kernel; for s = t - 1 it is eq. 14 of the paper, and it holds for
any pair s < t, which lets a sampler jump over training steps. Everything is computed on log-probabilities with
``logaddexp`` so no column underflows even with hundreds of classes.

Layout: a table of C categorical columns with ``num_classes = [K_1, ..., K_C]`` is a flat vector of
``sum(K_c)`` entries per row (columns side by side, as TabDDPM's one-hot block); ``(batch, sum K)`` tensors hold
log-probabilities (log one-hot for observed data, ``-inf`` for impossible classes). Integer class tensors are
``(batch, C)`` longs. All per-column reductions are segment operations over this flat layout (no Python loop over
columns), so wide tables with hundreds of columns stay fast.

Time: every method takes ``log_alpha_bar`` values (batch,), so the same code serves a discrete chain (the
constructor's ``betas``; index ``n`` in ``0..N-1``, index ``-1`` is clean data) and any continuous schedule
(``2 * schedule.log_alpha(t)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["MultinomialDiffusion"]


def _log_one_minus_exp(log_value: Tensor) -> Tensor:
    """log(1 - exp(a)) for a <= 0, accurate near 0 (where 1 - exp(a) underflows)."""
    return torch.log(-torch.expm1(log_value.clamp_max(0.0)))


class MultinomialDiffusion:
    """Multinomial diffusion for C categorical columns of sizes ``num_classes``.

    Args:
        num_classes: class count of every column, each >= 1.
        betas: optional (N,) noise levels of the discrete training chain; ``log_alpha_bar(index)`` then gives
            log prod_{m <= n} (1 - beta_m). TabDDPM shares the Gaussian part's betas.

    Shapes: ``log_x``: (batch, sum K) log-probabilities; ``x``: (batch, C) class indices;
    ``log_alpha_bar``: (batch,) values <= 0 (0 means clean data).
    """

    def __init__(self, num_classes: Sequence[int], betas=None):
        num_classes = [int(k) for k in num_classes]
        if not num_classes or any(k < 1 for k in num_classes):
            raise ValueError(f"num_classes: expected a non-empty list of integers >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.num_columns = len(num_classes)
        self.width = sum(num_classes)
        sizes = torch.tensor(num_classes, dtype=torch.long)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)[:-1]])
        # for each flat entry: its column, and log K of that column
        self.column_of = torch.repeat_interleave(torch.arange(self.num_columns), sizes)
        self.log_k = torch.log(sizes.to(torch.float64))[self.column_of]
        self.log_alpha_bars = None
        if betas is not None:
            betas = np.asarray(betas, dtype=np.float64)
            if betas.ndim != 1 or betas.size < 1 or np.any(betas <= 0) or np.any(betas > 1):
                raise ValueError("betas: expected a 1-D array of values in (0, 1]")
            self.log_alpha_bars = torch.from_numpy(np.cumsum(np.log1p(-np.minimum(betas, 1 - 1e-12))))

    # ----------------------------------------------------------------------------------------- layout

    def _on(self, tensor: Tensor, *names: str) -> list[Tensor]:
        return [getattr(self, n).to(tensor.device) for n in names]

    def log_alpha_bar(self, index: Tensor) -> Tensor:
        """log abar at integer training indices (batch,), where index -1 means clean data (log abar = 0)."""
        if self.log_alpha_bars is None:
            raise ValueError("index: this MultinomialDiffusion was built without betas; pass log_alpha_bar")
        table = torch.cat([torch.zeros(1, dtype=torch.float64), self.log_alpha_bars]).to(index.device)
        return table[index.long() + 1]

    def to_log_onehot(self, x: Tensor, dtype=torch.float32) -> Tensor:
        """(batch, C) class indices -> (batch, sum K) log one-hot (0 at the class, -inf elsewhere)."""
        if x.ndim != 2 or x.shape[1] != self.num_columns:
            raise ValueError(f"x: expected shape (batch, {self.num_columns}), got {tuple(x.shape)}")
        (offsets,) = self._on(x, "offsets")
        onehot = torch.full((x.shape[0], self.width), -math.inf, dtype=dtype, device=x.device)
        return onehot.scatter_(1, x.long() + offsets, 0.0)

    def to_onehot(self, x: Tensor, dtype=torch.float32) -> Tensor:
        """(batch, C) class indices -> (batch, sum K) one-hot, the network's input for the categorical block."""
        (offsets,) = self._on(x, "offsets")
        onehot = torch.zeros((x.shape[0], self.width), dtype=dtype, device=x.device)
        return onehot.scatter_(1, x.long() + offsets, 1.0)

    def segment_logsumexp(self, log_x: Tensor) -> Tensor:
        """(batch, sum K) -> (batch, C): log sum_k exp(log_x) within each column."""
        (column_of,) = self._on(log_x, "column_of")
        index = column_of.expand_as(log_x)
        peak = torch.full((log_x.shape[0], self.num_columns), -math.inf, dtype=log_x.dtype, device=log_x.device)
        peak = peak.scatter_reduce(1, index, log_x, reduce="amax", include_self=True)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        total = torch.zeros_like(peak).scatter_add_(1, index, (log_x - peak.gather(1, index)).exp())
        return total.log() + peak

    def normalize(self, logits: Tensor) -> Tensor:
        """Per-column log-softmax of (batch, sum K) logits."""
        (column_of,) = self._on(logits, "column_of")
        return logits - self.segment_logsumexp(logits)[:, column_of]

    def segment_sum(self, values: Tensor) -> Tensor:
        """(batch, sum K) -> (batch, C): sum within each column."""
        (column_of,) = self._on(values, "column_of")
        out = torch.zeros((values.shape[0], self.num_columns), dtype=values.dtype, device=values.device)
        return out.scatter_add_(1, column_of.expand_as(values), values)

    def sample_classes(self, log_probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw one class per column by the Gumbel-max trick: (batch, sum K) log-probs -> (batch, C) indices."""
        (column_of, offsets) = self._on(log_probs, "column_of", "offsets")
        uniform = torch.rand(log_probs.shape, generator=generator, device=log_probs.device, dtype=torch.float64)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-300, 1 - 1e-16)))
        score = log_probs.to(torch.float64) + gumbel
        index = column_of.expand_as(score)
        best = torch.full((score.shape[0], self.num_columns), -math.inf, dtype=score.dtype, device=score.device)
        best = best.scatter_reduce(1, index, score, reduce="amax", include_self=True)
        position = torch.arange(self.width, device=score.device).expand_as(score)
        # the first position reaching the column maximum (ties have probability zero under Gumbel noise)
        hit = torch.where(score == best.gather(1, index), position, torch.full_like(position, self.width))
        first = torch.full_like(best, self.width, dtype=torch.long).scatter_reduce(1, index, hit, "amin")
        return first - offsets

    # ---------------------------------------------------------------------------------------- forward

    def _mix(self, log_x: Tensor, log_keep: Tensor) -> Tensor:
        """log(keep * x + (1 - keep) / K), keep = exp(log_keep) per sample: (batch, sum K)."""
        (log_k,) = self._on(log_x, "log_k")
        log_keep = log_keep.to(log_x.dtype)[:, None]
        return torch.logaddexp(log_x + log_keep, _log_one_minus_exp(log_keep) - log_k.to(log_x.dtype))

    def q_probs(self, log_x0: Tensor, log_alpha_bar: Tensor) -> Tensor:
        """log q(x_t | x_0) = log(abar_t x_0 + (1 - abar_t) / K) (eq. 13), (batch, sum K); x_0 may be soft."""
        return self._mix(log_x0, log_alpha_bar)

    def q_sample(self, x0: Tensor, log_alpha_bar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw x_t ~ q(x_t | x_0) for (batch, C) classes x0; returns (batch, C) classes."""
        return self.sample_classes(self.q_probs(self.to_log_onehot(x0, torch.float64), log_alpha_bar), generator)

    def posterior(self, log_x0: Tensor, log_x_t: Tensor, log_alpha_bar_t: Tensor,
                  log_alpha_bar_s: Tensor) -> Tensor:
        """log q(x_s | x_t, x_0) for s < t (eq. 14, generalised to any pair), normalised per column.

        log_x0: (batch, sum K) log-probs of x_0 (log one-hot, or a model's predicted distribution, plugged in
        linearly as TabDDPM does); log_x_t: (batch, sum K) log one-hot of the current state.
        """
        likelihood = self._mix(log_x_t, log_alpha_bar_t - log_alpha_bar_s)  # q(x_t | x_s = k), symmetric in k
        prior = self._mix(log_x0, log_alpha_bar_s)
        return self.normalize(likelihood + prior)

    # ---------------------------------------------------------------------------------------- reverse

    def model_step_probs(self, logits: Tensor, log_x_t: Tensor, log_alpha_bar_t: Tensor,
                         log_alpha_bar_s: Tensor) -> Tensor:
        """log p(x_s | x_t): the posterior with the model's predicted x_0 (logits, (batch, sum K)) plugged in;
        at clean data (log_alpha_bar_s == 0) it is the predicted x_0 distribution itself (TabDDPM's t = 0)."""
        log_x0 = self.normalize(logits)
        step = self.posterior(log_x0, log_x_t, log_alpha_bar_t, log_alpha_bar_s)
        clean = (log_alpha_bar_s >= 0)[:, None]
        return torch.where(clean, log_x0, step)

    def reverse_step(self, logits: Tensor, x_t: Tensor, log_alpha_bar_t: Tensor, log_alpha_bar_s: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
        """One ancestral step x_t -> x_s ~ p(x_s | x_t) from the model's x_0 logits; (batch, C) classes."""
        log_x_t = self.to_log_onehot(x_t, logits.dtype)
        return self.sample_classes(self.model_step_probs(logits, log_x_t, log_alpha_bar_t, log_alpha_bar_s),
                                   generator)

    def sample_prior(self, batch: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """x_T ~ uniform over each column's classes: (batch, C)."""
        uniform = torch.zeros((batch, self.width), dtype=torch.float64, device=device)
        return self.sample_classes(self.normalize(uniform), generator)

    # ------------------------------------------------------------------------------------------- loss

    def loss(self, logits: Tensor, x0: Tensor, x_t: Tensor, index: Tensor) -> Tensor:
        """The variational bound term of the discrete chain at training index n (batch,), summed over columns.

        n > 0: KL(q(x_{n-1} | x_n, x_0) || p(x_{n-1} | x_n)) (Hoogeboom et al., 2021, eq. 15);
        n = 0: the decoder NLL -log p(x_0 | x_1) = -log softmax(logits)[x_0].
        logits: (batch, sum K) the model's x_0 logits; x0, x_t: (batch, C) classes. Returns (batch,).
        """
        log_x0 = self.to_log_onehot(x0, logits.dtype)
        log_x_t = self.to_log_onehot(x_t, logits.dtype)
        log_abar_t = self.log_alpha_bar(index)
        log_abar_s = self.log_alpha_bar(index - 1)
        log_q = self.posterior(log_x0, log_x_t, log_abar_t, log_abar_s)
        log_p = self.model_step_probs(logits, log_x_t, log_abar_t, log_abar_s)
        q = log_q.exp()
        # 0 * log 0 terms are 0: mask them before the subtraction so -inf - -inf never appears
        kl = torch.where(q > 0, q * (log_q - log_p), torch.zeros_like(q))
        kl = self.segment_sum(kl).sum(1)
        nll = -torch.where(torch.isfinite(log_x0), log_p, torch.zeros_like(log_p)).sum(1)
        return torch.where(index == 0, nll, kl)

    def prior_kl(self, x0: Tensor) -> Tensor:
        """KL(q(x_N | x_0) || uniform) summed over columns, (batch,): the bound's constant prior term."""
        log_q = self.q_probs(self.to_log_onehot(x0, torch.float64),
                             self.log_alpha_bars[-1].expand(x0.shape[0]).to(x0.device))
        (log_k,) = self._on(log_q, "log_k")
        return self.segment_sum(log_q.exp() * (log_q + log_k)).sum(1)
