"""Denoising training losses: forward noising q(x_t | x_0), time sampling, and the weighted regression loss.

One loss serves every parameterisation. A weighting is defined once in x0 space, w(lambda) ||x0_hat - x0||^2,
and converted to the network's target space: for x = alpha x0 + sigma eps held fixed, an error in the target
is a fixed multiple of the x0 error, ||target_hat - target||^2 = c_p^2 ||x0_hat - x0||^2, with

    eps:   c^2 = alpha^2 / sigma^2 = SNR                   (eps = (x - alpha x0) / sigma)
    x0:    c^2 = 1
    v:     c^2 = (alpha^2 + sigma^2)^2 / sigma^2            (= SNR + 1 for a VP schedule)
    flow:  c^2 = (alpha' - sigma' alpha / sigma)^2          (= 1 / sigma^2 for the linear interpolant)

so the target-space factor is w / c_p^2. Weightings (``weighting=``):
    "simple"   unit weight on the target itself (Ho et al., 2020, L_simple; its x0 weight is c_p^2).
    "min_snr"  w = min(SNR, gamma) (Hang et al., 2023, "Efficient Diffusion Training via Min-SNR Weighting
               Strategy"): min(SNR, gamma) / SNR for eps, min(SNR, gamma) / (SNR + 1) for v (VP).
    "p2"       the eps-space weight 1 / (k + SNR)^gamma (Choi et al., 2022, "Perception Prioritized Training of
               Diffusion Models"), i.e. w = SNR / (k + SNR)^gamma.
    "edm"      w = (sigma~^2 + sigma_data^2) / (sigma~ sigma_data)^2 with sigma~ = sigma / alpha (Karras et al.,
               2022, "Elucidating the Design Space...", Table 1, lambda(sigma)); pair it with
               :class:`EDMPreconditioner` and ``prediction="x0"``.

SNR = alpha^2 / sigma^2 = exp(2 lambda).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .denoiser import append_dims, convert_prediction
from .schedules import DiscreteSchedule, EDMSchedule, NoiseSchedule

LOSS_PREDICTIONS = ("eps", "x0", "v", "flow")
WEIGHTINGS = ("simple", "min_snr", "p2", "edm")
TIME_KINDS = ("uniform", "logsnr_normal", "discrete")
REDUCTIONS = ("mean", "sum", "none")

__all__ = ["q_sample", "sample_time", "loss_weight", "diffusion_loss", "DiffusionLoss", "split_batch", "EDMPreconditioner",
           "edm_coefficients", "LOSS_PREDICTIONS", "WEIGHTINGS", "TIME_KINDS"]


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, NoiseSchedule):
        raise ValueError(f"schedule: expected a polydiff NoiseSchedule, got {type(schedule).__name__}")


def _check_times(schedule: NoiseSchedule, t: Tensor, batch: int) -> Tensor:
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, batch)):
        raise ValueError(f"t: expected a scalar or shape ({batch},), got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("t: contains NaN or inf")
    # tolerance: float32 times round a discrete knot such as 1/N a few ulps off
    low, high = schedule.t_min * (1 - 1e-6), schedule.t_max * (1 + 1e-6)
    if bool(((t < low) | (t > high)).any()):
        raise ValueError(f"t: every time must lie in the schedule's training range [{schedule.t_min}, "
                         f"{schedule.t_max}]")
    return t.expand(batch)


def q_sample(schedule: NoiseSchedule, x0: Tensor, t, noise: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
    """Draw x_t ~ q(x_t | x_0) = N(alpha(t) x0, sigma(t)^2 I) (Ho et al., 2020, eq. 4, in alpha/sigma form).

    x0: (batch, ...); t: scalar or (batch,) schedule time; noise: standard normal like x0 (drawn with
    ``generator`` when None). Returns x_t with x0's shape and dtype.
    """
    _check_schedule(schedule)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    elif noise.shape != x0.shape:
        raise ValueError(f"noise: shape {tuple(noise.shape)} differs from x0 {tuple(x0.shape)}")
    alpha, sigma = schedule.alpha_sigma(torch.as_tensor(t, device=x0.device))
    return append_dims(alpha, x0.ndim).to(x0.dtype) * x0 + append_dims(sigma, x0.ndim).to(x0.dtype) * noise


def sample_time(schedule: NoiseSchedule, batch: int, generator: torch.Generator | None = None, device=None,
                kind: str = "uniform", *, p_mean: float = -1.2, p_std: float = 1.2) -> Tensor:
    """Training times, float64 (batch,).

    kind:
        "uniform"        t ~ U[t_min, t_max].
        "logsnr_normal"  EDM's log-normal noise levels (Karras et al., 2022, Table 1): ln(sigma / alpha) ~
                         N(p_mean, p_std^2), mapped to time by ``t_from_sigma_tilde`` and clamped to the schedule's
                         [t_min, t_max] (the only range the network is ever evaluated on).
        "discrete"       a DiscreteSchedule's training knots t = (n + 1) / N, n ~ U{0, ..., N - 1}.
    """
    _check_schedule(schedule)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch: expected a positive integer, got {batch!r}")
    f64 = dict(dtype=torch.float64, device=device)
    if kind == "uniform":
        u = torch.rand(batch, generator=generator, **f64)
        return schedule.t_min + u * (schedule.t_max - schedule.t_min)
    if kind == "logsnr_normal":
        log_sigma = p_mean + p_std * torch.randn(batch, generator=generator, **f64)
        return schedule.t_from_sigma_tilde(log_sigma.exp()).clamp(schedule.t_min, schedule.t_max)
    if kind == "discrete":
        if not isinstance(schedule, DiscreteSchedule):
            raise ValueError(f"kind: 'discrete' times need a DiscreteSchedule, got {type(schedule).__name__}")
        n = schedule.num_train_timesteps
        index = torch.randint(0, n, (batch,), generator=generator, device=device)
        return (index + 1).to(torch.float64) / n
    raise ValueError(f"kind: unknown time sampling {kind!r}; choices: {list(TIME_KINDS)}")


def _target_factor(prediction: str, alpha: Tensor, sigma: Tensor, d_alpha: Tensor | None,
                   d_sigma: Tensor | None) -> Tensor:
    """c_p^2: the squared Jacobian d target / d x0 at fixed x (see the module docstring)."""
    if prediction == "eps":
        return (alpha / sigma) ** 2
    if prediction == "x0":
        return torch.ones_like(alpha)
    if prediction == "v":
        return (alpha**2 + sigma**2) ** 2 / sigma**2
    return (d_alpha - d_sigma * alpha / sigma) ** 2


def loss_weight(schedule: NoiseSchedule, t: Tensor, prediction: str = "eps", weighting: str = "simple", *,
                min_snr_gamma: float = 5.0, p2_k: float = 1.0, p2_gamma: float = 1.0,
                sigma_data: float | None = None) -> Tensor:
    """The target-space weight of ``weighting`` for a network predicting ``prediction``, at times t (any shape).

    Equals w_x0(t) / c_p(t)^2 (module docstring); "simple" is 1.
    """
    _check_schedule(schedule)
    if prediction not in LOSS_PREDICTIONS:
        raise ValueError(f"prediction: unknown target {prediction!r}; choices: {list(LOSS_PREDICTIONS)}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: unknown weighting {weighting!r}; choices: {list(WEIGHTINGS)}")
    t = torch.as_tensor(t, dtype=torch.float64)
    if weighting == "simple":
        return torch.ones_like(t)
    alpha, sigma = schedule.alpha_sigma(t)
    d_alpha, d_sigma = schedule.derivatives(t) if prediction == "flow" else (None, None)
    snr = (2 * schedule.log_snr(t)).exp()
    if weighting == "min_snr":
        if not min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma: expected a positive value, got {min_snr_gamma}")
        w_x0 = snr.clamp_max(min_snr_gamma)
    elif weighting == "p2":
        if p2_k < 0 or p2_gamma < 0:
            raise ValueError(f"p2_k, p2_gamma: expected non-negative values, got {p2_k}, {p2_gamma}")
        w_x0 = snr / (p2_k + snr) ** p2_gamma
    else:
        sigma_data = _sigma_data(schedule, sigma_data)
        sigma_tilde = sigma / alpha
        w_x0 = (sigma_tilde**2 + sigma_data**2) / (sigma_tilde * sigma_data) ** 2
    return w_x0 / _target_factor(prediction, alpha, sigma, d_alpha, d_sigma)


def _sigma_data(schedule: NoiseSchedule, sigma_data: float | None) -> float:
    if sigma_data is None:
        sigma_data = schedule.sigma_data if isinstance(schedule, EDMSchedule) else 0.5
    if not sigma_data > 0:
        raise ValueError(f"sigma_data: expected a positive value, got {sigma_data}")
    return float(sigma_data)


def diffusion_loss(model, schedule: NoiseSchedule, x0: Tensor, *, prediction: str = "eps",
                   weighting: str = "simple", min_snr_gamma: float = 5.0, p2_k: float = 1.0, p2_gamma: float = 1.0,
                   sigma_data: float | None = None, cond: dict | None = None, t=None, noise: Tensor | None = None,
                   time_kind: str | None = None, generator: torch.Generator | None = None,
                   reduction: str = "mean") -> Tensor:
    """Weighted denoising loss  E_t,eps [ w_p(t) ||model(x_t, t) - target_p||^2 ]  for one batch.

    Args:
        model: ``model(x_t, schedule.model_input(t), **cond) -> (batch, ...)`` in the ``prediction`` space.
        x0: clean data (batch, ...), finite.
        t: training times, scalar or (batch,), inside [t_min, t_max]; drawn with ``sample_time`` when None,
            of ``time_kind`` (default: "discrete" for a DiscreteSchedule, "logsnr_normal" with weighting "edm",
            else "uniform").
        noise: the eps of x_t = alpha x0 + sigma eps (drawn when None).
        reduction: "mean" (scalar: mean over batch and elements), "sum" (sum over batch of per-sample means) or
            "none" (per-sample loss (batch,), the mean over each sample's elements).
    Targets come from :func:`polydiff.core.denoiser.convert_prediction`; weights from :func:`loss_weight`.
    """
    _check_schedule(schedule)
    if prediction not in LOSS_PREDICTIONS:
        raise ValueError(f"prediction: unknown target {prediction!r}; choices: {list(LOSS_PREDICTIONS)}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: unknown weighting {weighting!r}; choices: {list(WEIGHTINGS)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: unknown reduction {reduction!r}; choices: {list(REDUCTIONS)}")
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.ndim < 1:
        raise ValueError("x0: expected a floating-point tensor of shape (batch, ...)")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0: contains NaN or inf")
    batch = x0.shape[0]
    if t is None:
        if time_kind is None:
            time_kind = ("discrete" if isinstance(schedule, DiscreteSchedule)
                         else "logsnr_normal" if weighting == "edm" else "uniform")
        t = sample_time(schedule, batch, generator, x0.device, time_kind)
    t = _check_times(schedule, torch.as_tensor(t, device=x0.device), batch)
    t = t.to(torch.float64 if x0.dtype == torch.float64 else torch.float32)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = q_sample(schedule, x0, t, noise)
    output = model(x_t, schedule.model_input(t).to(x0.dtype), **(cond or {}))
    if not isinstance(output, Tensor) or output.shape != x0.shape:
        raise ValueError(f"model: output shape {tuple(getattr(output, 'shape', ()))} differs from x0 "
                         f"{tuple(x0.shape)}")
    alpha, sigma = (append_dims(v, x0.ndim).to(x0.dtype) for v in schedule.alpha_sigma(t))
    derivatives = {}
    if prediction == "flow":
        derivatives = dict(zip(("d_alpha", "d_sigma"),
                               (append_dims(d, x0.ndim).to(x0.dtype) for d in schedule.derivatives(t)), strict=True))
    target = convert_prediction(x0, noise, prediction, alpha, sigma, **derivatives)
    weight = loss_weight(schedule, t, prediction, weighting, min_snr_gamma=min_snr_gamma, p2_k=p2_k,
                         p2_gamma=p2_gamma, sigma_data=sigma_data).to(x0.dtype)
    per_sample = weight * (output - target).square().flatten(1).mean(1)
    if reduction == "none":
        return per_sample
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


@dataclass(frozen=True)
class DiffusionLoss:
    """The :func:`diffusion_loss` configuration, callable as ``loss(model, batch) -> scalar`` for the Trainer.

    ``batch`` is x0 (a tensor), a dict with "x0" (or "x") and optional "cond" (a dict of model keyword
    arguments), or a tuple/list whose first item is x0 and optional second item the cond dict.
    """

    schedule: NoiseSchedule
    prediction: str = "eps"
    weighting: str = "simple"
    min_snr_gamma: float = 5.0
    p2_k: float = 1.0
    p2_gamma: float = 1.0
    sigma_data: float | None = None
    time_kind: str | None = None

    def __post_init__(self):
        _check_schedule(self.schedule)
        if self.prediction not in LOSS_PREDICTIONS:
            raise ValueError(f"prediction: unknown target {self.prediction!r}; choices: {list(LOSS_PREDICTIONS)}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting: unknown weighting {self.weighting!r}; choices: {list(WEIGHTINGS)}")
        if self.time_kind is not None and self.time_kind not in TIME_KINDS:
            raise ValueError(f"time_kind: unknown time sampling {self.time_kind!r}; choices: {list(TIME_KINDS)}")
        if not self.min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma: expected a positive value, got {self.min_snr_gamma}")
        if self.p2_k < 0 or self.p2_gamma < 0:
            raise ValueError(f"p2_k, p2_gamma: expected non-negative values, got {self.p2_k}, {self.p2_gamma}")

    def __call__(self, model, batch, generator: torch.Generator | None = None) -> Tensor:
        x0, cond = split_batch(batch)
        return diffusion_loss(model, self.schedule, x0, prediction=self.prediction, weighting=self.weighting,
                              min_snr_gamma=self.min_snr_gamma, p2_k=self.p2_k, p2_gamma=self.p2_gamma,
                              sigma_data=self.sigma_data, cond=cond, time_kind=self.time_kind,
                              generator=generator)


def split_batch(batch) -> tuple[Tensor, dict]:
    """(x0, cond) from a Trainer batch (see :class:`DiffusionLoss`)."""
    if isinstance(batch, Tensor):
        return batch, {}
    if isinstance(batch, dict):
        key = "x0" if "x0" in batch else "x" if "x" in batch else None
        if key is None:
            raise ValueError(f"batch: a dict batch needs an 'x0' or 'x' entry, got keys {sorted(batch)}")
        return batch[key], dict(batch.get("cond") or {})
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        cond = batch[1] if len(batch) > 1 and isinstance(batch[1], dict) else {}
        return batch[0], dict(cond)
    raise ValueError(f"batch: expected a tensor, a dict with 'x0', or a (x0, cond) tuple; got {type(batch).__name__}")


# ------------------------------------------------------------------------------------------------- EDM


def edm_coefficients(sigma: Tensor, sigma_data: float = 0.5) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM preconditioning (Karras et al., 2022, Table 1 and eq. 7): (c_skip, c_out, c_in, c_noise) at noise
    level sigma (any shape):  c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2),
    c_in = 1 / sqrt(s^2 + sd^2), c_noise = ln(s) / 4."""
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), total.rsqrt(), sigma.log() / 4


class EDMPreconditioner(nn.Module):
    """Turn a raw network F into EDM's data-prediction model D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)
    (Karras et al., 2022, eq. 7, Appendix B.6 "EDMPrecond").

    Use with ``Denoiser(EDMPreconditioner(F), EDMSchedule(), prediction="x0")`` or a VESchedule: both hand the
    model sigma itself as its time input (alpha = 1). x: (batch, ...); sigma: (batch,) or scalar;
    ``net(c_in x, c_noise (batch,), **cond)`` returns x's shape. The paper's design: the effective training
    target of F, (x0 - c_skip x) / c_out, has unit variance for data of std sigma_data, and
    lambda(sigma) c_out(sigma)^2 = 1, so the "edm" weighting puts unit weight on F's error at every sigma.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data: expected a positive value, got {sigma_data}")
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, sigma: Tensor, **cond) -> Tensor:
        # sigma must be > 0 (c_noise = ln(sigma) / 4); not checked here to keep host syncs out of sampling loops
        sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, self.sigma_data)
        out = self.net(append_dims(c_in, x.ndim) * x, c_noise, **cond)
        return append_dims(c_skip, x.ndim) * x + append_dims(c_out, x.ndim) * out
