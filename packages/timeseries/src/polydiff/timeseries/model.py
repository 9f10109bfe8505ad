"""``DiffusionForecaster``: probabilistic forecasting and imputation in statsforecast's conventions.

    fc = DiffusionForecaster(h=12, freq="MS")            # CSDI by default
    fc.fit(train)                                        # long frame: unique_id, ds, y [, exogenous columns]
    fc.predict(level=[80, 95])                           # unique_id, ds, CSDI, CSDI-lo-80, CSDI-hi-80, ...
    fc.predict_samples()                                 # (series, num_samples, h)
    fc.cross_validation(df, n_windows=5)                 # unique_id, ds, cutoff, y, CSDI, ...
    fc.impute(df_with_nan)                               # NaN filled with the median, plus intervals

One global model is trained on every window of ``context_length + h`` steps of every series (univariate), or on
the aligned series jointly (``multivariate=True``, the CSDI feature axis). Calendar features of ``freq`` and the
frame's exogenous columns condition the model (exogenous values for the forecast steps come from ``X_df``).
Models: "csdi" (conditional, any core solver), "tsdiff" (unconditional + self-guidance), "diffusion_ts"
(trend/season/residual x0 predictor + Fourier loss, reconstruction guidance); see :mod:`.diffusion`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polydiff.core.pretrained import load_pretrained, read_config, save_pretrained
from polydiff.core.sampling import list_solvers
from polydiff.core.training import TrainConfig, Trainer

from .baseline import (
    decomposition_reference,
    fit_holt_winters,
    fit_smoothing,
    holt_winters_reference,
    recent_level,
    seasonal_reference,
)
from .data import calendar_features, calendar_seasons, check_frame, check_freq, prefers_log, season_length
from .diffusion import WindowLoss, csdi_schedule, sample_windows
from .metrics import level_quantiles
from .networks import CSDINetwork, DiffusionTSNetwork

__all__ = ["DiffusionForecaster", "ForecasterConfig", "MODELS", "epoch_train_steps"]

MODELS = {"csdi": "CSDI", "tsdiff": "TSDiff", "diffusion_ts": "DiffusionTS"}
SCALINGS = ("auto", "window", "series", "trend", "level")
TRANSFORMS = ("auto", "none", "seasonal_diff", "double_seasonal", "mstl", "holt_winters")
#: seasons whose median profile ``transform="auto"`` subtracts at its hidden season (``seasons=None``)
AUTO_SEASONS = 1
#: what ``transform="auto"`` removes at a hidden season: "seasonal_diff", "double_seasonal" or "mstl"
AUTO_TRANSFORM = "mstl"
#: long seasons of history that start the states of ``transform="double_seasonal"`` before the context
SMOOTHING_SEASONS = 3
#: ``shrink`` where the residual of a smoothed hidden season ("double_seasonal", "mstl") is modelled around its
#: recent level (``shrink=None``)
AUTO_SHRINK = 0.25
LOGS = ("auto", True, False)
GUIDANCE = ("dps", "repaint")


def _int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ForecasterConfig:
    """Every knob of :class:`DiffusionForecaster`, validated on construction.

    model: "csdi", "tsdiff" or "diffusion_ts". h: forecast horizon (steps). freq: pandas frequency alias.
    context_length: conditioning steps before the horizon (None: max(3 h, 3 season), the season of ``freq``).
    num_samples: sample paths per series. solver, steps, grid: sampling (CSDI: any name of
    ``polydiff.core.list_solvers()``, default "dpmpp_2m" with 20 steps on a uniform grid — chosen by the bench:
    as accurate as ancestral "ddpm" and closer to nominal coverage); guidance, zeta: how the
    unconditional models are steered to the observations ("dps" step size ``zeta``, or "repaint").
    train_steps, batch_size, lr: training (core Trainer, AdamW, cosine decay, EMA 0.999).
    epochs, min_train_steps: None (default) trains exactly ``train_steps`` steps. A number makes the budget follow
    the amount of training data: ``epochs`` passes over the training windows, i.e.
    ceil(epochs x windows / batch) optimizer steps (batch = min(batch_size, windows)), clipped to
    [min(min_train_steps, train_steps), train_steps] — ``train_steps`` becomes the ceiling (see
    :func:`epoch_train_steps`).
    dim, depth, heads: network size. num_timesteps: diffusion steps of the CSDI schedule. scaling: "window"
    (per-window mean/std of the conditioning values), "level" (the location is the exponentially weighted mean of
    the conditioning values, weights exp(-age / ``level_steps``), None: h / 8 — the recent level — and the scale
    their std), "trend" (per-window least-squares line through the conditioning values and the std around it; the
    line is extrapolated over the horizon), "series" (training-series mean/std) or "auto" (default): "level" where
    "auto" removed a hidden season (below), else "window". transform: "none", "seasonal_diff" (the model sees
    y_t - y_{t-season}, the residual of a seasonal-naive forecast; sample paths are integrated back from the
    observed history, so forecasts are in data units), "double_seasonal" (the model sees y_t - s_t, s_t the
    seasonal part of the one-step forecast of double seasonal exponential smoothing with the main season of
    ``freq`` and ``season`` (None: the week), its smoothing parameters fitted on each training series, see
    :mod:`.baseline`; s_t is added back to the sample paths; needs h <= the main season), "mstl" (as
    "double_seasonal", s_t the mean of that seasonal part and the seasonal forecast of an MSTL-style decomposition
    at the main season and ``season``, redone every main season on the history before it, see
    :func:`.baseline.decomposition_reference`), "holt_winters" (the model
    sees y_t - s_{t-season}, s the seasonal profile of additive Holt-Winters with level and trend at ``season``
    (None: the main season of ``freq``), its parameters fitted on each training series, see
    :func:`.baseline.fit_holt_winters`; beyond the data the last profile repeats, and it is added back to the
    sample paths; needs two seasons + h points) or "auto" (default): at
    the longest calendar season beyond the main one that the context cannot see (see
    :func:`.data.calendar_seasons`: the week of sub-daily data — 336 steps at 30min with a context of 144, 168
    hourly with 72; daily and coarser data have no such season and are modelled as they are), "mstl"
    (or, with ``seasons`` given or h beyond the main season, "seasonal_diff" at that season), provided every
    series holds context + h + 4 such seasons (``seasons`` + 1 for "seasonal_diff"), else "none". season: the
    lag of "seasonal_diff" (None: the main season of ``freq``, see :func:`.data.season_length`) or the long
    season of "double_seasonal" and "mstl". seasons: the reference of the seasonal difference is the median of the values
    1, ..., ``seasons`` seasons back (a robust seasonal profile; None: 1, the seasonal-naive forecast). log: True
    models log(y) (sample paths are exponentiated back), False y itself, "auto" (default) decides from the
    training data by :func:`.data.prefers_log` (Guerrero's rule: positive series whose seasonal spread grows with
    the level).
    shrink: with ``scaling="level"``, the share of its own level shift the network keeps: at every forecast step
    the sample paths are moved together so that their median becomes r + shrink x (median - r), r the recent level
    of the context (the location of the window, the forecast the network refines), their spread unchanged; 1 keeps
    the network's median, 0 puts it on r. None (default): ``AUTO_SHRINK`` where the residual of double seasonal
    smoothing ("double_seasonal") or of its mean with the MSTL-style reference ("mstl") is modelled around its
    recent level, else 1.
    multivariate: model the series jointly (they must share timestamps). alias: the output column name.
    checkpoint_dir: Trainer checkpoints (a killed fit resumes there). device: torch device for training and
    sampling.
    """

    h: int
    freq: str
    model: str = "csdi"
    context_length: int | None = None
    num_samples: int = 100
    solver: str | None = None
    steps: int | None = None
    grid: str = "uniform"
    guidance: str = "dps"
    zeta: float = 0.5
    seed: int = 0
    train_steps: int = 2000
    epochs: float | None = None
    min_train_steps: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    dim: int = 64
    depth: int = 2
    heads: int = 4
    num_timesteps: int = 50
    scaling: str = "auto"
    level_steps: float | None = None
    transform: str = "auto"
    season: int | None = None
    seasons: int | None = None
    log: str | bool = "auto"
    shrink: float | None = None
    multivariate: bool = False
    alias: str | None = None
    checkpoint_dir: str | None = None
    device: str = "cpu"
    progress: bool = False

    def __post_init__(self):
        _int(self.h, "h")
        check_freq(self.freq)
        if self.model not in MODELS:
            raise ValueError(f"model: unknown model {self.model!r}; choices: {list(MODELS)}")
        if self.context_length is not None:
            _int(self.context_length, "context_length")
        for name in ("num_samples", "train_steps", "min_train_steps", "batch_size", "dim", "depth", "heads"):
            _int(getattr(self, name), name)
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float))
                                        or not math.isfinite(self.epochs) or self.epochs <= 0):
            raise ValueError(f"epochs: expected a positive finite number or None, got {self.epochs!r}")
        _int(self.num_timesteps, "num_timesteps", 2)
        _int(self.seed, "seed", 0)
        if self.steps is not None:
            _int(self.steps, "steps")
            if self.steps > self.num_timesteps:
                raise ValueError(f"steps: {self.steps} exceeds num_timesteps={self.num_timesteps}")
        if self.solver is not None and self.solver not in list_solvers():
            raise ValueError(f"solver: unknown solver {self.solver!r}; choices: {list(list_solvers())}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform: expected one of {TRANSFORMS}, got {self.transform!r}")
        if self.season is not None:
            _int(self.season, "season")
        if self.seasons is not None:
            _int(self.seasons, "seasons")
        if not any(self.log is choice for choice in LOGS) and self.log != "auto":
            raise ValueError(f"log: expected one of {LOGS}, got {self.log!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling: expected one of {SCALINGS}, got {self.scaling!r}")
        if self.level_steps is not None and (isinstance(self.level_steps, bool)
                                             or not isinstance(self.level_steps, (int, float))
                                             or not math.isfinite(self.level_steps) or self.level_steps <= 0):
            raise ValueError(f"level_steps: expected a positive finite number or None, got {self.level_steps!r}")
        if self.shrink is not None and (isinstance(self.shrink, bool) or not isinstance(self.shrink, (int, float))
                                        or not 0 <= self.shrink <= 1):
            raise ValueError(f"shrink: expected a number in [0, 1] or None, got {self.shrink!r}")
        if self.guidance not in GUIDANCE:
            raise ValueError(f"guidance: expected one of {GUIDANCE}, got {self.guidance!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive finite float, got {self.lr!r}")
        if not (isinstance(self.zeta, (int, float)) and math.isfinite(self.zeta) and self.zeta >= 0):
            raise ValueError(f"zeta: expected a finite float >= 0, got {self.zeta!r}")
        if self.dim % self.heads:
            raise ValueError(f"heads: {self.heads} must divide dim={self.dim}")
        if self.alias is not None and (not isinstance(self.alias, str) or not self.alias):
            raise ValueError(f"alias: expected a non-empty string, got {self.alias!r}")

    @property
    def name(self) -> str:
        return self.alias or MODELS[self.model]

    @property
    def resolved_context(self) -> int:
        if self.context_length is not None:
            return self.context_length
        return max(3 * self.h, 3 * season_length(self.freq))

    @property
    def lag(self) -> int:
        """The seasonal-difference lag of ``transform="seasonal_diff"``, the long season of "double_seasonal" or
        the season of "holt_winters" (0 otherwise; "auto" is resolved by :meth:`DiffusionForecaster.fit`, see
        :attr:`DiffusionForecaster.lag`)."""
        if self.transform == "holt_winters":
            return self.season or season_length(self.freq)
        if self.transform in ("double_seasonal", "mstl"):
            return self.season or max(calendar_seasons(self.freq))
        if self.transform != "seasonal_diff":
            return 0
        return self.season or season_length(self.freq)

    @property
    def resolved_level_steps(self) -> float:
        """tau of ``scaling="level"``: ``level_steps``, or h / 8 (at least 1)."""
        return float(self.level_steps or max(1.0, self.h / 8))

    @property
    def resolved_solver(self) -> str:
        return self.solver or "dpmpp_2m"

    @property
    def resolved_steps(self) -> int:
        return self.steps or min(20, self.num_timesteps)


def epoch_train_steps(windows: int, batch_size: int, epochs: float, floor: int, ceiling: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``windows`` training windows in batches of
    min(batch_size, windows): ceil(epochs x windows / batch), clipped to [min(floor, ceiling), ceiling].

    A short series (airline: 144 monthly points, 37 windows of 48 steps, one batch per pass) gets few steps, a
    long one (taylor: 4,032 half-hourly points, 3,601 windows) hits the ceiling."""
    windows, batch_size = _int(windows, "windows"), _int(batch_size, "batch_size")
    floor, ceiling = _int(floor, "floor"), _int(ceiling, "ceiling")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not math.isfinite(epochs) or epochs <= 0:
        raise ValueError(f"epochs: expected a positive finite number, got {epochs!r}")
    steps = math.ceil(epochs * windows / min(batch_size, windows) - 1e-9)
    return int(min(ceiling, max(min(floor, ceiling), steps)))


