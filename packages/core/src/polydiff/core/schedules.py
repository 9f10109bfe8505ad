"""Noise schedules: x_t = alpha(t) * x_0 + sigma(t) * eps, in continuous time.

Every schedule exposes alpha(t), sigma(t), the half-log-SNR lambda(t) = log(alpha / sigma) and its inverse
t(lambda), so one solver code path serves discrete (DDPM-style) and continuous (VP, VE, EDM, flow) models.
Time runs from ``t_min`` (the least noise the model was trained on) to ``t_max`` (pure noise). ``t = 0`` means
clean data (sigma = 0, lambda = +inf) for every schedule: a grid may end there to return the final denoised
prediction, as diffusers' ``final_sigmas_type="zero"`` does.

A discrete schedule of N betas is made continuous as in the DPM-Solver reference code (Lu et al., 2022,
``NoiseScheduleVP('discrete')``): training index n sits at t_n = (n + 1) / N, and log alpha is interpolated
linearly in t between those knots (plus the knot t = 0, alpha = 1). The network receives ``model_input(t)``,
which for a discrete schedule is the fractional training index ``t * N - 1``.

The beta-array constructors (``linear_betas`` ...) return float64 numpy arrays of length N.
"""

from __future__ import annotations

import inspect
import math
import numbers

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "NoiseSchedule",
    "DiscreteSchedule",
    "VPLinearSchedule",
    "VPCosineSchedule",
    "VESchedule",
    "EDMSchedule",
    "FlowSchedule",
    "linear_betas",
    "scaled_linear_betas",
    "cosine_betas",
    "sigmoid_betas",
    "logistic_betas",
    "betas_from_alphas_cumprod",
    "rescale_zero_terminal_snr",
    "interp",
]


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x, extrapolating the end segments linearly.

    xp: (K,) strictly increasing knots; fp: (K,) values; x: any shape. Differentiable, no host syncs.
    """
    index = torch.searchsorted(xp, x.detach().contiguous(), right=False).clamp(1, xp.numel() - 1)
    x0, x1 = xp[index - 1], xp[index]
    f0, f1 = fp[index - 1], fp[index]
    return f0 + (x - x0) * (f1 - f0) / (x1 - x0)


def _as_tensor(t, like: Tensor | None = None) -> Tensor:
    if isinstance(t, Tensor):
        return t if t.is_floating_point() else t.to(torch.float64)
    return torch.as_tensor(t, dtype=torch.float64, device=None if like is None else like.device)


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float, else ValueError naming ``name``; optional bounds (closed unless ``*_open``).

    Shared by the schedules, grids, the Denoiser and the samplers, which validate their scalar arguments once,
    before any tensor work."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name}: expected a value {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name}: expected a value {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def _check_time_range(t_min, t_max, upper: float | None = None) -> tuple[float, float]:
    """(t_min, t_max) as floats with 0 < t_min < t_max (< ``upper`` where the schedule ends there)."""
    t_min = check_real("t_min", t_min, low=0.0, low_open=True)
    t_max = check_real("t_max", t_max, high=upper, high_open=upper is not None)
    if not t_min < t_max:
        raise ValueError(f"t_min, t_max: expected t_min < t_max, got {t_min}, {t_max}")
    return t_min, t_max


def _vp_log_snr(log_alpha: Tensor) -> Tensor:
    """lambda from log alpha when alpha^2 + sigma^2 = 1: sigma^2 = -expm1(2 log alpha), exact near alpha = 1."""
    return log_alpha - 0.5 * torch.log(-torch.expm1(2 * log_alpha))


class NoiseSchedule:
    """Base class. Subclasses implement ``log_alpha``, ``log_snr`` and ``t_from_log_snr``.

    All methods take t of any shape (tensor, float64 recommended) and compute elementwise.
    """

    t_min: float = 0.0
    t_max: float = 1.0
    #: alpha^2 + sigma^2 = 1 at every t (DDPM-style schedules): the prior at t_max is N(0, I)
    variance_preserving: bool = False

    def log_alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = log(alpha(t) / sigma(t)), strictly decreasing in t; +inf at t = 0."""
        raise NotImplementedError

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        """The inverse of ``log_snr``."""
        raise NotImplementedError

    def alpha(self, t) -> Tensor:
        return self.log_alpha(_as_tensor(t)).exp()

    def sigma(self, t) -> Tensor:
        t = _as_tensor(t)
        return (self.log_alpha(t) - self.log_snr(t)).exp()

    def log_alpha_and_log_snr(self, t) -> tuple[Tensor, Tensor]:
        """(log alpha(t), lambda(t)) together; variance-preserving schedules derive lambda from log alpha."""
        t = _as_tensor(t)
        return self.log_alpha(t), self.log_snr(t)

    def alpha_sigma(self, t) -> tuple[Tensor, Tensor]:
        """(alpha(t), sigma(t)) together: what solvers and losses use."""
        log_alpha, log_snr = self.log_alpha_and_log_snr(t)
        return log_alpha.exp(), (log_alpha - log_snr).exp()

    def sigma_tilde(self, t) -> Tensor:
        """sigma / alpha = exp(-lambda): the noise level of the rescaled state x / alpha (EDM's sigma)."""
        return (-self.log_snr(_as_tensor(t))).exp()

    def t_from_sigma_tilde(self, sigma_tilde) -> Tensor:
        return self.t_from_log_snr(-_as_tensor(sigma_tilde).log())

    def model_input(self, t: Tensor) -> Tensor:
        """What the network receives as its time argument (default: t itself)."""
        return t

    def derivatives(self, t) -> tuple[Tensor, Tensor]:
        """(d alpha / dt, d sigma / dt) at t, by automatic differentiation (used for flow-velocity models)."""
        t = _as_tensor(t).detach()
        with torch.enable_grad():
            tt = t.clone().requires_grad_(True)
            alpha, sigma = self.alpha_sigma(tt)
            d_alpha, d_sigma = (
                torch.autograd.grad(value.sum(), tt, retain_graph=True, allow_unused=True, materialize_grads=True)[0]
                for value in (alpha, sigma)
            )
        return d_alpha, d_sigma

    def config(self) -> dict:
        """JSON-serialisable constructor arguments (for save_pretrained)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type" and not isinstance(v, list))
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------------------------- discrete


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """DDPM's linear beta schedule (Ho et al., 2020)."""
    _check_steps(num_steps)
    return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)


