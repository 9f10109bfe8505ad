"""MDLM: continuous-time masked diffusion (Sahoo et al., 2024, "Simple and Effective Masked Diffusion Language
Models").

Each clean token stays visible at time t in [0, 1] with probability alpha(t) and is otherwise replaced by the
mask state m (alpha(0) = 1, alpha decreasing). The network sees z_t (batch, ...) long and t (batch,) and returns
logits (batch, ..., K) over x_0; the SUBS parameterisation (Section 3.2.3) sets the mask logit to -inf and copies
visible tokens through. The NELBO (eq. 10) is

    L = integral_0^1  -alpha'(t) / (1 - alpha(t))  E_q[ sum_{l: z_t^l = m} -log p_theta(x^l | z_t) ] dt,

which equals -log p(x) exactly when p_theta(x^l | z_t) is the true conditional of x^l given z_t's visible tokens
and alpha(1) = 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ._validation import check_logits, check_time, check_tokens, sample_categorical, uniform

__all__ = ["MaskingSchedule", "subs_log_probs", "mdlm_nelbo", "mdlm_sample", "mdlm_sample_first_hitting"]

_SCHEDULES = ("loglinear", "cosine")


@dataclass(frozen=True)
class MaskingSchedule:
    """alpha(t), the probability that a token is still visible at time t.

    - "loglinear": alpha(t) = 1 - (1 - eps) t (MDLM's log-linear noise, total noise -log(1 - (1 - eps) t));
    - "cosine": alpha(t) = eps + (1 - eps) cos(pi t / 2).
    Both have alpha(0) = 1 and alpha(1) = eps; eps = 0 masks everything at t = 1 (the exact-bound setting).
    """

    kind: str = "loglinear"
    eps: float = 1e-3

    def __post_init__(self):
        if self.kind not in _SCHEDULES:
            raise ValueError(f"kind: expected one of {_SCHEDULES}, got {self.kind!r}")
        if not (isinstance(self.eps, (int, float)) and 0 <= self.eps < 1):
            raise ValueError(f"eps: expected a number in [0, 1), got {self.eps!r}")

    def alpha(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "loglinear":
            return 1 - (1 - self.eps) * t
        return self.eps + (1 - self.eps) * torch.cos(math.pi / 2 * t)

    def alpha_derivative(self, t: Tensor) -> Tensor:
        """d alpha / dt (negative)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "loglinear":
            return torch.full_like(t, -(1 - self.eps))
        return -(1 - self.eps) * math.pi / 2 * torch.sin(math.pi / 2 * t)

    def loss_weight(self, t: Tensor) -> Tensor:
        """-alpha'(t) / (1 - alpha(t)) > 0, the NELBO weight of eq. 10 (t in (0, 1])."""
        return -self.alpha_derivative(t) / (1 - self.alpha(t))

    def time_from_alpha(self, alpha: Tensor) -> Tensor:
        """The inverse of ``alpha`` on [eps, 1]."""
        alpha = torch.as_tensor(alpha, dtype=torch.float64)
        if self.kind == "loglinear":
            return (1 - alpha) / (1 - self.eps)
        return 2 / math.pi * torch.arccos(((alpha - self.eps) / (1 - self.eps)).clamp(-1, 1))


def _check_schedule(schedule) -> MaskingSchedule:
    if not isinstance(schedule, MaskingSchedule):
        raise ValueError(f"schedule: expected a MaskingSchedule, got {type(schedule).__name__}")
    return schedule


def _check_clean(x0, num_classes: int, mask_index: int) -> Tensor:
    _check_mask_index(num_classes, mask_index)
    x0 = check_tokens("x0", x0, num_classes)
    if bool((x0 == mask_index).any()):
        raise ValueError(f"x0: clean data may not contain the mask index {mask_index}")
    return x0


def _check_mask_index(num_classes, mask_index) -> None:
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes: expected an integer >= 2 (data classes plus the mask), got {num_classes!r}")
    if not isinstance(mask_index, int) or not 0 <= mask_index < num_classes:
        raise ValueError(f"mask_index: expected an index in [0, {num_classes}), got {mask_index!r}")


def subs_log_probs(logits: Tensor, z: Tensor, mask_index: int) -> Tensor:
    """SUBS (Sahoo et al., 2024, Section 3.2.3): log p_theta(x_0 | z_t), (batch, ..., K) float64.

    Zero masking probability (the mask logit is set to -inf before the softmax), and carry-over unmasking: at a
    visible position the law is the one-hot of the visible token.
    """
    log_p = logits.to(torch.float64).index_fill(-1, torch.tensor([mask_index], device=logits.device), -torch.inf)
    log_p = log_p - torch.logsumexp(log_p, -1, keepdim=True)  # log_softmax, faster for small K on CPU
    visible = (z != mask_index)[..., None]
    carry = torch.full_like(log_p, -torch.inf).scatter(-1, z[..., None], 0.0)
    return torch.where(visible, carry, log_p)


def _stratified_times(batch: int, generator, device, t_min: float) -> Tensor:
    # MDLM's low-discrepancy sampler: one uniform shift of an evenly spaced grid over the batch
    u = (uniform((), generator, device) + torch.arange(batch, dtype=torch.float64, device=device) / batch) % 1
    return (t_min + (1 - t_min) * u).clamp_min(t_min)


def mdlm_nelbo(model: Callable[[Tensor, Tensor], Tensor], x0: Tensor, schedule: MaskingSchedule, num_classes: int,
               mask_index: int, *, t=None, generator: torch.Generator | None = None,
               t_min: float = 1e-5) -> Tensor:
    """One-sample Monte Carlo estimate of the continuous-time NELBO (eq. 10) per sequence, (batch,) float64 nats.

    model(z_t (batch, ...) long, t (batch,) float32) -> logits (batch, ..., K). t defaults to MDLM's
    low-discrepancy draw over the batch, t = t_min + (1 - t_min) ((u + i / batch) mod 1). Averaging over the
    batch (and over draws) estimates -log p(x) + slack; the loss for training is ``mdlm_nelbo(...).mean()``
    (divide by the sequence length for nats per token).
    """
    schedule = _check_schedule(schedule)
    x0 = _check_clean(x0, num_classes, mask_index)
    batch = x0.shape[0]
    if t is None:
        t = _stratified_times(batch, generator, x0.device, t_min)
    t = check_time("t", t, batch, low=0.0, high=1.0).to(x0.device)
    if bool((t <= 0).any()):
        raise ValueError("t: expected times in (0, 1]; the NELBO weight is infinite at t = 0")
    alpha = schedule.alpha(t).view((-1,) + (1,) * (x0.ndim - 1))
    u = uniform(x0.shape, generator, x0.device)
    masked = u >= alpha  # P(masked) = 1 - alpha(t)
    z = torch.where(masked, torch.full_like(x0, mask_index), x0)
    logits = model(z, t.to(torch.get_default_dtype()))
    check_logits("logits", logits, tuple(x0.shape), num_classes)
    log_p = subs_log_probs(logits, z, mask_index).gather(-1, x0[..., None])[..., 0]
    nll = torch.where(masked, -log_p.clamp_min(-1e4), 0.0).reshape(batch, -1).sum(-1)
    return schedule.loss_weight(t) * nll


def _check_shape(shape) -> tuple[int, ...]:
    if not (isinstance(shape, (tuple, list)) and len(shape) >= 1
            and all(isinstance(s, int) and s > 0 for s in shape)):
        raise ValueError(f"shape: expected a tuple of positive ints (batch, ...), got {shape!r}")
    return tuple(shape)


def mdlm_sample(model: Callable[[Tensor, Tensor], Tensor], shape: tuple[int, ...], schedule: MaskingSchedule,
                num_classes: int, mask_index: int, num_steps: int = 100, *, times=None,
                generator: torch.Generator | None = None, device=None) -> Tensor:
    """Ancestral sampling on a time grid (Sahoo et al., 2024, eq. 7 with SUBS): by default the uniform grid
    t_i = 1 - i / num_steps, or ``times``, strictly decreasing values in [0, 1] (then num_steps = len - 1).

    From t to s < t a masked token is unmasked with probability (alpha_s - alpha_t) / (1 - alpha_t) and then
    drawn from p_theta(x_0 | z_t); visible tokens are carried over. The last step reaches s = 0 (alpha = 1),
    so every token is unmasked (a grid ending above 0 leaves the still-masked tokens masked). Returns (batch, ...)
    long.
    """
    schedule, shape = _check_schedule(schedule), _check_shape(shape)
    _check_mask_index(num_classes, mask_index)
    if times is None:
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps: expected an integer >= 1, got {num_steps!r}")
        times = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    else:
        times = torch.as_tensor(times, dtype=torch.float64).cpu()
        if times.ndim != 1 or times.numel() < 2 or not bool(torch.isfinite(times).all()) \
                or bool((times < 0).any()) or bool((times > 1).any()) or not bool((times.diff() < 0).all()):
            raise ValueError("times: expected a 1-D grid of at least 2 strictly decreasing values in [0, 1]")
        num_steps = times.numel() - 1
    x = torch.full(shape, mask_index, dtype=torch.long, device=device)
    alphas = schedule.alpha(times).tolist()  # on the host before the loop
    for i in range(num_steps):
        t = torch.full((shape[0],), float(times[i]), dtype=torch.get_default_dtype(), device=x.device)
        logits = model(x, t)
        if i == 0:
            check_logits("model output", logits, shape, num_classes)
        unmask = (alphas[i + 1] - alphas[i]) / (1 - alphas[i])
        probs = unmask * subs_log_probs(logits, x, mask_index).exp()
        probs[..., mask_index] = 1 - unmask
        x = torch.where(x == mask_index, sample_categorical(probs, generator), x)
    return x


def mdlm_sample_first_hitting(model: Callable[[Tensor, Tensor], Tensor], shape: tuple[int, ...],
                              schedule: MaskingSchedule, num_classes: int, mask_index: int, *,
                              generator: torch.Generator | None = None, device=None) -> Tensor:
    """First-hitting sampler (Zheng et al., 2024, "Masked Diffusion Models are Secretly Time-Agnostic Masked
    Models ...", Algorithm 1): unmask exactly one token per model call, at the exact time of the next unmasking.

    With n masked tokens at time t, the next unmasking time s solves ((1 - alpha_s) / (1 - alpha_t))^n = u,
    u ~ U(0, 1); one masked position, chosen uniformly, is drawn from p_theta(x_0 | z, s). It takes one call per
    token and, with the exact conditionals, samples the data law exactly. Returns (batch, ...) long.
    """
    schedule, shape = _check_schedule(schedule), _check_shape(shape)
    _check_mask_index(num_classes, mask_index)
    batch, length = shape[0], math.prod(shape[1:])
    x = torch.full((batch, length), mask_index, dtype=torch.long, device=device)
    one_minus_alpha = torch.full((batch,), 1.0 - schedule.eps, dtype=torch.float64, device=x.device)
    rows = torch.arange(batch, device=x.device)
    for n in range(length, 0, -1):
        u = uniform((batch,), generator, x.device)
        one_minus_alpha = one_minus_alpha * u ** (1.0 / n)
        s = schedule.time_from_alpha(1 - one_minus_alpha)
        logits = model(x.view(shape), s.to(torch.get_default_dtype())).reshape(batch, length, num_classes)
        if n == length:
            check_logits("model output", logits, (batch, length), num_classes)
        scores = uniform((batch, length), generator, x.device)
        position = torch.where(x == mask_index, scores, -1.0).argmax(-1)
        probs = subs_log_probs(logits[rows, position], x[rows, position], mask_index).exp()
        x[rows, position] = sample_categorical(probs, generator)
    return x.view(shape)
