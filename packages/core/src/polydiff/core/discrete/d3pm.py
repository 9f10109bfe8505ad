"""D3PM: discrete-time diffusion in a discrete state space (Austin et al., 2021, "Structured Denoising
Diffusion Models in Discrete State-Spaces").

Tokens x: (batch, ...) long in [0, K); model logits over x_0: (batch, ..., K); time steps t: (batch,) long in
[1, T]. Each token is corrupted independently, ``q(x_t | x_0) = Cat(x_0 Qbar_t)`` (eq. 3), and the model
predicts x_0 (the x0-parameterisation of Section 3.3). Probabilities are computed in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import (
    check_logits,
    check_probs,
    check_time,
    check_tokens,
    random_integers,
    sample_categorical,
)
from .transitions import TRANSITIONS, cumulative_matrices, d3pm_betas, transition_matrices

__all__ = ["D3PM"]

_LOG_FLOOR = 1e-40  # probabilities are floored here before a log, so a zero model probability gives a
# large finite loss rather than inf / NaN
_DEFAULT_SCHEDULE = {"uniform": "cosine", "absorbing": "jsd", "gaussian": "linear"}


class D3PM:
    """A D3PM forward process with its posterior, model reverse step, hybrid loss and ancestral sampler.

    Args:
        kind: "uniform", "absorbing" or "gaussian" (the transition matrix, Appendix A.2).
        num_classes: K, the number of states; for "absorbing" it counts the mask state.
        num_steps: T.
        schedule: "cosine", "jsd" or "linear" (see :func:`d3pm_betas`); default by kind: uniform -> cosine,
            absorbing -> jsd (1 / (T - t + 1)), gaussian -> linear 0.02 .. 1.
        betas: explicit (T,) betas in (0, 1] instead of ``schedule``.
        mask_index: the mask state of "absorbing" (default K - 1); data never takes it.
        hybrid_weight: lambda of the hybrid loss L_vb + lambda * CE (Section 3.4, eq. 5).
        reverse_form: how the predicted x_0 law p~(x_0 | x_t) gives p(x_{t-1} | x_t):
            "marginal" (default) sums the true posterior over it,
            p(x_{t-1} | x_t) = sum_{x_0} q(x_{t-1} | x_t, x_0) p~(x_0 | x_t), so the exact q(x_0 | x_t) yields the
            exact reverse q(x_{t-1} | x_t); x_0 values that cannot reach x_t are dropped and p~ renormalised.
            "austin" is eq. 4 as written, p ∝ sum_{x_0} q(x_{t-1}, x_t | x_0) p~(x_0 | x_t), which weights p~
            by the likelihood q(x_t | x_0) once more.
    """

    def __init__(self, kind: str, num_classes: int, num_steps: int = 1000, *, schedule: str | None = None,
                 betas=None, mask_index: int | None = None, hybrid_weight: float = 0.01,
                 reverse_form: str = "marginal"):
        if kind not in TRANSITIONS:
            raise ValueError(f"kind: expected one of {TRANSITIONS}, got {kind!r}")
        if reverse_form not in ("marginal", "austin"):
            raise ValueError(f"reverse_form: expected 'marginal' or 'austin', got {reverse_form!r}")
        if not (isinstance(hybrid_weight, (int, float)) and hybrid_weight >= 0):
            raise ValueError(f"hybrid_weight: expected a number >= 0, got {hybrid_weight!r}")
        if betas is not None and schedule is not None:
            raise ValueError("schedule / betas: give at most one of them")
        if betas is None:
            betas = d3pm_betas(schedule or _DEFAULT_SCHEDULE[kind], num_steps)
        if kind == "absorbing" and mask_index is None:
            mask_index = num_classes - 1
        q = transition_matrices(kind, betas, num_classes, mask_index)
        if kind != "absorbing":
            mask_index = None
        self.kind, self.num_classes, self.num_steps = kind, num_classes, q.shape[0]
        self.mask_index, self.hybrid_weight, self.reverse_form = mask_index, float(hybrid_weight), reverse_form
        self.betas = torch.as_tensor(betas, dtype=torch.float64)
        eye = torch.eye(num_classes, dtype=torch.float64)[None]
        self.q_one_step = torch.cat([eye, q])  # (T + 1, K, K): index t holds Q_t, Q_0 = I for convenience
        self.q_cumulative = cumulative_matrices(q)  # (T + 1, K, K): Qbar_t
        if kind == "absorbing":
            self.prior = F.one_hot(torch.tensor(mask_index), num_classes).to(torch.float64)
        else:  # uniform and gaussian matrices are doubly stochastic: the stationary law is uniform
            self.prior = torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)
        self._device_cache: dict = {}

    # ------------------------------------------------------------------------------------------ helpers

    def _buffers(self, device) -> tuple[Tensor, Tensor, Tensor]:
        """(Q, Qbar, prior) on ``device``: (T + 1, K, K), (T + 1, K, K), (K,)."""
        key = str(device)
        if key not in self._device_cache:
            self._device_cache[key] = (self.q_one_step.to(device), self.q_cumulative.to(device),
                                       self.prior.to(device))
        return self._device_cache[key]

    @staticmethod
    def _rows(mats: Tensor, t: Tensor, index: Tensor) -> Tensor:
        """mats[t_b, index[b, ...], :]: (batch, ..., K) from mats (T + 1, K, K), t (batch,), index (batch, ...)."""
        return mats[t.view((-1,) + (1,) * (index.ndim - 1)), index]

    @staticmethod
    def _columns(mats: Tensor, t: Tensor, index: Tensor) -> Tensor:
        """mats[t_b, :, index[b, ...]]: (batch, ..., K), a column of each matrix (no transposed copy kept)."""
        return mats[t.view((-1,) + (1,) * (index.ndim - 1)), :, index]

    def _check_x(self, name: str, x, *, clean: bool = False) -> Tensor:
        x = check_tokens(name, x, self.num_classes)
        if clean and self.mask_index is not None and bool((x == self.mask_index).any()):
            raise ValueError(f"{name}: clean data may not contain the mask state {self.mask_index}")
        return x

    def _check_t(self, t, batch: int, low: int = 1) -> Tensor:
        return check_time("t", t, batch, low=low, high=self.num_steps, integer=True)

    # ------------------------------------------------------------------------------------- forward process

    def q_probs(self, x0: Tensor, t) -> Tensor:
        """q(x_t | x_0) = x_0 Qbar_t (eq. 3): (batch, ..., K) float64; t (batch,) in [0, T]."""
        x0 = self._check_x("x0", x0)
        t = self._check_t(t, x0.shape[0], low=0).to(x0.device)
        return self._rows(self._buffers(x0.device)[1], t, x0)

    def q_sample(self, x0: Tensor, t, generator: torch.Generator | None = None) -> Tensor:
        """Draw x_t ~ q(x_t | x_0): (batch, ...) long."""
        return sample_categorical(self.q_probs(x0, t), generator)

    def q_posterior_probs(self, x0: Tensor, x_t: Tensor, t) -> Tensor:
        """q(x_{t-1} | x_t, x_0) = (x_t Q_t^T) ⊙ (x_0 Qbar_{t-1}) / (x_0 Qbar_t x_t^T) (eq. 3), t in [1, T].

        Returns (batch, ..., K) float64 over x_{t-1}. Where x_t cannot be reached from x_0 the row is all zero.
        """
        x0, x_t = self._check_x("x0", x0), self._check_x("x_t", x_t)
        if x0.shape != x_t.shape:
            raise ValueError(f"x_t: expected the shape of x0 {tuple(x0.shape)}, got {tuple(x_t.shape)}")
        t = self._check_t(t, x0.shape[0]).to(x0.device)
        return self._posterior(x0, x_t, t)

    def _posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        q, qbar, _ = self._buffers(x0.device)
        joint = self._columns(q, t, x_t) * self._rows(qbar, t - 1, x0)
        return joint / joint.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)

    # -------------------------------------------------------------------------------------- reverse model

    def x0_log_probs(self, logits: Tensor) -> Tensor:
        """log p~(x_0 | x_t) from logits (batch, ..., K), in float64; the absorbing mask state gets -inf."""
        logits = logits.to(torch.float64)
        if self.mask_index is not None:
            logits = logits.index_fill(-1, torch.tensor([self.mask_index], device=logits.device), -torch.inf)
        return logits - torch.logsumexp(logits, -1, keepdim=True)  # log_softmax, faster for small K on CPU

    def model_probs(self, logits: Tensor, x_t: Tensor, t) -> Tensor:
        """p(x_{t-1} | x_t) from the x_0 logits (Section 3.3), as set by ``reverse_form``.

        logits: (batch, ..., K); x_t: (batch, ...); t: (batch,) in [1, T]. Returns (batch, ..., K) float64; at
        t = 1 it is the decoder p(x_0 | x_1).
        """
        x_t = self._check_x("x_t", x_t)
        check_logits("logits", logits, tuple(x_t.shape), self.num_classes)
        t = self._check_t(t, x_t.shape[0]).to(x_t.device)
        return self._model_probs(logits, x_t, t)

    def model_probs_from_x0(self, x0_probs: Tensor, x_t: Tensor, t) -> Tensor:
        """As :meth:`model_probs`, from the predicted law p~(x_0 | x_t) itself: x0_probs (batch, ..., K), each
        row non-negative and summing to one (for "absorbing" the mask state's probability is dropped)."""
        x_t = self._check_x("x_t", x_t)
        check_probs("x0_probs", x0_probs, tuple(x_t.shape) + (self.num_classes,))
        t = self._check_t(t, x_t.shape[0]).to(x_t.device)
        p0 = x0_probs.to(torch.float64)
        if self.mask_index is not None:
            p0 = p0.index_fill(-1, torch.tensor([self.mask_index], device=p0.device), 0.0)
        return self._reverse(p0, x_t, t)

    def _model_probs(self, logits: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        return self._reverse(self.x0_log_probs(logits).exp(), x_t, t)

    def _reverse(self, p0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        q, qbar, _ = self._buffers(x_t.device)
        if self.reverse_form == "marginal":
            likelihood = self._columns(qbar, t, x_t)  # q(x_t | x_0 = .) over x_0
            reachable = likelihood > 0
            p0 = p0 * reachable
            mass = p0.sum(-1, keepdim=True)
            fallback = reachable / reachable.sum(-1, keepdim=True).clamp_min(1)
            p0 = torch.where(mass > 0, p0 / mass.clamp_min(torch.finfo(torch.float64).tiny), fallback)
            p0 = torch.where(reachable, p0 / torch.where(reachable, likelihood, 1.0), 0.0)
        batch, k = x_t.shape[0], self.num_classes
        mixed = torch.bmm(p0.reshape(batch, -1, k), qbar[t - 1]).reshape(p0.shape)  # sum_x0 w(x0) Qbar_{t-1}[x0]
        joint = self._columns(q, t, x_t) * mixed
        return joint / joint.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)

    # ----------------------------------------------------------------------------------------------- loss

    def loss_terms(self, logits: Tensor, x0: Tensor, x_t: Tensor, t) -> tuple[Tensor, Tensor]:
        """The per-token terms of the hybrid loss (Section 3.4), each (batch, ...) float64 in nats:

        - vb: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 1 and the decoder NLL -log p(x_0 | x_1) at
          t = 1 (the terms L_{t-1} and L_0 of eq. 1);
        - ce: -log p~(x_0 | x_t), the auxiliary cross-entropy on the x_0 prediction.
        """
        x0, x_t = self._check_x("x0", x0, clean=True), self._check_x("x_t", x_t)
        if x0.shape != x_t.shape:
            raise ValueError(f"x_t: expected the shape of x0 {tuple(x0.shape)}, got {tuple(x_t.shape)}")
        check_logits("logits", logits, tuple(x0.shape), self.num_classes)
        t = self._check_t(t, x0.shape[0]).to(x0.device)
        log_p = self._model_probs(logits, x_t, t).clamp_min(_LOG_FLOOR).log()
        q = self._posterior(x0, x_t, t)
        kl = torch.where(q > 0, q * (q.clamp_min(_LOG_FLOOR).log() - log_p), 0.0).sum(-1)
        nll = -log_p.gather(-1, x0[..., None])[..., 0]
        first = (t == 1).view((-1,) + (1,) * (x0.ndim - 1))
        vb = torch.where(first, nll, kl)
        ce = -self.x0_log_probs(logits).clamp_min(-1e4).gather(-1, x0[..., None])[..., 0]
        return vb, ce

    def prior_kl(self, x0: Tensor) -> Tensor:
        """L_T = KL(q(x_T | x_0) || p(x_T)) per token, (batch, ...) float64 (uniform prior, or all-mask)."""
        x0 = self._check_x("x0", x0, clean=True)
        q_last = self._rows(self._buffers(x0.device)[1], torch.full((x0.shape[0],), self.num_steps,
                                                                    device=x0.device), x0)
        prior = self._buffers(x0.device)[2]
        return torch.where(q_last > 0, q_last * (q_last.clamp_min(_LOG_FLOOR).log()
                                                 - prior.clamp_min(_LOG_FLOOR).log()), 0.0).sum(-1)

    def loss(self, model: Callable[[Tensor, Tensor], Tensor], x0: Tensor, *, t=None,
             generator: torch.Generator | None = None) -> Tensor:
        """The hybrid loss L_vb + lambda * CE (eq. 5) at one t ~ U{1..T} per sample, averaged over tokens.

        model(x_t (batch, ...) long, t (batch,) long) -> logits (batch, ..., K) over x_0. The scalar returned
        has the logits' dtype. (T times its vb part, plus ``prior_kl``, is an unbiased estimate of L_vb.)
        """
        x0 = self._check_x("x0", x0, clean=True)
        batch = x0.shape[0]
        if t is None:
            t = random_integers(1, self.num_steps + 1, (batch,), generator, x0.device)
        t = self._check_t(t, batch).to(x0.device)
        x_t = sample_categorical(self._rows(self._buffers(x0.device)[1], t, x0), generator)
        logits = model(x_t, t)
        vb, ce = self.loss_terms(logits, x0, x_t, t)
        return (vb + self.hybrid_weight * ce).mean().to(logits.dtype)

    def nll_bound(self, model: Callable[[Tensor, Tensor], Tensor], x0: Tensor, *,
                  generator: torch.Generator | None = None) -> Tensor:
        """A one-sample unbiased estimate of L_vb (eq. 1) per sample, summed over tokens: (batch,) float64 nats.

        L_T + sum_{t=1}^{T} L_{t-1}, each term at one x_t ~ q(x_t | x_0); T model calls. Its expectation bounds
        -log p_theta(x_0) from above (divide by the token count and log 2 for bits per token).
        """
        x0 = self._check_x("x0", x0, clean=True)
        batch = x0.shape[0]
        qbar = self._buffers(x0.device)[1]
        total = self.prior_kl(x0).reshape(batch, -1).sum(-1)
        for step in range(1, self.num_steps + 1):
            t = torch.full((batch,), step, dtype=torch.long, device=x0.device)
            x_t = sample_categorical(self._rows(qbar, t, x0), generator)
            vb, _ = self.loss_terms(model(x_t, t), x0, x_t, t)
            total = total + vb.reshape(batch, -1).sum(-1)
        return total

    # -------------------------------------------------------------------------------------------- sampling

    def sample(self, model: Callable[[Tensor, Tensor], Tensor], shape: tuple[int, ...], *,
               generator: torch.Generator | None = None, device=None) -> Tensor:
        """Ancestral sampling: x_T ~ p(x_T), then x_{t-1} ~ p(x_{t-1} | x_t) for t = T .. 1.

        shape: (batch, ...) of the tokens. Returns (batch, ...) long. The model's output is validated (shape,
        NaN) on the first step only, to keep host syncs out of the loop.
        """
        if not (isinstance(shape, (tuple, list)) and len(shape) >= 1 and all(isinstance(s, int) and s > 0
                                                                              for s in shape)):
            raise ValueError(f"shape: expected a tuple of positive ints (batch, ...), got {shape!r}")
        prior = self._buffers(device or "cpu")[2]
        x = sample_categorical(prior.expand(tuple(shape) + (self.num_classes,)), generator)
        for step in range(self.num_steps, 0, -1):
            t = torch.full((shape[0],), step, dtype=torch.long, device=x.device)
            logits = model(x, t)
            if step == self.num_steps:
                check_logits("model output", logits, tuple(shape), self.num_classes)
            x = sample_categorical(self._model_probs(logits, x, t), generator)
        return x
