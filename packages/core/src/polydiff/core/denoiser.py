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

import torch
from torch import Tensor

from .schedules import NoiseSchedule, check_real

PREDICTIONS = ("eps", "x0", "v", "score", "flow")

__all__ = ["Denoiser", "Prediction", "PREDICTIONS", "append_dims", "convert_prediction", "to_x0_eps"]


class Prediction:
    """The pair (x0, eps) at a state x. Either may be given; the other is derived on first access from
    x = alpha x0 + sigma eps, so a solver that reads only x0 (or only eps) pays for no conversion.
    Unpacks like a tuple: ``x0, eps = prediction``."""

    __slots__ = ("_x0", "_eps", "_x", "_alpha", "_sigma")

    def __init__(self, x0: Tensor | None = None, eps: Tensor | None = None, *, x: Tensor | None = None,
                 alpha: Tensor | None = None, sigma: Tensor | None = None):
        if x0 is None and eps is None:
            raise ValueError("x0, eps: give at least one of them")
        if (x0 is None or eps is None) and (x is None or alpha is None or sigma is None):
            raise ValueError("x, alpha, sigma: needed to derive the missing half of the prediction")
        self._x0, self._eps, self._x, self._alpha, self._sigma = x0, eps, x, alpha, sigma

    @property
    def x0(self) -> Tensor:
        if self._x0 is None:  # x0 = x / alpha - (sigma / alpha) eps
            inverse = 1 / self._alpha
            self._x0 = torch.addcmul(self._x * inverse, self._eps, -self._sigma * inverse)
        return self._x0

    @property
    def eps(self) -> Tensor:
        if self._eps is None:  # eps = x / sigma - (alpha / sigma) x0
            inverse = 1 / self._sigma
            self._eps = torch.addcmul(self._x * inverse, self._x0, -self._alpha * inverse)
        return self._eps

    def __iter__(self):
        yield self.x0
        yield self.eps

    def __getitem__(self, index: int) -> Tensor:
        return (self.x0, self.eps)[index]

    def __len__(self) -> int:
        return 2