def scaled_linear_betas(num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> np.ndarray:
    """Linear in sqrt(beta) (Latent/Stable Diffusion)."""
    _check_steps(num_steps)
    return np.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=np.float64) ** 2


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Improved DDPM's cosine schedule (Nichol & Dhariwal, 2021, eq. 17), betas clipped at ``max_beta``."""
    _check_steps(num_steps)
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
    i = np.arange(num_steps, dtype=np.float64)
    return np.minimum(1 - f((i + 1) / num_steps) / f(i / num_steps), max_beta)


def sigmoid_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, width: float = 6.0):
    """GeoDiff's sigmoid schedule: beta = sigmoid(linspace(-width, width)) rescaled to [beta_start, beta_end]."""
    _check_steps(num_steps)
    u = np.linspace(-width, width, num_steps, dtype=np.float64)
    return 1 / (1 + np.exp(-u)) * (beta_end - beta_start) + beta_start


def logistic_betas(
    num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, k: float = 12.0, t0: float = 0.5
) -> np.ndarray:
    """Logistic schedule ("Schedule Your Edit", Lin et al., 2024): beta(t) = beta_end / (1 + exp(-k (t - t0)))
    over t in [0, 1], floored at beta_start. It keeps the SNR high for longer than linear, then drops fast."""
    _check_steps(num_steps)
    u = np.linspace(0.0, 1.0, num_steps, dtype=np.float64)
    return np.maximum(beta_end / (1 + np.exp(-k * (u - t0))), beta_start)


def betas_from_alphas_cumprod(alphas_cumprod) -> np.ndarray:
    """Betas of an explicit alpha-bar array (decreasing, in (0, 1])."""
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    previous = np.concatenate([[1.0], abar[:-1]])
    return 1 - abar / previous


def rescale_zero_terminal_snr(betas) -> np.ndarray:
    """Shift and scale sqrt(alpha-bar) so the last step has zero SNR (Lin et al., 2024, "Common Diffusion Noise
    Schedules and Sample Steps are Flawed", Algorithm 1). Use with a v-prediction model."""
    abar_sqrt = np.sqrt(np.cumprod(1 - np.asarray(betas, dtype=np.float64)))
    first, last = abar_sqrt[0], abar_sqrt[-1]
    abar_sqrt = (abar_sqrt - last) * first / (first - last)
    return betas_from_alphas_cumprod(abar_sqrt**2)


def _check_steps(num_steps: int) -> None:
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
        raise ValueError(f"num_steps: expected an integer >= 2, got {num_steps!r}")


