"""The forecasters users would otherwise pick, behind one rolling-origin interface.

Every peer returns a :class:`Forecasts` for the same ``n_windows`` non-overlapping windows of ``h`` steps at the
end of one series: the truth, the 19 quantiles 0.05..0.95 and the 80 % / 95 % intervals, plus wall-clock seconds.

    statsforecast  SeasonalNaive, AutoETS, AutoARIMA, MSTL(seasons) + AutoETS / AutoARIMA trend (refit at every cutoff, as
                   statsforecast's cross_validation does; intervals from the models' own error distributions)
    gluonts.torch  DeepAR (Salinas et al., 2020): trained once on the series up to the first cutoff, every window
                   forecast with 100 sample paths from the history up to its cutoff
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from polydiff.core.optional import require

from .metrics import QUANTILE_LEVELS

__all__ = ["Forecasts", "statsforecast_peers", "deepar", "PEER_LEVELS", "GLUONTS_FREQ"]

#: central interval levels whose bounds give the 19 quantiles (with the median) and the 80 / 95 % intervals
PEER_LEVELS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
_EXTRA = "polydiff-timeseries[bench]"


@dataclass
class Forecasts:
    """Rolling-origin forecasts of one method on one series: arrays over (windows * h) points."""

    y: np.ndarray
    quantiles: np.ndarray  # (19, points) at QUANTILE_LEVELS
    lo: dict = field(default_factory=dict)  # level -> (points,)
    hi: dict = field(default_factory=dict)
    cutoffs: np.ndarray | None = None
    ds: np.ndarray | None = None
    fit_seconds: float = float("nan")
    predict_seconds: float = float("nan")

    @property
    def median(self) -> np.ndarray:
        return self.quantiles[len(QUANTILE_LEVELS) // 2]


def from_interval_frame(frame: pd.DataFrame, name: str, point: str | None = None) -> Forecasts:
    """Forecasts from a statsforecast-style frame with ``name``, ``name-lo-l`` / ``name-hi-l`` for PEER_LEVELS."""
    lower = [frame[f"{name}-lo-{level}"].to_numpy() for level in PEER_LEVELS[8::-1]]
    upper = [frame[f"{name}-hi-{level}"].to_numpy() for level in PEER_LEVELS[:9]]
    quantiles = np.stack([*lower, frame[point or name].to_numpy(), *upper]).astype(np.float64)
    quantiles = np.sort(quantiles, axis=0)  # a method's bands may cross by rounding; keep them monotone
    return Forecasts(y=frame["y"].to_numpy(np.float64), quantiles=quantiles,
                     lo={lv: frame[f"{name}-lo-{lv}"].to_numpy(np.float64) for lv in (80, 95)},
                     hi={lv: frame[f"{name}-hi-{lv}"].to_numpy(np.float64) for lv in (80, 95)},
                     cutoffs=frame["cutoff"].to_numpy(), ds=frame["ds"].to_numpy())


def _statsforecast():
    require("statsforecast", extra=_EXTRA, purpose="the statsforecast peers")
    from statsforecast import StatsForecast, models

    return StatsForecast, models


def statsforecast_peers(df: pd.DataFrame, freq: str, h: int, n_windows: int, seasons: tuple[int, ...],
                        methods=("SeasonalNaive", "AutoETS", "AutoARIMA")) -> dict[str, Forecasts]:
    """Run each statsforecast method through ``StatsForecast.cross_validation`` (refit every window).
    With several seasons, SeasonalNaive uses the longest, and AutoETS and AutoARIMA become MSTL(seasons) with an
    AutoETS / a non-seasonal AutoARIMA trend (AutoETS ignores seasons > 24; a seasonal AutoARIMA at 48 on
    thousands of points costs minutes per refit)."""
    StatsForecast, models = _statsforecast()
    short, long = min(seasons), max(seasons)
    built = {}
    for method in methods:
        if method == "SeasonalNaive":
            built[method] = models.SeasonalNaive(season_length=long, alias="SeasonalNaive")
        elif method == "AutoETS" and len(seasons) > 1:
            built["MSTL+AutoETS"] = models.MSTL(season_length=list(seasons),
                                                trend_forecaster=models.AutoETS(model="ZZN"), alias="MSTL+AutoETS")
        elif method == "AutoETS":
            built[method] = models.AutoETS(season_length=short, alias="AutoETS")
        elif method == "AutoARIMA" and len(seasons) > 1:
            built["MSTL+AutoARIMA"] = models.MSTL(season_length=list(seasons), trend_forecaster=models.AutoARIMA(),
                                                  alias="MSTL+AutoARIMA")
        elif method == "AutoARIMA":
            built[method] = models.AutoARIMA(season_length=short, alias="AutoARIMA")
        else:
            raise ValueError(f"methods: unknown statsforecast method {method!r}")
    results = {}
    for name, model in built.items():
        start = time.perf_counter()
        frame = StatsForecast(models=[model], freq=freq, n_jobs=1).cross_validation(
            df=df[["unique_id", "ds", "y"]], h=h, n_windows=n_windows, step_size=h, level=PEER_LEVELS)
        seconds = time.perf_counter() - start
        frame = frame.reset_index() if "unique_id" not in frame.columns else frame
        result = from_interval_frame(frame, name)
        result.fit_seconds = seconds  # statsforecast fits and predicts in one call; both are counted here
        results[name] = result
    return results


def _scratch() -> str:
    """A temporary folder for lightning's checkpoint callback (GluonTS adds one; nothing is kept)."""
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="polydiff-deepar-")
    atexit.register(shutil.rmtree, path, True)
    return path


