"""The one object every solver talks to: ``Denoiser(model, schedule, prediction=...)``.

A network ``model(x, t_model, **cond)`` may predict eps, x0, v, the score or a flow velocity; the Denoiser turns
its output into the data prediction x0 and the noise prediction eps that the solvers need, applying classifier-
free guidance (Ho & Salimans, 2022) with guidance rescale (Lin et al., 2024, eq. 15-16) when asked. Solvers never
branch on the parameterisation.

Conversions, for x = alpha x0 + sigma eps (any schedule):
    eps -> x0:     x0 = (x - sigma eps) / alpha
    v -> x0:       v = alpha eps - sigma x0, so x0 = (alpha x - sigma v) / (alpha^2 + sigma^2)
    score -> eps:  score = -eps / sigma
    flow -> x0:    u = alpha' x0 + sigma' eps, so x0 = (sigma' x - sigma u) / (sigma' alpha - sigma alpha')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .schedules import NoiseSchedule

PREDICTIONS = ("eps", "x0", "v", "score", "flow")

__all__ = ["Denoiser", "Prediction", "PREDICTIONS", "append_dims", "convert_prediction", "to_x0_eps"]


class Prediction(NamedTuple):
    x0: Tensor
    eps: Tensor


def append_dims(value: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims so a per-sample (batch,) or scalar coefficient broadcasts over x."""
    return value.reshape(value.shape + (1,) * (ndim - value.ndim))


def _one_time(t: Tensor) -> Tensor:
    """t itself, or its single value when t is one time expanded over the batch (stride 0): the schedule is then
    evaluated once instead of on batch copies, which made each call's overhead grow with the batch."""
    return t[0] if t.ndim == 1 and t.shape[0] > 1 and t.stride(0) == 0 else t


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction: unknown parameterisation {prediction!r}; choices: {list(PREDICTIONS)}")


def to_x0_eps(output: Tensor, x: Tensor, prediction: str, alpha: Tensor, sigma: Tensor,
              d_alpha: Tensor | None = None, d_sigma: Tensor | None = None) -> Prediction:
    """(x0, eps) from a network output of the given parameterisation; alpha, sigma broadcast against x."""
    _check_prediction(prediction)
    if prediction == "eps":
        return Prediction((x - sigma * output) / alpha, output)
    if prediction == "score":
        eps = -sigma * output
        return Prediction((x - sigma * eps) / alpha, eps)
    if prediction == "x0":
        x0 = output
    elif prediction == "v":
        x0 = (alpha * x - sigma * output) / (alpha**2 + sigma**2)
    else:  # flow velocity
        if d_alpha is None or d_sigma is None:
            raise ValueError("d_alpha, d_sigma: a flow-velocity output needs the schedule's time derivatives")
        x0 = (d_sigma * x - sigma * output) / (d_sigma * alpha - sigma * d_alpha)
    return Prediction(x0, (x - alpha * x0) / sigma)


def convert_prediction(x0: Tensor, eps: Tensor, target: str, alpha: Tensor, sigma: Tensor,
                       d_alpha: Tensor | None = None, d_sigma: Tensor | None = None) -> Tensor:
    """The inverse of ``to_x0_eps``: express (x0, eps) as a network target of the given parameterisation."""
    _check_prediction(target)
    if target == "eps":
        return eps
    if target == "x0":
        return x0
    if target == "v":
        return alpha * eps - sigma * x0
    if target == "score":
        return -eps / sigma
    if d_alpha is None or d_sigma is None:
        raise ValueError("d_alpha, d_sigma: a flow-velocity target needs the schedule's time derivatives")
    return d_alpha * x0 + d_sigma * eps