class DiscreteSchedule(NoiseSchedule):
    """A DDPM schedule of N betas, made continuous by interpolating log alpha in t (see module docstring).

    Args:
        betas: (N,) array in (0, 1], or pass ``alphas_cumprod``.
        alphas_cumprod: (N,) decreasing alpha-bar values (alternative to betas).
        zero_terminal_snr: rescale so the final step has sigma = 1 exactly; its lambda is then clamped at
            ``terminal_log_snr`` so the continuous extension stays finite.
    """

    variance_preserving = True

    def __init__(self, betas=None, *, alphas_cumprod=None, zero_terminal_snr: bool = False,
                 terminal_log_snr: float = -15.0):
        if (betas is None) == (alphas_cumprod is None):
            raise ValueError("betas / alphas_cumprod: give exactly one of them")
        if not isinstance(zero_terminal_snr, (bool, np.bool_)):
            raise ValueError(f"zero_terminal_snr: expected a bool, got {zero_terminal_snr!r}")
        zero_terminal_snr = bool(zero_terminal_snr)
        terminal_log_snr = check_real("terminal_log_snr", terminal_log_snr)
        # config() writes the array as given (before any zero-terminal-SNR rescaling), so a rebuilt schedule
        # repeats exactly the same arithmetic
        if betas is None:
            source = np.array(alphas_cumprod, dtype=np.float64)
            if source.ndim != 1 or not np.all(np.isfinite(source)) or np.any(source < 0) or np.any(source > 1) \
                    or np.any(np.diff(source) >= 0):
                raise ValueError("alphas_cumprod: expected a 1-D array of strictly decreasing values in [0, 1]")
            self._source = ("alphas_cumprod", source)
            betas = betas_from_alphas_cumprod(source)
        else:
            betas = np.array(betas, dtype=np.float64)
            self._source = ("betas", betas.copy())
        if betas.ndim != 1 or betas.size < 2:
            raise ValueError(f"betas: expected a 1-D array of at least 2 values, got shape {betas.shape}")
        if not np.all(np.isfinite(betas)) or np.any(betas <= 0) or np.any(betas > 1):
            raise ValueError("betas: every value must be finite and in (0, 1]")
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        self.betas = betas
        self.num_train_timesteps = n = betas.size
        abar = np.cumprod(1 - betas)
        self.alphas_cumprod = abar
        log_alpha = 0.5 * np.log(np.maximum(abar, 1e-300))
        log_sigma = 0.5 * np.log1p(-np.minimum(abar, 1 - 1e-16))
        lam = np.maximum(log_alpha - log_sigma, terminal_log_snr)
        self.zero_terminal_snr = zero_terminal_snr
        self.terminal_log_snr = terminal_log_snr
        self.t_min, self.t_max = 1.0 / n, 1.0
        knots = np.arange(1, n + 1, dtype=np.float64) / n
        self._t = torch.from_numpy(knots)
        self._log_alpha = torch.from_numpy(np.where(np.isfinite(log_alpha), log_alpha, lam + log_sigma))
        # log alpha with the clean-data knot (t = 0, alpha = 1) for t in [0, 1/N]
        self._t0 = torch.cat([torch.zeros(1, dtype=torch.float64), self._t])
        self._log_alpha0 = torch.cat([torch.zeros(1, dtype=torch.float64), self._log_alpha])
        self._log_alpha_flipped = self._log_alpha0.flip(0)
        self._t0_flipped = self._t0.flip(0)

    def _buffers(self, t: Tensor, *names: str) -> list[Tensor]:
        return [getattr(self, name).to(device=t.device, dtype=t.dtype) for name in names]

    def log_alpha(self, t):
        t = _as_tensor(t)
        knots, values = self._buffers(t, "_t0", "_log_alpha0")
        return interp(t, knots, values)

    def log_snr(self, t):
        return self.log_alpha_and_log_snr(t)[1]

    def log_alpha_and_log_snr(self, t):
        log_alpha = self.log_alpha(t)
        lam = _vp_log_snr(log_alpha)
        return log_alpha, lam.clamp_min(self.terminal_log_snr) if self.zero_terminal_snr else lam

    def t_from_log_snr(self, log_snr):
        """Exact inverse (as in the DPM-Solver reference): lambda -> log alpha = -softplus(-2 lambda) / 2, then t
        from the piecewise-linear log alpha(t). With zero terminal SNR, lambdas below the clamp map to t = 1."""
        log_snr = _as_tensor(log_snr)
        log_alpha = -0.5 * torch.nn.functional.softplus(-2 * log_snr)
        knots, values = self._buffers(log_snr, "_log_alpha_flipped", "_t0_flipped")
        t = interp(log_alpha, knots, values)
        if self.zero_terminal_snr:
            t = torch.where(log_snr <= self.terminal_log_snr, torch.ones_like(t), t)
        return t

    def model_input(self, t):
        """The fractional training index ``t * N - 1`` (DPM-Solver's discrete-time convention)."""
        return t * self.num_train_timesteps - 1

    def config(self):
        name, values = self._source
        return {"type": "discrete", name: values.tolist(), "zero_terminal_snr": self.zero_terminal_snr,
                "terminal_log_snr": self.terminal_log_snr}

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteSchedule:
        return cls(linear_betas(num_steps, beta_start, beta_end))

    @classmethod
    def cosine(cls, num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
        return cls(cosine_betas(num_steps, s, max_beta))


# ------------------------------------------------------------------------------------------- continuous


class VPLinearSchedule(NoiseSchedule):
    """Continuous VP with linear beta(t) = beta_min + t (beta_max - beta_min) (Song et al., 2021):
    log alpha(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2, sigma = sqrt(1 - alpha^2)."""

    variance_preserving = True

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3, t_max: float = 1.0):
        beta_min = check_real("beta_min", beta_min, low=0.0, low_open=True)
        beta_max = check_real("beta_max", beta_max)
        if not beta_min < beta_max:
            raise ValueError(f"beta_min, beta_max: expected 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max
        self.t_min, self.t_max = _check_time_range(t_min, t_max)

    def log_alpha(self, t):
        t = _as_tensor(t)
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def log_snr(self, t):
        return _vp_log_snr(self.log_alpha(t))

    def log_alpha_and_log_snr(self, t):
        log_alpha = self.log_alpha(t)
        return log_alpha, _vp_log_snr(log_alpha)

    def t_from_log_snr(self, log_snr):
        log_snr = _as_tensor(log_snr)
        # -2 log alpha = log(1 + exp(-2 lambda)) = t^2 (b1 - b0) / 2 + t b0; solve the quadratic for t >= 0
        c = torch.nn.functional.softplus(-2 * log_snr)
        db = self.beta_max - self.beta_min
        return 2 * c / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * db * c))

    def config(self):
        return {"type": "vp_linear", "beta_min": self.beta_min, "beta_max": self.beta_max,
                "t_min": self.t_min, "t_max": self.t_max}