def _check_levels(level) -> list:
    if level is None:
        return []
    if isinstance(level, (int, float)):
        level = [level]
    levels = list(level)
    for value in levels:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 100:
            raise ValueError(f"level: expected percentages in (0, 100), got {levels!r}")
    return levels


def _difference(y: np.ndarray, lag: int, seasons: int = 1) -> np.ndarray:
    """y_t - median(y_{t-lag}, ..., y_{t-seasons*lag}) for t >= seasons * lag: the residual of a seasonal-naive
    forecast (seasons = 1) or of the median profile of the last ``seasons`` seasons (y itself when lag = 0)."""
    if not lag:
        return y
    span, n = lag * seasons, len(y)
    reference = np.median(np.stack([y[span - j * lag:n - j * lag] for j in range(1, seasons + 1)]), axis=0)
    return y[span:] - reference


def _integrate(history: np.ndarray, diffs: np.ndarray, lag: int | None = None) -> np.ndarray:
    """Undo :func:`_difference` on sample paths: history (series, seasons x lag) the last observed values, diffs
    (series, samples, h) sampled differences -> (series, samples, h) values, y_{T+k} = d_{T+k} + the median of
    y_{T+k-lag}, ..., y_{T+k-seasons*lag}, earlier values taken from the history or, beyond one season, from the
    same path. ``lag`` None: the history is one season long."""
    span = history.shape[1]
    lag = span if lag is None else lag
    seasons = span // lag
    series, samples, h = diffs.shape
    path = np.concatenate([np.broadcast_to(history[:, None], (series, samples, span)), np.empty_like(diffs)], -1)
    for k in range(h):
        at = span + k
        reference = np.median(np.stack([path[:, :, at - j * lag] for j in range(1, seasons + 1)]), axis=0)
        path[:, :, at] = reference + diffs[:, :, k]
    return path[:, :, span:]