class Denoiser:
    """Wrap ``model(x, t_model, **cond)`` into the (x0, eps) predictions the solvers use.

    Args:
        model: callable ``(x: (batch, ...), t_model: (batch,), **cond) -> (batch, ...)``.
        schedule: the noise schedule the model was trained with.
        prediction: what the model outputs: "eps", "x0", "v", "score" or "flow".
        guidance_scale: classifier-free guidance weight w; the guided output is uncond + w (cond - uncond).
            ``None`` or 1 means no guidance (one model call per step).
        uncond: keyword arguments that make the model unconditional (e.g. ``{"labels": null_labels}``);
            required when guidance_scale is set.
        guidance_rescale: phi of Lin et al. (2024): rescales the guided eps to the std of the conditional eps
            and mixes ``phi * rescaled + (1 - phi) * guided``.
        clip_x0: clamp the x0 prediction to [-clip_x0, clip_x0] (None: no clamping).

    Calling ``denoiser(x, t, **cond)`` returns x0; ``denoiser.predict(x, t, **cond)`` returns both x0 and eps
    without a lossy round trip. t is a scalar or (batch,) tensor in schedule time. ``nfe`` counts network calls.
    """

    def __init__(self, model: Callable[..., Tensor], schedule: NoiseSchedule, prediction: str = "eps", *,
                 guidance_scale: float | None = None, uncond: dict | None = None, guidance_rescale: float = 0.0,
                 clip_x0: float | None = None):
        _check_prediction(prediction)
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule: expected a polydiff NoiseSchedule, got {type(schedule).__name__}")
        if guidance_scale is not None and guidance_scale != 1 and uncond is None:
            raise ValueError("uncond: classifier-free guidance needs the unconditional model arguments")
        if not 0.0 <= guidance_rescale <= 1.0:
            raise ValueError(f"guidance_rescale: expected a value in [0, 1], got {guidance_rescale}")
        self.model = model
        self.schedule = schedule
        self.prediction = prediction
        self.guidance_scale = guidance_scale
        self.uncond = uncond
        self.guidance_rescale = guidance_rescale
        self.clip_x0 = clip_x0
        self.nfe = 0

    def _call_model(self, x: Tensor, t: Tensor, cond: dict) -> Prediction:
        t_model = self.schedule.model_input(t).to(x.dtype)
        output = self.model(x, t_model, **cond)
        self.nfe += 1
        if output.shape != x.shape:
            raise ValueError(f"model: output shape {tuple(output.shape)} differs from input x {tuple(x.shape)}")
        alpha, sigma = (append_dims(v, x.ndim).to(x.dtype) for v in self.schedule.alpha_sigma(_one_time(t)))
        derivatives = {}
        if self.prediction == "flow":
            d_alpha, d_sigma = (append_dims(d, x.ndim).to(x.dtype) for d in self.schedule.derivatives(t))
            derivatives = {"d_alpha": d_alpha, "d_sigma": d_sigma}
        return to_x0_eps(output, x, self.prediction, alpha, sigma, **derivatives)

    def predict(self, x: Tensor, t, **cond) -> Prediction:
        """(x0, eps) at x: (batch, ...), t: scalar or (batch,)."""
        t = torch.as_tensor(t, device=x.device)
        t = t.to(torch.float64 if x.dtype == torch.float64 else torch.float32).expand(x.shape[0])
        guided = self.guidance_scale is not None and self.guidance_scale != 1
        conditional = self._call_model(x, t, cond)
        if guided:
            unconditional = self._call_model(x, t, {**cond, **self.uncond})
            w = self.guidance_scale
            eps = unconditional.eps + w * (conditional.eps - unconditional.eps)
            if self.guidance_rescale > 0:
                dims = tuple(range(1, x.ndim))
                ratio = conditional.eps.std(dim=dims, keepdim=True) / eps.std(dim=dims, keepdim=True)
                eps = self.guidance_rescale * eps * ratio + (1 - self.guidance_rescale) * eps
            alpha, sigma = (append_dims(v, x.ndim).to(x.dtype) for v in self.schedule.alpha_sigma(_one_time(t)))
            prediction = Prediction((x - sigma * eps) / alpha, eps)
        else:
            prediction = conditional
        if self.clip_x0 is not None:
            alpha, sigma = (append_dims(v, x.ndim).to(x.dtype) for v in self.schedule.alpha_sigma(_one_time(t)))
            x0 = prediction.x0.clamp(-self.clip_x0, self.clip_x0)
            prediction = Prediction(x0, (x - alpha * x0) / sigma)
        return prediction

    def __call__(self, x: Tensor, t, **cond) -> Tensor:
        return self.predict(x, t, **cond).x0