GLUONTS_FREQ = {"MS": "M", "QS": "Q", "YS": "Y", "30min": "30min", "h": "h", "D": "D", "W": "W"}


def deepar(df: pd.DataFrame, freq: str, h: int, n_windows: int, *, seed: int = 0, max_epochs: int = 20,
           num_batches_per_epoch: int = 50, context_length: int | None = None, num_samples: int = 100) -> Forecasts:
    """GluonTS's torch DeepAR on one series: trained once on the data before the first test window, then each
    window forecast from the history up to its cutoff (the same protocol as the diffusion models)."""
    require("gluonts.torch", extra=_EXTRA, purpose="the DeepAR peer")
    lightning = require("lightning", extra=_EXTRA, purpose="the DeepAR peer")
    import logging

    import torch
    from gluonts.dataset.common import ListDataset
    from gluonts.torch.model.deepar import DeepAREstimator

    for noisy in ("lightning", "lightning.pytorch", "pytorch_lightning", "gluonts"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    y = df["y"].to_numpy(np.float64)
    ds = pd.DatetimeIndex(df["ds"])
    gluon_freq = GLUONTS_FREQ.get(freq, freq)
    start = pd.Period(ds[0], freq=gluon_freq)
    test = h * n_windows
    lightning.seed_everything(seed, verbose=False)
    torch.manual_seed(seed)
    estimator = DeepAREstimator(
        freq=gluon_freq, prediction_length=h, context_length=context_length, num_layers=2, hidden_size=40,
        batch_size=32, num_batches_per_epoch=num_batches_per_epoch,
        trainer_kwargs={"max_epochs": max_epochs, "accelerator": "cpu", "enable_progress_bar": False,
                        "enable_model_summary": False, "logger": False, "default_root_dir": _scratch()})
    began = time.perf_counter()
    predictor = estimator.train(ListDataset([{"start": start, "target": y[:-test]}], freq=gluon_freq))
    fit_seconds = time.perf_counter() - began
    began = time.perf_counter()
    histories = [{"start": start, "target": y[:len(y) - test + w * h]} for w in range(n_windows)]
    samples = [f.samples[:num_samples] for f in predictor.predict(ListDataset(histories, freq=gluon_freq),
                                                                   num_samples=num_samples)]
    predict_seconds = time.perf_counter() - began
    paths = np.concatenate(samples, 1)  # (num_samples, windows * h)
    quantiles = np.quantile(paths, QUANTILE_LEVELS, axis=0)
    cutoffs = np.repeat([ds[len(y) - test + w * h - 1] for w in range(n_windows)], h)
    return Forecasts(y=y[-test:], quantiles=quantiles,
                     lo={80: np.quantile(paths, 0.1, 0), 95: np.quantile(paths, 0.025, 0)},
                     hi={80: np.quantile(paths, 0.9, 0), 95: np.quantile(paths, 0.975, 0)},
                     cutoffs=cutoffs, ds=ds[-test:].to_numpy(), fit_seconds=fit_seconds,
                     predict_seconds=predict_seconds)
