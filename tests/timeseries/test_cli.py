"""The polydiff timeseries command line: forecast and impute on files, overwrite refusal, one-line errors."""

import numpy as np
import pandas as pd
import pytest

from polydiff.core.cli import main

FAST = ["--train-steps", "5", "--num-samples", "4", "--steps", "2", "--context-length", "6", "--quiet"]


@pytest.fixture()
def data(tmp_path):
    ds = pd.date_range("2001-01-01", periods=40, freq="MS")
    frame = pd.DataFrame({"unique_id": "s", "ds": ds, "y": 10 + np.sin(np.arange(40.0))})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def test_forecast_writes_the_frame_and_keeps_a_saved_model(data, tmp_path, capsys):
    out = tmp_path / "forecast.csv"
    assert main(["timeseries", "forecast", str(data), "--h", "3", "--freq", "MS", "--out", str(out), *FAST,
                 "--plot", str(tmp_path / "fan.png")]) == 0
    forecast = pd.read_csv(out)
    assert list(forecast.columns) == ["unique_id", "ds", "CSDI", "CSDI-lo-80", "CSDI-hi-80", "CSDI-lo-95",
                                      "CSDI-hi-95"]
    assert len(forecast) == 3 and (tmp_path / "fan.png").stat().st_size > 0
    model = tmp_path / "model"
    args = ["timeseries", "forecast", str(data), "--h", "3", "--freq", "MS", "--out", str(out), *FAST]
    assert main([*args, "--save", str(model)]) == 0  # the output file is written as asked, again
    assert main([*args, "--save", str(model)]) == 2  # a saved model is never replaced silently
    assert "polydiff: error: save: " in capsys.readouterr().err
    assert main([*args, "--save", str(model), "--force"]) == 0


def test_impute_fills_gaps(data, tmp_path):
    frame = pd.read_csv(data)
    frame.loc[[10, 11], "y"] = np.nan
    frame.to_csv(data, index=False)
    out = tmp_path / "filled.json"
    assert main(["timeseries", "impute", str(data), "--h", "3", "--out", str(out), *FAST]) == 0  # freq inferred
    filled = pd.read_json(out)
    assert filled["y"].notna().all() and filled["imputed"].sum() == 2


@pytest.mark.parametrize("args, name", [
    (["--out", "x.txt"], "out"),
    (["--out", "x.csv", "--plot", "fan.jpg"], "plot"),
])
def test_bad_outputs_are_refused(data, tmp_path, capsys, args, name):
    args = [a if not a.startswith(("x.", "fan.")) else str(tmp_path / a) for a in args]
    assert main(["timeseries", "forecast", str(data), "--h", "3", "--freq", "MS", *args, *FAST]) == 2
    assert f"polydiff: error: {name}: " in capsys.readouterr().err