def append_dims(value: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims so a per-sample (batch,) or scalar coefficient broadcasts over x."""
    return value.reshape(value.shape + (1,) * (ndim - value.ndim))


def _row_index(t: Tensor, root: Tensor) -> int | None:
    """The index i with t == root[i] when t is a view of one element (1-D root) or row (2-D root) of a float64
    time array; None otherwise. Reads only tensor metadata (no host sync)."""
    if root.dtype != torch.float64 or root.ndim not in (1, 2) or t.ndim != root.ndim - 1:
        return None
    if t.shape != root.shape[1:] or t.stride() != root.stride()[1:] or root.stride(0) <= 0:
        return None
    index, remainder = divmod(t.storage_offset() - root.storage_offset(), root.stride(0))
    return index if remainder == 0 and 0 <= index < root.shape[0] else None


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction: unknown parameterisation {prediction!r}; choices: {list(PREDICTIONS)}")


def to_x0_eps(output: Tensor, x: Tensor, prediction: str, alpha: Tensor, sigma: Tensor,
              d_alpha: Tensor | None = None, d_sigma: Tensor | None = None) -> Prediction:
    """(x0, eps) from a network output of the given parameterisation; alpha, sigma broadcast against x."""
    _check_prediction(prediction)
    context = {"x": x, "alpha": alpha, "sigma": sigma}
    if prediction == "eps":
        return Prediction(eps=output, **context)
    if prediction == "score":
        return Prediction(eps=-sigma * output, **context)
    if prediction == "x0":
        return Prediction(x0=output, **context)
    if prediction == "v":
        return Prediction(x0=(alpha * x - sigma * output) / (alpha**2 + sigma**2), **context)
    if d_alpha is None or d_sigma is None:
        raise ValueError("d_alpha, d_sigma: a flow-velocity output needs the schedule's time derivatives")
    return Prediction(x0=(d_sigma * x - sigma * output) / (d_sigma * alpha - sigma * d_alpha), **context)


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

    Schedule values are memoised per time array: when t is an element (or row) of a float64 time array such as
    a solver's grid, alpha, sigma and the model time are computed once for the whole array and then indexed,
    so a solver step costs no schedule evaluation (and no host sync).
    """

    _CACHE_SIZE = 16

    def __init__(self, model: Callable[..., Tensor], schedule: NoiseSchedule, prediction: str = "eps", *,
                 guidance_scale: float | None = None, uncond: dict | None = None, guidance_rescale: float = 0.0,
                 clip_x0: float | None = None):
        _check_prediction(prediction)
        if not callable(model):
            raise ValueError(f"model: expected a callable model(x, t_model, **cond), got {type(model).__name__}")
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule: expected a polydiff NoiseSchedule, got {type(schedule).__name__}")
        if guidance_scale is not None:  # NaN or inf would turn every guided sample into NaN
            guidance_scale = check_real("guidance_scale", guidance_scale)
        if guidance_scale is not None and guidance_scale != 1 and uncond is None:
            raise ValueError("uncond: classifier-free guidance needs the unconditional model arguments")
        if uncond is not None and not isinstance(uncond, dict):
            raise ValueError(f"uncond: expected a dict of model keyword arguments, got {type(uncond).__name__}")
        if clip_x0 is not None:
            clip_x0 = check_real("clip_x0", clip_x0, low=0.0, low_open=True)
        guidance_rescale = check_real("guidance_rescale", guidance_rescale, low=0.0, high=1.0)
        self.model = model
        self.schedule = schedule
        self.prediction = prediction
        self.guidance_scale = guidance_scale
        self.uncond = uncond
        self.guidance_rescale = guidance_rescale
        self.clip_x0 = clip_x0
        self.nfe = 0
        self._cache: dict[tuple[int, torch.dtype], tuple] = {}

    def schedule_values(self, t, x: Tensor) -> dict[str, Tensor]:
        """Model time (batch,) and alpha, sigma (and d_alpha, d_sigma for flow models) at t, shaped to broadcast
        over x and in x's dtype. Memoised when t is an element or row of a float64 time array."""
        root = t._base if isinstance(t, Tensor) and not t.requires_grad else None
        index = _row_index(t, root) if root is not None else None
        if index is None:
            return self._evaluate(torch.as_tensor(t, device=x.device, dtype=torch.float64), x)
        entry = self._cache.get((id(root), x.dtype))
        if entry is None or entry[0] is not root:
            entry = self.remember(root, x)
        return {name: value[index] for name, value in entry[1].items()}

    def remember(self, times: Tensor, x: Tensor, alpha_sigma: tuple[Tensor, Tensor] | None = None) -> tuple:
        """Memoise the schedule values of a float64 time array (N,) or (N, batch) for states like x; solvers do
        this through ``check_inputs`` with the alpha, sigma they already computed."""
        if len(self._cache) >= self._CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        entry = (times, self._evaluate(times.detach(), x, table=True, alpha_sigma=alpha_sigma))
        self._cache[(id(times), x.dtype)] = entry
        return entry

    def _evaluate(self, t: Tensor, x: Tensor, table: bool = False,
                  alpha_sigma: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """Schedule values at t (a scalar, (batch,), or with ``table`` a whole (N,) / (N, batch) time array)."""
        ndim = x.ndim + (1 if table else 0)
        values = {"t_model": self.schedule.model_input(t).to(x.dtype)}
        alpha_sigma = self.schedule.alpha_sigma(t) if alpha_sigma is None else alpha_sigma
        for name, value in zip(("alpha", "sigma"), alpha_sigma, strict=True):
            values[name] = append_dims(value, ndim).to(x.dtype)
        if self.prediction == "flow":
            for name, value in zip(("d_alpha", "d_sigma"), self.schedule.derivatives(t), strict=True):
                values[name] = append_dims(value, ndim).to(x.dtype)
        return values

    def _call_model(self, x: Tensor, values: dict[str, Tensor], cond: dict) -> Prediction:
        t_model = values["t_model"]
        output = self.model(x, t_model.expand(x.shape[0]) if t_model.ndim == 0 else t_model, **cond)
        self.nfe += 1
        if output.shape != x.shape:
            raise ValueError(f"model: output shape {tuple(output.shape)} differs from input x {tuple(x.shape)}")
        derivatives = {k: values[k] for k in ("d_alpha", "d_sigma") if k in values}
        return to_x0_eps(output, x, self.prediction, values["alpha"], values["sigma"], **derivatives)

    def predict(self, x: Tensor, t, **cond) -> Prediction:
        """(x0, eps) at x: (batch, ...), t: scalar or (batch,)."""
        values = self.schedule_values(t, x)
        prediction = self._call_model(x, values, cond)
        alpha, sigma = values["alpha"], values["sigma"]
        if self.guidance_scale is not None and self.guidance_scale != 1:
            unconditional = self._call_model(x, values, {**cond, **self.uncond})
            w = self.guidance_scale
            eps = torch.lerp(unconditional.eps, prediction.eps, w)
            if self.guidance_rescale > 0:
                dims = tuple(range(1, x.ndim))
                ratio = prediction.eps.std(dim=dims, keepdim=True) / eps.std(dim=dims, keepdim=True)
                eps = self.guidance_rescale * eps * ratio + (1 - self.guidance_rescale) * eps
            prediction = Prediction(eps=eps, x=x, alpha=alpha, sigma=sigma)
        if self.clip_x0 is not None:
            x0 = prediction.x0.clamp(-self.clip_x0, self.clip_x0)
            prediction = Prediction(x0=x0, x=x, alpha=alpha, sigma=sigma)
        return prediction

    def __call__(self, x: Tensor, t, **cond) -> Tensor:
        return self.predict(x, t, **cond).x0