class VPCosineSchedule(NoiseSchedule):
    """Continuous cosine VP (Nichol & Dhariwal, 2021): alpha(t) = cos((t + s) / (1 + s) pi / 2) / cos(s / (1 + s)
    pi / 2). t_max defaults to 0.9946 as in the DPM-Solver reference, where the schedule stays well conditioned."""

    variance_preserving = True

    def __init__(self, s: float = 0.008, t_min: float = 1e-3, t_max: float = 0.9946):
        # alpha(t) reaches 0 at t = 1 whatever s is, so t_max < 1
        self.s = check_real("s", s, low=0.0)
        self.t_min, self.t_max = _check_time_range(t_min, t_max, upper=1.0)
        self._log_alpha_0 = math.log(math.cos(s / (1 + s) * math.pi / 2))

    def log_alpha(self, t):
        t = _as_tensor(t)
        # rounding can make log alpha(0) a few ulps positive, which would turn sigma(0) into NaN
        return (torch.log(torch.cos((t + self.s) / (1 + self.s) * math.pi / 2)) - self._log_alpha_0).clamp_max(0.0)

    def log_snr(self, t):
        return _vp_log_snr(self.log_alpha(t))

    def log_alpha_and_log_snr(self, t):
        log_alpha = self.log_alpha(t)
        return log_alpha, _vp_log_snr(log_alpha)

    def t_from_log_snr(self, log_snr):
        log_snr = _as_tensor(log_snr)
        log_alpha = -0.5 * torch.nn.functional.softplus(-2 * log_snr)
        return 2 * (1 + self.s) / math.pi * torch.arccos(torch.exp(log_alpha + self._log_alpha_0)) - self.s

    def config(self):
        return {"type": "vp_cosine", "s": self.s, "t_min": self.t_min, "t_max": self.t_max}


