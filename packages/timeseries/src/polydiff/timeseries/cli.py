"""``polydiff timeseries forecast | impute``: diffusion forecasts and gap filling for CSV/parquet files.

    polydiff timeseries forecast data.csv --h 12 --freq MS --level 80 95 --out forecast.csv [--plot fan.png]
    polydiff timeseries impute data.csv --out filled.csv            (--freq is inferred when not given)

The input is a long frame (unique_id, ds, y [, exogenous columns]) or a wide one (ds plus one column per series).
Outputs are written in the format their extension names (.csv, .parquet, .json). ``--save DIR`` keeps the trained
model (safetensors + JSON); an existing, non-empty model folder is replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _check_out(path: str, name: str = "out") -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".csv", ".parquet", ".json"):
        raise ValueError(f"{name}: unsupported extension {out.suffix or '(none)'!r}; use .csv, .parquet or .json")
    return out


def _infer_freq(frame, freq: str | None) -> str:
    """``freq`` as given, or pandas' inference from the first series' timestamps."""
    import pandas as pd

    if freq is not None:
        return freq
    first = frame[frame["unique_id"] == frame["unique_id"].iloc[0]]["ds"] if "unique_id" in frame else frame["ds"]
    inferred = pd.infer_freq(pd.DatetimeIndex(first)) if len(first) >= 3 else None
    if inferred is None:
        raise ValueError("freq: could not infer the frequency from the timestamps; pass --freq (e.g. h, D, MS)")
    return inferred


def _forecaster(args: argparse.Namespace, frame):
    from .model import DiffusionForecaster

    return DiffusionForecaster(model=args.model, h=args.h, freq=_infer_freq(frame, args.freq), context_length=args.context_length,
                               num_samples=args.num_samples, solver=args.solver, steps=args.steps, seed=args.seed,
                               train_steps=args.train_steps, progress=not args.quiet)


def _forecast(args: argparse.Namespace) -> int:
    from .data import read_frame, write_frame

    out = _check_out(args.out)
    if args.plot is not None and Path(args.plot).suffix.lower() != ".png":
        raise ValueError(f"plot: expected a .png path, got {args.plot!r}")
    if args.save is not None and Path(args.save).exists() and any(Path(args.save).iterdir()) and not args.force:
        raise ValueError(f"save: the model folder {args.save} exists and is not empty; pass --force to replace it")
    frame = read_frame(args.data)
    forecaster = _forecaster(args, frame).fit(frame)
    forecast = forecaster.predict(level=args.level)
    write_frame(forecast, out)
    if args.save is not None:
        forecaster.save_pretrained(args.save)
    if args.plot is not None:
        from .plots import fan_chart

        fan_chart(frame, forecast, forecaster.name, args.level, args.plot)
    print(f"wrote {len(forecast)} forecast rows ({forecast['unique_id'].nunique()} series, h={args.h}) to {out}")
    return 0


def _impute(args: argparse.Namespace) -> int:
    from .data import read_frame, write_frame

    out = _check_out(args.out)
    frame = read_frame(args.data)
    filled = _forecaster(args, frame).impute(frame, level=args.level)
    write_frame(filled, out)
    print(f"filled {int(filled['imputed'].sum())} missing values; wrote {len(filled)} rows to {out}")
    return 0


def _common(parser: argparse.ArgumentParser, h_default: int | None) -> None:
    parser.add_argument("data", help="CSV or parquet file: long (unique_id, ds, y) or wide (ds + one column per "
                                     "series)")
    parser.add_argument("--freq", default=None, help="pandas frequency of the series, e.g. h, 30min, D, MS, QS, YS "
                                                     "(default: inferred from the timestamps)")
    if h_default is None:
        parser.add_argument("--h", type=int, required=True, help="forecast horizon in steps")
    else:
        parser.add_argument("--h", type=int, default=h_default,
                            help=f"window horizon the model trains on (default {h_default})")
    parser.add_argument("--model", default="csdi", choices=("csdi", "tsdiff", "diffusion_ts"),
                        help="diffusion model (default csdi)")
    parser.add_argument("--context-length", type=int, default=None,
                        help="conditioning steps (default max(3 h, 3 seasons))")
    parser.add_argument("--level", type=float, nargs="+", default=[80, 95],
                        help="central interval levels in percent (default 80 95)")
    parser.add_argument("--num-samples", type=int, default=100, help="sample paths per series (default 100)")
    parser.add_argument("--solver", default=None, help="core solver name (default dpmpp_2m)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default 20)")
    parser.add_argument("--train-steps", type=int, default=2000, help="optimizer steps (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="training and sampling seed (default 0)")
    parser.add_argument("--out", required=True, help="output file: .csv, .parquet or .json")
    parser.add_argument("--force", action="store_true", help="replace an existing, non-empty --save model folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    """Add ``timeseries`` with its forecast / impute subcommands to the polydiff command line."""
    parser = subparsers.add_parser("timeseries", help="diffusion forecasting and imputation of time series")
    sub = parser.add_subparsers(dest="timeseries_command", required=True)
    forecast = sub.add_parser("forecast", help="fit on a file and forecast h steps past each series' end")
    _common(forecast, None)
    forecast.add_argument("--plot", default=None, help="write a fan chart of the forecast to this .png")
    forecast.add_argument("--save", default=None, help="also save the trained model to this folder")
    forecast.set_defaults(func=_forecast)
    impute = sub.add_parser("impute", help="fill the NaN values of y with the median of the samples and intervals")
    _common(impute, 12)
    impute.set_defaults(func=_impute)
