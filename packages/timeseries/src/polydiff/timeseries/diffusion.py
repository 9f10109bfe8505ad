"""The diffusion side of the forecaster: windows in model space, the masked training loss and conditional sampling.

Model space: each window (series, time) is scaled by the mean and standard deviation of its *conditioning*
entries (``scaling="window"``, the per-window instance scaling of DeepAR / RevIN, so a trending series is
forecast relative to its recent level), or by the training series' statistics (``scaling="series"``). The
scale is inverted on every output.

Training (Tashiro et al., 2021, sec. 4.1 and Algorithm 1): split the available entries of a window into
conditioning and target entries by a random mask strategy (forecast: the last h entries; random: a ratio drawn
from U(0, 1); block: a contiguous gap), noise the window and regress the denoising target on the target entries
only. Times, noising, targets and weights come from :mod:`polydiff.core.losses` (``sample_time``, ``q_sample``,
``convert_prediction``, ``loss_weight``); the only addition is the entry mask in the mean. Unconditional models
(TSDiff, Diffusion-TS) see no mask: every available entry is a target. Diffusion-TS adds its Fourier-domain
term (Yuan & Qiao, 2024, eq. 9): the L2 distance of the rFFTs of the x0 prediction and x0.

Sampling: conditional models (CSDI) run any core solver through ``polydiff.core.sample`` with the observations as
model keyword arguments; unconditional models are guided to the observations at sampling time with core's
inverse-problem samplers on a :class:`polydiff.core.inverse.operators.Mask` — DPS (Chung et al., 2023), the
self-guidance of TSDiff (Kollovieh et al., 2023, sec. 3, with the Gaussian observation likelihood) and the
reconstruction guidance of Diffusion-TS (sec. 3.3) — or RePaint.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from polydiff.core import Denoiser, DiscreteSchedule
from polydiff.core import sample as core_sample
from polydiff.core.denoiser import append_dims, convert_prediction
from polydiff.core.losses import loss_weight, q_sample, sample_time

__all__ = ["csdi_schedule", "normalize", "WindowLoss", "sample_windows", "training_mask", "generate"]


def csdi_schedule(num_steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.5) -> DiscreteSchedule:
    """CSDI's "quad" schedule: betas = linspace(sqrt(beta_start), sqrt(beta_end), N)^2 (Tashiro et al., 2021,
    appendix E.1: N = 50, 1e-4 to 0.5)."""
    return DiscreteSchedule(np.linspace(beta_start**0.5, beta_end**0.5, num_steps) ** 2)


def normalize(values: Tensor, cond: Tensor, stats: Tensor | None = None,
              trend: bool = False, level: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(normalised values, loc, scale) with loc (batch, series, 1) — (batch, series, time) with ``trend`` — and
    scale (batch, series, 1).

    values, cond: (batch, series, time), cond = 1 on the entries the statistics come from. With ``stats``
    (series, 2) or (batch, series, 2) of (mean, std) those statistics are used instead (scaling="series").
    With ``trend`` the location is the least-squares line through the conditioning entries (a locally linear
    trend, extrapolated over the rest of the window) and the scale the standard deviation around it. With
    ``level`` (a number of steps, tau) the location is the exponentially weighted mean of the conditioning
    entries, weight exp(-age / tau) with the age counted back from the last conditioning entry (the recent level,
    as simple exponential smoothing estimates it), and the scale the conditioning entries' standard deviation."""
    if trend and stats is None:
        count = cond.sum(-1, keepdim=True).clamp_min(1)
        steps = torch.arange(values.shape[-1], device=values.device, dtype=values.dtype) / values.shape[-1]
        mean_t = (steps * cond).sum(-1, keepdim=True) / count
        mean_y = (values * cond).sum(-1, keepdim=True) / count
        var_t = ((steps - mean_t) ** 2 * cond).sum(-1, keepdim=True) / count
        cov = ((steps - mean_t) * (values - mean_y) * cond).sum(-1, keepdim=True) / count
        slope = torch.where(var_t > 1e-8, cov / var_t.clamp_min(1e-8), torch.zeros_like(cov))
        loc = mean_y + slope * (steps - mean_t)
        var = ((values - loc) ** 2 * cond).sum(-1, keepdim=True) / count
        scale = var.sqrt() + 1e-3 * (mean_y.abs() + 1)
        return (values - loc) / scale, loc, scale
    if stats is not None:
        stats = stats.to(device=values.device, dtype=values.dtype)
        stats = stats[None].expand(values.shape[0], -1, -1) if stats.ndim == 2 else stats
        loc, scale = stats[..., 0:1], stats[..., 1:2]
    else:
        count = cond.sum(-1, keepdim=True).clamp_min(1)
        loc = (values * cond).sum(-1, keepdim=True) / count
        var = ((values - loc) ** 2 * cond).sum(-1, keepdim=True) / count
        scale = var.sqrt() + 1e-3 * (loc.abs() + 1)
        if level is not None:
            steps = torch.arange(values.shape[-1], device=values.device, dtype=values.dtype)
            last = torch.where(cond > 0, steps, torch.zeros_like(steps)).amax(-1, keepdim=True)
            weight = torch.exp(-(last - steps).clamp_min(0) / level) * cond  # 1 at the last conditioning entry
            loc = (values * weight).sum(-1, keepdim=True) / weight.sum(-1, keepdim=True).clamp_min(1e-12)
    return (values - loc) / scale, loc, scale


