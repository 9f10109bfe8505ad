"""Fan charts: history, the forecast median and its central intervals (matplotlib, from the [bench] extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["fan_chart"]


def _pyplot():
    from polydiff.core.optional import require

    matplotlib = require("matplotlib", extra="polydiff-timeseries[bench]", purpose="fan charts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fan_chart(history: pd.DataFrame, forecast: pd.DataFrame, name: str, levels, path, *, last: int = 120,
              truth: pd.DataFrame | None = None, title: str | None = None) -> Path:
    """One panel per series (at most 4): the last ``last`` history points, the ``name`` median and its
    intervals from ``forecast`` (columns name-lo-l / name-hi-l), and the truth when given. Writes a PNG."""
    plt = _pyplot()
    ids = list(dict.fromkeys(forecast["unique_id"]))[:4]
    fig, axes = plt.subplots(len(ids), 1, figsize=(8, 2.6 * len(ids)), squeeze=False)
    for axis, uid in zip(axes[:, 0], ids, strict=True):
        past = history[history["unique_id"].astype(str) == str(uid)].tail(last)
        axis.plot(past["ds"], past["y"], color="black", lw=1, label="history")
        part = forecast[forecast["unique_id"] == uid]
        for level in sorted(levels, reverse=True):
            label = f"{level:g}"
            alpha = 0.2 + 0.3 * (1 - level / 100)
            for _, group in part.groupby("cutoff") if "cutoff" in part else [(None, part)]:
                axis.fill_between(group["ds"], group[f"{name}-lo-{label}"], group[f"{name}-hi-{label}"],
                                  color="tab:blue", alpha=alpha, lw=0)
        for _, group in part.groupby("cutoff") if "cutoff" in part else [(None, part)]:
            axis.plot(group["ds"], group[name], color="tab:blue", lw=1.2)
        if truth is not None:
            real = truth[truth["unique_id"].astype(str) == str(uid)]
            axis.plot(real["ds"], real["y"], color="black", lw=1)
        axis.set_title(title or str(uid), fontsize=9)
        axis.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=72)
    plt.close(fig)
    tmp.replace(path)
    return path


def quantile_columns(samples: np.ndarray, name: str, levels) -> dict:
    """name, name-lo-l, name-hi-l columns from samples (num_samples, points)."""
    columns = {name: np.median(samples, 0)}
    for level in levels:
        columns[f"{name}-lo-{level:g}"] = np.quantile(samples, (1 - level / 100) / 2, 0)
        columns[f"{name}-hi-{level:g}"] = np.quantile(samples, (1 + level / 100) / 2, 0)
    return columns