class VESchedule(NoiseSchedule):
    """Variance exploding (Song et al., 2021): alpha = 1, sigma(t) = sigma_min (sigma_max / sigma_min)^t for
    t in (0, 1]; t = 0 is clean data. The network receives sigma."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        sigma_min = check_real("sigma_min", sigma_min, low=0.0, low_open=True)
        sigma_max = check_real("sigma_max", sigma_max)
        if not sigma_min < sigma_max:
            raise ValueError(f"sigma_min, sigma_max: expected 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.t_min, self.t_max = 1e-5, 1.0
        self._log_ratio = math.log(sigma_max / sigma_min)

    def log_alpha(self, t):
        return 0.0 * _as_tensor(t)  # keeps the autograd graph for derivatives()

    def log_snr(self, t):
        t = _as_tensor(t)
        lam = -(math.log(self.sigma_min) + t * self._log_ratio)
        return torch.where(t > 0, lam, torch.full_like(lam, math.inf))

    def t_from_log_snr(self, log_snr):
        log_snr = _as_tensor(log_snr)
        return ((-log_snr - math.log(self.sigma_min)) / self._log_ratio).clamp_min(0.0)

    def model_input(self, t):
        return self.sigma(t)

    def config(self):
        return {"type": "ve", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


class EDMSchedule(NoiseSchedule):
    """EDM (Karras et al., 2022): alpha = 1 and time is the noise level itself, sigma(t) = t, on
    [sigma_min, sigma_max]. The network receives sigma; EDM's preconditioning lives in the Denoiser."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, sigma_data: float = 0.5):
        sigma_min = check_real("sigma_min", sigma_min, low=0.0, low_open=True)
        sigma_max = check_real("sigma_max", sigma_max)
        sigma_data = check_real("sigma_data", sigma_data, low=0.0, low_open=True)
        if not sigma_min < sigma_max:
            raise ValueError(f"sigma_min, sigma_max: expected 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, sigma_data
        self.t_min, self.t_max = sigma_min, sigma_max

    def log_alpha(self, t):
        return 0.0 * _as_tensor(t)  # keeps the autograd graph for derivatives()

    def log_snr(self, t):
        return -torch.log(_as_tensor(t))

    def t_from_log_snr(self, log_snr):
        return torch.exp(-_as_tensor(log_snr))

    def config(self):
        return {"type": "edm", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "sigma_data": self.sigma_data}


class FlowSchedule(NoiseSchedule):
    """The linear interpolant of flow matching / rectified flow: alpha = 1 - t, sigma = t, t in [0, 1]."""

    def __init__(self, t_min: float = 1e-4, t_max: float = 1.0 - 1e-4):
        # alpha = 1 - t vanishes at t = 1, where the rescaled state x / alpha of most solvers is undefined
        self.t_min, self.t_max = _check_time_range(t_min, t_max, upper=1.0)

    def log_alpha(self, t):
        return torch.log1p(-_as_tensor(t))

    def log_snr(self, t):
        t = _as_tensor(t)
        return torch.log1p(-t) - torch.log(t)

    def t_from_log_snr(self, log_snr):
        return torch.sigmoid(-_as_tensor(log_snr))

    def config(self):
        return {"type": "flow", "t_min": self.t_min, "t_max": self.t_max}


_TYPES = {
    "discrete": DiscreteSchedule,
    "vp_linear": VPLinearSchedule,
    "vp_cosine": VPCosineSchedule,
    "ve": VESchedule,
    "edm": EDMSchedule,
    "flow": FlowSchedule,
}


def schedule_from_config(config: dict) -> NoiseSchedule:
    """Rebuild a schedule from ``schedule.config()``; ValueError naming the key for an unknown type or argument."""
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a dict from schedule.config(), got {type(config).__name__}")
    config = dict(config)
    kind = config.pop("type", None)
    if kind == "bridge":  # defined with the bridges, which import this module
        from .bridges.ddbm import BridgeSchedule

        if set(config) != {"base", "t_T"}:
            raise ValueError(f"config: a bridge schedule has the keys ['base', 't_T'], got {sorted(config)}")
        return BridgeSchedule(schedule_from_config(config["base"]), config["t_T"])
    if kind not in _TYPES:
        raise ValueError(f"config['type']: unknown schedule {kind!r}; choices: {sorted(_TYPES)}")
    accepted = set(inspect.signature(_TYPES[kind]).parameters)
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise ValueError(f"config{unknown}: not arguments of a {kind!r} schedule; expected some of {sorted(accepted)}")
    return _TYPES[kind](**config)