def training_mask(available: Tensor, horizon: int, generator: torch.Generator | None = None,
                  forecast_share: float = 0.6) -> Tensor:
    """A conditioning mask per window (batch, series, time), a subset of ``available``: with probability
    ``forecast_share`` the forecast mask (all but the last ``horizon`` steps); otherwise, in equal parts, random
    missingness at a ratio ~ U(0, 1) or one contiguous block of 1 .. time / 2 steps."""
    batch, series, length = available.shape
    device = available.device
    u = torch.rand(batch, generator=generator, device=device)
    steps = torch.arange(length, device=device)
    forecast = (steps < length - horizon).to(available.dtype).expand(batch, series, length)
    ratio = torch.rand(batch, 1, 1, generator=generator, device=device)
    random = (torch.rand(batch, series, length, generator=generator, device=device) >= ratio).to(available.dtype)
    width = 1 + (torch.rand(batch, generator=generator, device=device) * (length // 2)).long()
    start = (torch.rand(batch, generator=generator, device=device) * (length - width + 1)).long()
    inside = (steps[None] >= start[:, None]) & (steps[None] < (start + width)[:, None])
    block = (~inside).to(available.dtype)[:, None].expand(batch, series, length)
    choice = append_dims(u, 3)
    mask = torch.where(choice < forecast_share, forecast,
                       torch.where(choice < forecast_share + (1 - forecast_share) / 2, random, block))
    return mask * available


class WindowLoss:
    """``loss(model, batch) -> dict`` for the core Trainer; batch = (values, available, side[, stats]) with
    values, available (batch, series, time), side (batch, covariates, time) and optional per-window series
    statistics (batch, series, 2) for scaling="series".

    conditional: CSDI (masked targets) or an unconditional model (every available entry a target).
    horizon: forecast length for the forecast mask and, for unconditional models, the context whose statistics
    scale the window. fourier_weight: Diffusion-TS's Fourier loss weight (0: none)."""

    def __init__(self, schedule, prediction: str, conditional: bool, horizon: int, *, stats: Tensor | None = None,
                 fourier_weight: float = 0.0, forecast_share: float = 0.6, trend: bool = False,
                 level: float | None = None):
        self.schedule, self.prediction, self.conditional = schedule, prediction, conditional
        self.trend, self.level = trend, level
        self.horizon, self.stats, self.fourier_weight = horizon, stats, fourier_weight
        self.forecast_share = forecast_share

    def __call__(self, model, batch) -> dict:
        values, available, side, *rest = batch
        length = values.shape[-1]
        if self.conditional:
            cond = training_mask(available, self.horizon, forecast_share=self.forecast_share)
        else:
            context = (torch.arange(length, device=values.device) < length - self.horizon).to(values.dtype)
            cond = available * context
        stats = rest[0] if rest else self.stats
        x0, _, _ = normalize(values, cond, stats, self.trend, self.level)
        x0 = x0 * available
        target_mask = available - cond if self.conditional else available
        t = sample_time(self.schedule, x0.shape[0], device=x0.device, kind="discrete")
        t = t.to(x0.dtype)
        noise = torch.randn_like(x0)
        x_t = q_sample(self.schedule, x0, t, noise)
        kwargs = {"side": side if side.shape[1] else None}
        if self.conditional:
            kwargs.update(observed=x0 * cond, mask=cond)
        output = model(x_t, self.schedule.model_input(t).to(x0.dtype), **kwargs)
        alpha, sigma = (append_dims(v, 3).to(x0.dtype) for v in self.schedule.alpha_sigma(t))
        target = convert_prediction(x0, noise, self.prediction, alpha, sigma)
        weight = loss_weight(self.schedule, t, self.prediction, "simple").to(x0.dtype)
        count = target_mask.sum((1, 2)).clamp_min(1)
        loss = (weight * ((output - target) ** 2 * target_mask).sum((1, 2)) / count).mean()
        out = {"loss": loss}
        if self.fourier_weight:
            x0_hat = output if self.prediction == "x0" else (x_t - sigma * output) / alpha
            spectrum = torch.fft.rfft((x0_hat - x0) * target_mask, dim=-1, norm="forward")
            fourier = (spectrum.abs() ** 2).sum((1, 2)).mean()
            out["fourier"] = fourier.detach()
            out["loss"] = loss + self.fourier_weight * fourier
        return out


def _side_kwargs(side: Tensor) -> Tensor | None:
    return side if side.shape[1] else None


@torch.no_grad()
def _conditional(network, schedule, prediction, x, observed, mask, side, solver, steps, grid):
    denoiser = Denoiser(network, schedule, prediction)
    cond = {"observed": observed, "mask": mask, "side": _side_kwargs(side)}
    return core_sample(denoiser, x, solver, steps, grid, cond=cond)


def _guided(network, schedule, prediction, x, observed, mask, side, guidance, steps, grid, zeta):
    from polydiff.core.grids import make_grid
    from polydiff.core.inverse.methods import sample_dps, sample_repaint
    from polydiff.core.inverse.operators import Mask

    denoiser = Denoiser(network, schedule, prediction)
    times = make_grid(schedule, steps, grid, device=x.device)
    operator = Mask(mask[0].to(torch.bool))
    cond = {"side": _side_kwargs(side)}
    if guidance == "dps":
        return sample_dps(denoiser, x, times, operator, observed * mask, zeta=zeta, cond=cond)
    return sample_repaint(denoiser, x, times, operator, observed * mask, jump_length=1, jump_n_sample=1,
                          cond=cond)


def sample_windows(network, schedule, prediction: str, values: Tensor, cond: Tensor, side: Tensor, *,
                   num_samples: int, solver: str, steps: int, grid: str = "uniform", conditional: bool = True,
                   guidance: str = "dps", zeta: float = 1.0, stats: Tensor | None = None,
                   max_batch: int = 2000, trend: bool = False, level: float | None = None) -> Tensor:
    """Draw ``num_samples`` completions of each window; returns (windows, num_samples, series, time) in data
    units, with the conditioning entries equal to ``values``.

    values, cond: (windows, series, time) — cond = 1 where the value is observed (NaN allowed elsewhere);
    side: (windows, covariates, time). Conditional networks sample with ``solver`` through core's ``sample``;
    unconditional ones with core's DPS (``guidance="dps"``, step size ``zeta``) or RePaint (``"repaint"``) on a
    Mask operator, which needs one mask per batch, so windows are sampled one at a time there.
    """
    values = torch.nan_to_num(values, nan=0.0)
    normalised, loc, scale = normalize(values, cond, stats, trend, level)
    windows = values.shape[0]
    outputs = []
    per_batch = max(1, max_batch // num_samples) if conditional else 1
    for start in range(0, windows, per_batch):
        part = slice(start, min(windows, start + per_batch))
        count = part.stop - part.start
        observed, mask, side_rep = (z[part].repeat_interleave(num_samples, 0) for z in (normalised * cond, cond, side))
        x = torch.randn(observed.shape, dtype=observed.dtype)
        if conditional:
            out = _conditional(network, schedule, prediction, x, observed, mask, side_rep, solver, steps, grid)
        else:
            out = _guided(network, schedule, prediction, x, observed, mask, side_rep, guidance, steps, grid, zeta)
        out = out.detach()
        out = torch.where(mask > 0, observed, out)
        outputs.append(out.reshape(count, num_samples, *out.shape[1:]))
    samples = torch.cat(outputs, 0)
    return samples * scale[:, None] + loc[:, None]


@torch.no_grad()
def generate(network, schedule, prediction: str, num_samples: int, shape: tuple[int, int], *, solver: str = "ddpm",
             steps: int = 20, grid: str = "uniform", side: Tensor | None = None, seed: int = 0) -> Tensor:
    """Unconditional samples (num_samples, series, time) in model space from any core solver."""
    denoiser = Denoiser(network, schedule, prediction)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((num_samples, *shape), generator=generator)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return core_sample(denoiser, noise, solver, steps, grid, cond={"side": side})
