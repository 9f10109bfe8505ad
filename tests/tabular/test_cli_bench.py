"""The command line (fit -> sample -> evaluate on CSV files), SMOTENC as a generator, and the quick bench."""

import json

import numpy as np
import pandas as pd
import pytest

from polydiff.core.cli import main
from polydiff.tabular.peers import make_peer


def frame(n=150, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return pd.DataFrame({"x": x, "k": rng.integers(0, 5, n), "c": rng.choice(["u", "v"], n),
                         "y": np.where(x > 0, "yes", "no")})


def test_cli_fit_sample_evaluate(tmp_path, capsys):
    data = tmp_path / "data.csv"
    frame().to_csv(data, index=False)
    assert main(["tabular", "fit", str(data), "--target", "y", "--out", str(tmp_path / "model"), "--steps", "10",
                 "--batch-size", "64", "--quiet"]) == 0
    assert main(["tabular", "sample", str(tmp_path / "model"), "-n", "80", "--out", str(tmp_path / "synth.csv"),
                 "--seed", "1", "--quiet", "--steps", "5"]) == 0
    synthetic = pd.read_csv(tmp_path / "synth.csv")
    assert list(synthetic.columns) == ["x", "k", "c", "y"] and len(synthetic) == 80
    capsys.readouterr()
    assert main(["tabular", "evaluate", str(data), str(tmp_path / "synth.csv"), "--target", "y", "--seeds", "1",
                 "--iterations", "10"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"ml_efficiency", "fidelity_ks_tvd", "dcr_median", "detection_auc"} <= set(metrics)


def test_smotenc_generator_interpolates_within_classes():
    df = frame()
    out = make_peer("SMOTENC", seed=0).fit(df, "y").sample(100)
    assert len(out) == 100 and list(out.columns) == list(df.columns) and (out.dtypes == df.dtypes).all()
    assert out["x"].between(df["x"].min(), df["x"].max()).all()
    # x > 0 <=> "yes" in the data; SMOTE interpolates between same-class rows, so the rule still holds
    assert ((out["x"] > 0) == (out["y"] == "yes")).all()


@pytest.mark.slow
def test_quick_bench_writes_the_report(tmp_path):
    from polydiff.tabular.bench import run

    document = run(tmp_path, quick=True, seed=0, argv=["--datasets", "penguins"])
    methods = {row["method"] for row in document["rows"]}
    assert methods == {"real", "TabDDPM", "SMOTENC", "GaussianCopula", "CTGAN", "TVAE"}
    assert (tmp_path / "tabular.json").exists() and (tmp_path / "tabular.md").exists()
    for row in document["rows"]:
        assert {"task", "method", "peer", "fidelity_ks_tvd", "dcr_median"} <= set(row)