class DiffusionForecaster:
    """Probabilistic forecaster over long frames; see the module docstring. Constructor keywords are the fields
    of :class:`ForecasterConfig`."""

    def __init__(self, model: str = "csdi", h: int = 1, freq: str = "D", **options):
        self.config = ForecasterConfig(h=h, freq=freq, model=model, **options)
        self.network = None
        self._state: dict | None = None

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def length(self) -> int:
        return self.config.resolved_context + self.config.h

    @property
    def lag(self) -> int:
        """The seasonal-difference lag in use: resolved at fit for ``transform="auto"``."""
        if self._state and "lag" in self._state:
            return int(self._state["lag"])
        return self.config.lag

    @property
    def log(self) -> bool:
        """Whether the model works on log(y): resolved at fit for ``log="auto"``."""
        if self._state and "log" in self._state:
            return bool(self._state["log"])
        return self.config.log is True

    @property
    def seasons(self) -> int:
        """How many past seasons the reference of the seasonal difference is the median of (see :attr:`lag`)."""
        if self._state and "lag" in self._state:
            return int(self._state.get("seasons", 1))
        return self.config.seasons or (AUTO_SEASONS if self.config.transform == "auto" else 1)

    @property
    def smoothing(self) -> bool:
        """Whether the model sees the residual of double seasonal exponential smoothing (:mod:`.baseline`) instead
        of a seasonal difference: ``transform="double_seasonal"``, or "auto" with ``AUTO_TRANSFORM`` so."""
        return bool(self._state and self._state.get("smoothing"))

    @property
    def holt_winters(self) -> bool:
        """Whether the model sees the residual of the seasonal part of additive Holt-Winters at :attr:`lag`
        (:mod:`.baseline`): ``transform="holt_winters"``."""
        return bool(self._state and self._state.get("holt_winters"))

    @property
    def span(self) -> int:
        """History the seasonal difference consumes before its first value: lag x seasons (0 without one)."""
        return self.lag * self.seasons if self.lag else 0

    def _choose(self, raw: list, impute: bool = False) -> tuple[int, bool, int]:
        """(lag, log, seasons) for the series ``raw`` (arrays in data units): the config's choices with "auto"
        resolved; seasons = 0 marks the residual of Holt-Winters at ``lag`` (no history consumed)."""
        c = self.config
        main = season_length(c.freq)
        log = all(prefers_log(y, main) for y in raw) if c.log == "auto" else bool(c.log)
        if c.transform == "auto" and not impute:
            seasons = c.seasons or AUTO_SEASONS
            hidden = [s for s in calendar_seasons(c.freq)[1:] if s > c.resolved_context]
            lag = max(hidden, default=0)
            if lag and self._smooths(lag):
                seasons = SMOOTHING_SEASONS
            if lag and any(len(y) < self.length + (seasons + 1) * lag for y in raw):
                lag = 0
        elif c.transform == "holt_winters":
            lag, seasons = c.lag, 0
        elif c.transform in ("double_seasonal", "mstl"):
            lag, seasons = c.lag, SMOOTHING_SEASONS
        else:
            lag, seasons = c.lag, c.seasons or 1
        return lag, log, seasons

    def _smooths(self, lag: int) -> bool:
        """Whether a resolved hidden-season ``lag`` is removed by double seasonal smoothing (see :attr:`smoothing`):
        explicitly, or under "auto" with ``AUTO_TRANSFORM`` so where the horizon fits in the main season."""
        c = self.config
        if c.transform in ("double_seasonal", "mstl"):
            return True
        main = season_length(c.freq)
        return (c.transform == "auto" and AUTO_TRANSFORM in ("double_seasonal", "mstl") and c.seasons is None
                and bool(lag) and c.h <= main and lag % main == 0)

    def _decomposes(self) -> bool:
        """Whether a smoothed hidden season (:meth:`_smooths`) also takes the MSTL-style decomposition's seasonal
        forecast into its reference: ``transform="mstl"``, or "auto" with ``AUTO_TRANSFORM`` so."""
        c = self.config
        return c.transform == "mstl" or (c.transform == "auto" and AUTO_TRANSFORM == "mstl")

    @property
    def decomposed(self) -> bool:
        """Whether the reference the model sees the residual of is the mean of double seasonal smoothing's seasonal
        part and the seasonal forecast of an MSTL-style decomposition (``transform="mstl"``)."""
        return bool(self._state and self._state.get("decomposed"))

    def _reference(self, y: np.ndarray, uid, horizon: int = 0) -> np.ndarray:
        """The seasonal reference of :attr:`smoothing` over y (model scale) and ``horizon`` steps past it."""
        main = season_length(self.config.freq)
        reference = seasonal_reference(y, main, self.lag, *self._state["smoothing"][str(uid)], horizon=horizon)
        if self.decomposed:
            reference = 0.5 * (reference + decomposition_reference(y, main, self.lag, horizon=horizon))
        return reference

    def _residual(self, y: np.ndarray, uid) -> np.ndarray:
        """y (model scale) -> what the network sees: the seasonal difference, or y minus the seasonal part of
        double seasonal smoothing or of Holt-Winters, started from y's first point; each drops the first
        :attr:`span` values (none for Holt-Winters)."""
        if self.holt_winters:
            return y - holt_winters_reference(y, self.lag, *self._state["holt_winters"][str(uid)])
        if not self.smoothing:
            return _difference(y, self.lag, self.seasons)
        return (y - self._reference(y, uid))[self.span:]

    def _tail(self, y: np.ndarray) -> np.ndarray:
        """The history a forecast needs: the last context + :attr:`span` values, or all of them where the model
        sees the residual of double seasonal smoothing (its states run over the whole history, as in training)."""
        return y if self.smoothing or self.holt_winters else y[-(self.config.resolved_context + self.span):]

    def _restore(self, histories: list, samples: np.ndarray, ids: list) -> np.ndarray:
        """Undo :meth:`_residual` on sample paths (series, samples, h), histories (per series, at least span +
        context values) the observed values (model scale) before the forecast."""
        if self.holt_winters:
            h = samples.shape[-1]
            future = np.stack([holt_winters_reference(y, self.lag, *self._state["holt_winters"][str(uid)],
                                                      horizon=h)[-h:] for y, uid in zip(histories, ids, strict=True)])
            return samples + future[:, None]
        if not self.smoothing:
            return _integrate(np.stack([y[-self.span:] for y in histories]), samples, self.lag)
        h = samples.shape[-1]
        future = np.stack([self._reference(y, uid, h)[-h:] for y, uid in zip(histories, ids, strict=True)])
        return samples + future[:, None]

    def _forward(self, y: np.ndarray, uid) -> np.ndarray:
        """y on the model's scale (log(y) when :attr:`log`); NaN passes through."""
        if not self.log:
            return y
        if (y[np.isfinite(y)] <= 0).any():
            raise ValueError(f"log: series {uid!r} has values <= 0; the log scale needs positive y (log=False)")
        return np.log(y)

    @staticmethod
    def _exp(samples: np.ndarray, history: np.ndarray) -> np.ndarray:
        """exp of log-scale samples, each series' samples first clipped to its log history's range widened by twice
        its width on either side (at least 1): a guard that never binds on a sensible forecast (airline's 12-month
        growth is a fraction of it) but keeps an untrained network's samples from overflowing to 1e20 or inf.
        ``samples`` (series, samples, h), ``history`` (series, length) on the log scale (NaN ignored)."""
        lo, hi = np.nanmin(history, axis=-1), np.nanmax(history, axis=-1)
        margin = 2 * np.maximum(hi - lo, 1.0)
        return np.exp(np.clip(samples, (lo - margin)[:, None, None], (hi + margin)[:, None, None]))

    @property
    def scaling(self) -> str:
        """The window scaling in use: "auto" resolved at fit ("level" on the residual of a hidden season, else
        "window")."""
        if self._state and "scaling" in self._state:
            return str(self._state["scaling"])
        return self.config.scaling

    def _resolve_shrink(self, lag: int, scaling: str) -> float:
        """``shrink`` with None resolved (see :class:`ForecasterConfig`); 1 unless ``scaling`` is "level"."""
        if scaling != "level":
            return 1.0
        if self.config.shrink is not None:
            return float(self.config.shrink)
        return AUTO_SHRINK if lag and self._smooths(lag) else 1.0

    @property
    def shrink(self) -> float:
        """The share of its level shift the network keeps (see :class:`ForecasterConfig`), resolved at fit."""
        if self._state and "shrink" in self._state:
            return float(self._state["shrink"])
        return 1.0

    def _shrunk(self, samples: np.ndarray, histories: np.ndarray) -> np.ndarray:
        """Move each forecast step's sample paths (series, samples, h) together so that their median is
        r + shrink x (median - r), r the recent level of ``histories`` (series, context), all on the network's
        scale (the residual, before :meth:`_restore`)."""
        weight = 1.0 - self.shrink
        if not weight:
            return samples
        recent = recent_level(histories, self.config.resolved_level_steps)
        return samples - weight * (np.median(samples, axis=1) - recent[:, None])[:, None]

    def _level(self) -> float | None:
        return self.config.resolved_level_steps if self.scaling == "level" else None

    def _check_fitted(self) -> None:
        if self.network is None:
            raise ValueError("fit: the forecaster is not fitted; call fit(df) first")

    def _schedule(self):
        return csdi_schedule(self.config.num_timesteps)

    def _prediction(self) -> str:
        return "x0" if self.config.model == "diffusion_ts" else "eps"

    def _side(self, ds: pd.DatetimeIndex, exog: np.ndarray | None) -> np.ndarray:
        features = calendar_features(ds, self.config.freq)
        if exog is not None and exog.shape[1]:
            stats = np.asarray(self._state["exog_stats"], np.float64)
            features = np.concatenate([features, ((exog - stats[:, 0]) / stats[:, 1]).astype(np.float32)], 1)
        return features.T.astype(np.float32)  # (covariates, time)

    def _series(self, frame: pd.DataFrame):
        """(unique_ids, values (series, time) list, ds list, exog list) grouped by unique_id in order."""
        ids, values, stamps, exog = [], [], [], []
        for uid, group in frame.groupby("unique_id", sort=False):
            ids.append(uid)
            values.append(group["y"].to_numpy(np.float64))
            stamps.append(pd.DatetimeIndex(group["ds"]))
            exog.append(group[self._state["exog"]].to_numpy(np.float64) if self._state["exog"] else None)
        return ids, values, stamps, exog

    def _network(self, num_series: int, num_covariates: int):
        c = self.config
        if c.model == "diffusion_ts":
            return DiffusionTSNetwork(num_series, self.length, num_covariates, c.dim, c.depth, c.heads)
        return CSDINetwork(num_series, num_covariates, c.dim, c.depth, c.heads, conditional=c.model == "csdi")

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame) -> DiffusionForecaster:
        """Train on every window of every series in the long frame ``df`` (unique_id, ds, y, optional exogenous
        columns, no NaN in y). Returns self."""
        frame = check_frame(df, self.config.freq, allow_nan=False, exog=self._exog_columns(df))
        return self._fit(frame)

    @staticmethod
    def _exog_columns(df) -> tuple:
        if not isinstance(df, pd.DataFrame):
            return ()
        return tuple(c for c in df.columns if c not in ("unique_id", "ds", "y"))

    def _fit(self, frame: pd.DataFrame, impute: bool = False) -> DiffusionForecaster:
        c = self.config
        exog = list(self._exog_columns(frame))
        stats = [[float(frame[col].mean()), float(frame[col].std(ddof=0)) or 1.0] for col in exog]
        self._state = {"exog": exog, "exog_stats": stats}
        ids, raw, stamps, exogs = self._series(frame)
        lag, log, seasons = self._choose(raw, impute)
        scaling = c.scaling
        if scaling == "auto":  # the residual of a hidden season's seasonal forecast: its recent level
            scaling = "level" if lag and c.transform == "auto" and not impute else "window"
        self._state.update(lag=lag, log=log, seasons=seasons, scaling=scaling)
        self._state["shrink"] = self._resolve_shrink(lag, scaling)
        if lag and self._smooths(lag):
            main = season_length(c.freq)
            if c.h > main or lag % main:
                raise ValueError(f"transform: {c.transform if c.transform != 'auto' else AUTO_TRANSFORM} needs h <= "
                                 f"the main season ({main}) and season a multiple of it; got h={c.h}, season={lag}")
            self._state["decomposed"] = self._decomposes()
            self._state["smoothing"] = {
                str(uid): list(fit_smoothing(self._forward(y, uid), main, lag, c.h, c.resolved_context,
                                             c.resolved_level_steps))
                for uid, y in zip(ids, raw, strict=True)}
        if lag and not seasons:
            short = [uid for uid, y in zip(ids, raw, strict=True) if len(y) < 2 * lag + c.h]
            if lag < 2 or short:
                raise ValueError(f"transform: holt_winters needs a season >= 2 and every series at least two seasons "
                                 f"+ h = {2 * lag + c.h} points; got season={lag}"
                                 + (f", series {short[0]!r} is shorter" if short else ""))
            self._state["holt_winters"] = {str(uid): list(fit_holt_winters(self._forward(y, uid), lag, c.h))
                                           for uid, y in zip(ids, raw, strict=True)}
        length, span = self.length, self.span
        for uid, y in zip(ids, raw, strict=True):
            if len(y) < length + span:
                extra = f" + season {span}" if span else ""
                raise ValueError(f"df: series {uid!r} has {len(y)} points, fewer than context_length + h{extra} = "
                                 f"{c.resolved_context} + {c.h}{extra and ' + ' + str(span)} = {length + span}; "
                                 "shorten context_length")
        values = [self._residual(self._forward(y, uid), uid) for uid, y in zip(ids, raw, strict=True)]
        if span:
            stamps = [ds[span:] for ds in stamps]
            exogs = [x if x is None else x[span:] for x in exogs]
        sides = [self._side(ds, x) for ds, x in zip(stamps, exogs, strict=True)]
        if c.multivariate:
            if len({tuple(ds) for ds in stamps}) != 1:
                raise ValueError("df: multivariate=True needs every series on the same timestamps")
            blocks = [(np.stack(values), sides[0])]
        else:
            blocks = [(y[None], side) for y, side in zip(values, sides, strict=True)]
        windows, available, side_windows = [], [], []
        for y, side in blocks:
            starts = np.arange(0, y.shape[1] - length + 1)
            index = starts[:, None] + np.arange(length)[None]
            block = y[:, index].transpose(1, 0, 2)  # (windows, series, length)
            windows.append(np.nan_to_num(block))
            available.append(np.isfinite(block).astype(np.float32))
            side_windows.append(side[:, index].transpose(1, 0, 2))
        tensors = (torch.as_tensor(np.concatenate(windows), dtype=torch.float32),
                   torch.as_tensor(np.concatenate(available), dtype=torch.float32),
                   torch.as_tensor(np.concatenate(side_windows), dtype=torch.float32))
        num_series = len(values) if c.multivariate else 1
        series_stats = None
        if c.scaling == "series":
            self._state["series_stats"] = {uid: [float(np.nanmean(y)), float(np.nanstd(y)) or 1.0]
                                           for uid, y in zip(ids, values, strict=True)}
            if c.multivariate:
                series_stats = torch.tensor([self._state["series_stats"][uid] for uid in ids])
            else:  # one global model: each window carries its own series' statistics
                per_window = [np.repeat(np.array([[self._state["series_stats"][uid]]]), len(w), 0)
                              for uid, w in zip(ids, windows, strict=True)]
                tensors = (*tensors, torch.as_tensor(np.concatenate(per_window), dtype=torch.float32))
        torch.manual_seed(c.seed)
        network = self._network(num_series, tensors[2].shape[1])
        loss = WindowLoss(self._schedule(), self._prediction(), c.model == "csdi", c.h, stats=series_stats,
                          fourier_weight=0.1 if c.model == "diffusion_ts" else 0.0, trend=self.scaling == "trend",
                          level=self._level())
        steps = c.train_steps if c.epochs is None else epoch_train_steps(
            len(tensors[0]), c.batch_size, c.epochs, c.min_train_steps, c.train_steps)
        train = TrainConfig(steps=steps, batch_size=min(c.batch_size, len(tensors[0])), lr=c.lr,
                            weight_decay=1e-4, warmup_steps=min(100, steps // 10), lr_schedule="cosine",
                            ema_decay=0.999, checkpoint_dir=c.checkpoint_dir,
                            checkpoint_every=max(1, steps // 4), seed=c.seed, device=c.device,
                            progress=c.progress, log_every=max(1, min(100, steps)))
        trainer = Trainer(network, loss, tensors, train)
        trainer.fit()
        self.network = trainer.ema_model.eval()
        self._state.update({
            "ids": ids, "num_series": num_series, "num_covariates": int(tensors[2].shape[1]),
            "tails": {uid: self._tail(y).tolist() for uid, y in zip(ids, raw, strict=True)},
            "last_ds": {uid: str(ds[-1]) for uid, ds in zip(ids, stamps, strict=True)},
            "tail_exog": {uid: (x[-c.resolved_context:].tolist() if x is not None else None)
                          for uid, x in zip(ids, exogs, strict=True)},
            "train_steps_done": trainer.step,
        })
        return self

    # ------------------------------------------------------------------------------------------ sampling
    def _future_exog(self, X_df, uid: str, future: pd.DatetimeIndex) -> np.ndarray | None:
        exog = self._state["exog"]
        if not exog:
            return None
        if X_df is None:
            raise ValueError(f"X_df: the model was fitted with exogenous columns {exog}; give their future values")
        part = X_df[X_df["unique_id"].astype(str) == uid]
        missing = [col for col in exog if col not in X_df.columns]
        if missing:
            raise ValueError(f"X_df: missing exogenous columns {missing}")
        part = part.assign(ds=pd.to_datetime(part["ds"])).set_index("ds").reindex(future)
        if part[exog].isna().any().any():
            raise ValueError(f"X_df: series {uid!r} lacks exogenous values for {len(future)} future steps from "
                             f"{future[0]}")
        return part[exog].to_numpy(np.float64)

    def _sample(self, values: np.ndarray, cond: np.ndarray, side: np.ndarray, ids: list) -> np.ndarray:
        """values, cond: (windows, series, length); side: (windows, covariates, length) -> samples (windows,
        num_samples, series, length) in data units."""
        c = self.config
        stats = None
        if c.scaling == "series":
            table = self._state["series_stats"]
            stats = torch.tensor([table[uid] for uid in (self._state["ids"] if c.multivariate else ids)])
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(c.seed)
        try:
            kwargs = dict(num_samples=c.num_samples, solver=c.resolved_solver, steps=c.resolved_steps, grid=c.grid,
                          conditional=c.model == "csdi", guidance=c.guidance, zeta=c.zeta)
            v, m, s = (torch.as_tensor(a, dtype=torch.float32) for a in (values, cond, side))
            if stats is not None and not c.multivariate:
                stats = stats[:, None]  # (windows, 1, 2): each window its own series' statistics
            out = sample_windows(self.network, self._schedule(), self._prediction(), v, m, s, stats=stats,
                                 trend=self.scaling == "trend", level=self._level(), **kwargs)
        finally:
            torch.random.set_rng_state(generator_state)
        return out.numpy().astype(np.float64)

    def _forecast_windows(self, tails: dict, last_ds: dict, X_df, h: int, tail_exog: dict):
        c = self.config
        ids = list(tails)
        offset = check_freq(c.freq)
        values, cond, sides, futures = [], [], [], []
        for uid in ids:
            span = self.span
            history = self._tail(np.asarray(tails[uid], np.float64))
            if len(history) < c.resolved_context + span:
                raise ValueError(f"df: series {uid!r} has {len(history)} points, fewer than context_length = "
                                 f"{c.resolved_context}" + (f" + season {span}" if span else ""))
            history = self._residual(self._forward(history, uid), uid)[-c.resolved_context:]
            stamps = pd.date_range(end=pd.Timestamp(last_ds[uid]), periods=c.resolved_context, freq=offset)
            future = pd.date_range(stamps[-1] + offset, periods=c.h, freq=offset)
            exog = None
            if self._state["exog"]:
                future_exog = self._future_exog(X_df, uid, future)
                exog = np.concatenate([np.asarray(tail_exog[uid], np.float64)[-c.resolved_context:], future_exog])
            values.append(np.concatenate([history, np.zeros(c.h)]))
            cond.append(np.r_[np.ones(c.resolved_context), np.zeros(c.h)])
            sides.append(self._side(stamps.append(future), exog))
            futures.append(future[:h])
        return ids, np.stack(values), np.stack(cond), np.stack(sides), futures

    def _samples_from(self, tails, last_ds, X_df, h, tail_exog) -> tuple[list, list, np.ndarray]:
        ids, values, cond, sides, futures = self._forecast_windows(tails, last_ds, X_df, h, tail_exog)
        if self.config.multivariate:
            if list(ids) != list(self._state["ids"]):
                raise ValueError(f"df: a multivariate model forecasts its training series {self._state['ids']}")
            samples = self._sample(values[None], cond[None], sides[:1], ids)[0]  # (num_samples, series, length)
            samples = samples.transpose(1, 0, 2)
        else:
            samples = self._sample(values[:, None], cond[:, None], sides, ids)[:, :, 0]
        samples = self._shrunk(samples[:, :, -self.config.h:], values[:, :self.config.resolved_context])
        if self.lag:
            history = [self._forward(self._tail(np.asarray(tails[uid], np.float64)), uid) for uid in ids]
            samples = self._restore(history, samples, ids)
        if self.log:
            logs = [self._forward(np.asarray(tails[uid], np.float64)[-self.config.resolved_context:], uid)
                    for uid in ids]
            samples = self._exp(samples, np.stack(logs))
        return ids, futures, samples[:, :, :h]

    def _check_h(self, h) -> int:
        if h is None:
            return self.config.h
        h = _int(h, "h")
        if h > self.config.h:
            raise ValueError(f"h: {h} exceeds the horizon the model was trained for ({self.config.h})")
        return h

    def predict_samples(self, h: int | None = None, X_df: pd.DataFrame | None = None) -> np.ndarray:
        """Sample paths after the end of each training series: (series, num_samples, h), series in fit order."""
        self._check_fitted()
        h = self._check_h(h)
        s = self._state
        return self._samples_from(s["tails"], s["last_ds"], X_df, h, s["tail_exog"])[2]

    def predict(self, h: int | None = None, level=(80, 95), X_df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast frame: unique_id, ds, <name> (the sample median), <name>-lo-<l>, <name>-hi-<l> per level."""
        self._check_fitted()
        h, levels = self._check_h(h), _check_levels(level)
        s = self._state
        ids, futures, samples = self._samples_from(s["tails"], s["last_ds"], X_df, h, s["tail_exog"])
        return self._frame(ids, futures, samples, levels)

    def _frame(self, ids, futures, samples: np.ndarray, levels: list, extra: dict | None = None) -> pd.DataFrame:
        name = self.name
        parts = []
        for i, uid in enumerate(ids):
            part = {"unique_id": uid, "ds": futures[i], **{k: v[i] for k, v in (extra or {}).items()},
                    name: np.median(samples[i], 0)}
            parts.append(pd.DataFrame(part | self._interval_columns(samples[i], levels)))
        return pd.concat(parts, ignore_index=True)

    def _interval_columns(self, samples: np.ndarray, levels: list) -> dict:
        columns = {}
        if levels:
            lo, hi = level_quantiles(levels)
            q_lo, q_hi = np.quantile(samples, lo, axis=0), np.quantile(samples, hi, axis=0)
            for j, value in enumerate(levels):
                label = f"{value:g}"
                columns[f"{self.name}-lo-{label}"] = q_lo[j]
                columns[f"{self.name}-hi-{label}"] = q_hi[j]
        return columns

    # ------------------------------------------------------------------------------------------ evaluation
    def cross_validation(self, df: pd.DataFrame, h: int | None = None, n_windows: int = 1,
                         step_size: int | None = None, level=(80, 95), refit: bool = False) -> pd.DataFrame:
        """Rolling-origin evaluation in statsforecast's layout: unique_id, ds, cutoff, y, <name>, intervals.

        The last ``n_windows`` windows of ``h`` steps, ``step_size`` apart (default h), are held out. With
        ``refit=False`` the model is trained once on each series up to the first cutoff and every later window is
        forecast from the observed history up to its own cutoff (never trained on); ``refit=True`` retrains
        before every window on the data up to its cutoff.
        """
        h = self.config.h if h is None else _int(h, "h")
        if h != self.config.h:
            raise ValueError(f"h: cross_validation forecasts the configured horizon ({self.config.h}), got {h}")
        n_windows = _int(n_windows, "n_windows")
        step_size = h if step_size is None else _int(step_size, "step_size")
        levels = _check_levels(level)
        frame = check_frame(df, self.config.freq, allow_nan=False, exog=self._exog_columns(df))
        sizes = frame.groupby("unique_id", sort=False).size()
        test = h + (n_windows - 1) * step_size
        results = []
        for window in range(n_windows):
            back = test - window * step_size  # points after the cutoff
            position = frame.groupby("unique_id", sort=False).cumcount(ascending=False)
            history = frame[position >= back]
            if window == 0 or refit:
                lag, _, seasons = self._choose([y for y in history.groupby("unique_id", sort=False)["y"]
                                                .apply(lambda col: col.to_numpy(np.float64))])
                span = lag * seasons
                short = sizes[sizes - back < self.length + span]
                if len(short):
                    raise ValueError(f"df: series {short.index[0]!r} is too short for {n_windows} windows of h={h} "
                                     f"after a training part of at least context_length + h = {self.length}"
                                     + (f" + season {span}" if span else ""))
                self._fit(history.reset_index(drop=True))
            ids, values, stamps, exogs = self._series(history)
            tails = {uid: self._tail(y)
                     for uid, y in zip(ids, values, strict=True)}
            last = {uid: str(ds[-1]) for uid, ds in zip(ids, stamps, strict=True)}
            tail_exog = {uid: x for uid, x in zip(ids, exogs, strict=True)}
            X_df = frame if self._state["exog"] else None
            ids, futures, samples = self._samples_from(tails, last, X_df, h, tail_exog)
            truth = frame.set_index(["unique_id", "ds"])["y"]
            extra = {"cutoff": [np.repeat(pd.Timestamp(last[uid]), h) for uid in ids],
                     "y": [truth.loc[uid].reindex(futures[i]).to_numpy() for i, uid in enumerate(ids)]}
            results.append(self._frame(ids, futures, samples, levels, extra))
        return pd.concat(results, ignore_index=True).sort_values(["unique_id", "cutoff", "ds"]).reset_index(drop=True)

    def impute(self, df: pd.DataFrame, level=(80, 95)) -> pd.DataFrame:
        """Fill NaN in ``y``: returns the frame with ``y`` completed by the sample median, an ``imputed`` flag and
        <name>-lo/hi interval columns (equal to y on observed rows). An unfitted forecaster is first fitted on
        ``df`` itself (its NaN entries are left out of the loss)."""
        levels = _check_levels(level)
        if self.config.transform in ("seasonal_diff", "double_seasonal", "mstl", "holt_winters") or (self.network is not None and self.lag):
            raise ValueError("transform: impute works on models of the series itself; use transform='none' or "
                             "'auto' (which impute resolves to 'none')")
        frame = check_frame(df, self.config.freq, allow_nan=True, exog=self._exog_columns(df))
        if self.network is None:
            self._fit(frame, impute=True)
        if self.config.multivariate:
            raise ValueError("multivariate: impute works on univariate models; fit with multivariate=False")
        ids, values, stamps, exogs = self._series(frame)
        length = self.length
        out = []
        for uid, y, ds, x in zip(ids, values, stamps, exogs, strict=True):
            if len(y) < length:
                raise ValueError(f"df: series {uid!r} has {len(y)} points, fewer than context_length + h = {length}")
            median = y.copy()
            lo, hi = level_quantiles(levels) if levels else (np.array([]), np.array([]))
            bounds = {f"lo-{lv:g}": y.copy() for lv in levels} | {f"hi-{lv:g}": y.copy() for lv in levels}
            missing = np.isnan(y)
            starts = sorted({*range(0, len(y) - length + 1, length), len(y) - length})
            side = self._side(ds, x)
            for start in starts:
                part = slice(start, start + length)
                if not missing[part].any():
                    continue
                if missing[part].all():
                    raise ValueError(f"df: series {uid!r} has {length} consecutive NaN from {ds[start]}; nothing "
                                     "to condition on")
                samples = self._sample(self._forward(y[part], uid)[None, None],
                                       (~missing[part]).astype(np.float64)[None, None], side[:, part][None],
                                       [uid])[0, :, 0]
                if self.log:
                    samples = self._exp(samples[None], self._forward(y[part], uid)[None])[0]
                gap = np.where(missing[part])[0] + start
                median[gap] = np.median(samples[:, gap - start], 0)
                for j, lv in enumerate(levels):
                    bounds[f"lo-{lv:g}"][gap] = np.quantile(samples[:, gap - start], lo[j], 0)
                    bounds[f"hi-{lv:g}"][gap] = np.quantile(samples[:, gap - start], hi[j], 0)
            part = {"unique_id": uid, "ds": ds, "y": median, "imputed": missing}
            part |= {f"{self.name}-{k}": v for k, v in bounds.items()}
            out.append(pd.DataFrame(part))
        return pd.concat(out, ignore_index=True)

    def components(self, X_df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Diffusion-TS's decomposition of each series' last window (context + forecast median): a frame
        unique_id, ds, y (history, then the median forecast), trend, season, residual with
        trend + season + residual = the network's clean-data reconstruction, in data units."""
        self._check_fitted()
        if self.config.model != "diffusion_ts":
            raise ValueError(f"model: components() needs model='diffusion_ts', this forecaster is "
                             f"{self.config.model!r}")
        if self.config.multivariate:
            raise ValueError("multivariate: components() works on univariate models")
        if self.lag or self.log or self.scaling in ("trend", "level"):
            raise ValueError("transform: components() needs a model fitted without seasonal differencing or log "
                             "scale (transform='none', log=False) and scaling 'window' or 'series'")
        s, c = self._state, self.config
        ids, values, cond, sides, _ = self._forecast_windows(s["tails"], s["last_ds"], X_df, c.h, s["tail_exog"])
        samples = self.predict_samples(X_df=X_df)
        values[:, -c.h:] = np.median(samples, 1)
        from .diffusion import normalize

        v = torch.as_tensor(values[:, None], dtype=torch.float32)
        m = torch.as_tensor(cond[:, None], dtype=torch.float32)
        stats = None
        if c.scaling == "series":
            stats = torch.tensor([s["series_stats"][uid] for uid in ids])[:, None]
        x, loc, scale = normalize(v, m, stats)
        t = self._schedule().model_input(torch.tensor(self._schedule().t_min)).float()
        with torch.no_grad():
            parts = self.network.components(x, t, side=torch.as_tensor(sides) if sides.shape[1] else None)
        trend, season, residual = (p[:, 0].numpy().astype(np.float64) for p in parts)
        trend = trend * scale[:, 0].numpy() + loc[:, 0].numpy()
        season, residual = season * scale[:, 0].numpy(), residual * scale[:, 0].numpy()
        offset = check_freq(c.freq)
        frames = []
        for i, uid in enumerate(ids):
            ds = pd.date_range(end=pd.Timestamp(s["last_ds"][uid]), periods=c.resolved_context, freq=offset)
            ds = ds.append(pd.date_range(ds[-1] + offset, periods=c.h, freq=offset))
            frames.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": values[i], "trend": trend[i],
                                        "season": season[i], "residual": residual[i]}))
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------------------------------ persistence
    def save_pretrained(self, directory) -> Path:
        """Write the network (safetensors) and the forecaster's config and series tails (JSON) to ``directory``."""
        self._check_fitted()
        metadata = {"forecaster": asdict(self.config), "state": self._state}
        return save_pretrained(self.network, directory, dict(self.network.config), metadata=metadata)

    @classmethod
    def from_pretrained(cls, directory, *, device: str = "cpu") -> DiffusionForecaster:
        """Rebuild a forecaster saved by :meth:`save_pretrained`."""
        document = read_config(directory)
        options = dict(document["metadata"].get("forecaster") or {})
        if not options:
            raise ValueError(f"directory: {directory} holds no DiffusionForecaster metadata")
        options["device"] = device
        forecaster = cls(**options)
        network_cls = DiffusionTSNetwork if forecaster.config.model == "diffusion_ts" else CSDINetwork
        forecaster.network = load_pretrained(network_cls, directory, device=device)
        forecaster._state = document["metadata"]["state"]
        return forecaster
