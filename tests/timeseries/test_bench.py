"""Bench plumbing without training: metrics of a known forecast, the Goals verdicts, option parsing."""

import numpy as np
import pandas as pd
import pytest

from polydiff.timeseries import bench
from polydiff.timeseries.data import DatasetInfo
from polydiff.timeseries.metrics import QUANTILE_LEVELS
from polydiff.timeseries.peers import Forecasts

INFO = DatasetInfo("MS", 2, (2,), "test")


def test_metrics_of_a_perfect_forecast():
    y = np.arange(1.0, 21.0)
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2000", periods=20, freq="MS"), "y": y})
    truth = y[-10:]
    result = Forecasts(y=truth, quantiles=np.repeat(truth[None], len(QUANTILE_LEVELS), 0),
                       lo={80: truth - 1, 95: truth - 2}, hi={80: truth + 1, 95: truth + 2})
    metrics = bench._metrics(result, df, INFO)
    assert metrics["wql"] == 0 and metrics["mase"] == 0 and metrics["crps"] == 0
    assert metrics["coverage_80"] == 1 and metrics["coverage_95"] == 1


def row(task, method, peer, wql, cov80=0.8, cov95=0.95, val_wql=None):
    out = {"task": task, "method": method, "peer": peer, "wql": wql, "coverage_80": cov80, "coverage_95": cov95}
    return out if val_wql is None else {**out, "val_wql": val_wql}


def test_goals_verdicts():
    rows = []
    for task, ours, peer in (("co2", 0.1, 0.2), ("airline", 0.1, 0.2), ("sunspots", 0.1, 0.2), ("taylor", 0.3, 0.2)):
        rows += [row(task, "CSDI", False, ours, 0.78, 0.93, val_wql=0.1), row(task, "AutoARIMA", True, peer)]
    goals = bench._goals(rows, False, 10.0, 0)
    best = [g for g in goals if g["goal"].startswith("polydiff's best model per series")]
    assert [g["met"] for g in best] == [True, True] and best[0]["detail"].startswith("3/4")
    assert all(g["source"] == bench.GOALS_SOURCE for g in goals)
    rows[-2]["wql"] = rows[-4]["wql"] = 0.5  # now loses on sunspots and taylor
    goals = bench._goals(rows, False, 10.0, 0)
    assert [g["met"] for g in goals if g["goal"].startswith("polydiff's best model")][0] is False
    assert [g["met"] for g in goals if g["goal"].startswith("`--quick`")] == [None]  # a full run cannot tell
    quick = bench._goals(rows, True, 200.0, 0)
    assert [g["met"] for g in quick if g["goal"].startswith("`--quick`")] == [False]
    assert [g["met"] for g in bench._goals(rows, True, 100.0, 0) if g["goal"].startswith("`--quick`")] == [True]


def test_best_model_is_chosen_by_validation_not_by_test():
    rows = []
    for task in bench.SERIES:
        rows += [row(task, "A", False, 0.1, val_wql=0.3),  # better on test, worse on validation
                 row(task, "B", False, 0.3, val_wql=0.2), row(task, "AutoARIMA", True, 0.2)]
    goal = bench._goals(rows, False, 10.0, 0)[0]
    assert "co2: B" in goal["goal"] and goal["detail"].startswith("0/4") and goal["met"] is False


def test_options_are_checked():
    with pytest.raises(ValueError, match="^--series"):
        bench._parse(["--series", "nile"])
    with pytest.raises(ValueError, match="^--methods"):
        bench._parse(["--methods", "Prophet"])
    assert bench._parse(["--", "--series", "co2"]).series == ["co2"]


def test_csdi_budget_follows_the_amount_of_training_data():
    from polydiff.timeseries.data import DATASETS

    budget = bench.budgets(False)
    windows = {name: bench.training_windows(DATASETS[name], points)
               for name, points in (("co2", 526), ("airline", 144), ("sunspots", 309), ("taylor", 4032))}
    assert windows == {"co2": 419, "airline": 37, "sunspots": 211, "taylor": 3601}
    steps = {name: bench._series_budget(budget, name, w)["train_steps"] for name, w in windows.items()}
    # 500 passes: airline's 37 windows fit one batch (500 steps); the others reach the ceiling (taylor's CPU cap)
    assert steps == {"co2": 1500, "airline": 500, "sunspots": 1500, "taylor": 600}
    key = bench._cache_key("CSDI", bench._series_budget(budget, "airline", 37), False, 0, 144)
    assert key["budget"]["train_steps"] == 500 and "csdi_epochs" not in key["budget"]
    assert bench._cache_key("DeepAR", bench._series_budget(budget, "airline", 37), False, 0, 144) == \
        bench._cache_key("DeepAR", budget, False, 0, 144)
    assert "500 passes over its training windows" in bench._preamble(budget, False, [])


def test_model_scale_of_the_bench_series():
    """The automatic rules on the data before the first test window: airline (multiplicative seasonality) on the
    log scale, taylor's weekly season (336 > the 144-step context) removed by the residual of the mean of double
    seasonal smoothing's and the MSTL-style decomposition's seasonal references, scaled around its recent level; co2 and sunspots as is, so their cache keys keep the form they had
    before the rules."""
    from polydiff.timeseries.data import DATASETS, load_dataset

    scales = {name: bench.model_scale(DATASETS[name], load_dataset(name)) for name in bench.SERIES}
    assert scales == {"co2": {"lag": 0, "log": False}, "airline": {"lag": 0, "log": True},
                      "sunspots": {"lag": 0, "log": False},
                      "taylor": {"lag": 336, "log": False, "transform": "mstl", "scaling": "level",
                                 "shrink": 0.25}}
    budget = bench.budgets(False)
    assert "scale" not in bench._cache_key("CSDI", budget, False, 0, 526, scales["co2"])["budget"]
    assert bench._cache_key("CSDI", budget, False, 0, 144, scales["airline"])["budget"]["scale"] == scales["airline"]
    assert "scale" not in bench._cache_key("TSDiff", budget, False, 0, 144, scales["airline"])["budget"]
