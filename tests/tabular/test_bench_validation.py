"""The bench's validation mode (settings chosen on 20 % of the training part, never on the test split) and its
--budget overrides."""

import numpy as np
import pandas as pd
import pytest

from polydiff.core.cli import main
from polydiff.tabular import bench
from polydiff.tabular.data import TableTask, split


def task(n=200, kind="binary"):
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b"], n, p=[0.8, 0.2]) if kind == "binary" else rng.standard_normal(n)
    return TableTask("t", pd.DataFrame({"x": rng.standard_normal(n), "y": y}), "y", kind)


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_the_validation_split_holds_only_training_rows(kind):
    table = task(kind=kind)
    train, test = split(table, 0.3, 0)
    fit, validation = bench.validation_split(table, train, 0)
    assert len(fit) + len(validation) == len(train) and len(validation) == round(0.2 * len(train))
    key = lambda frame: set(map(tuple, frame.to_numpy().tolist()))  # noqa: E731
    assert key(fit) | key(validation) == key(train) and not (key(fit) | key(validation)) & key(test)
    if kind == "binary":  # stratified like the benchmark's own split
        assert abs((validation["y"] == "b").mean() - (train["y"] == "b").mean()) < 0.03


def test_budget_overrides_parse_and_refuse_unknown_keys():
    assert bench._budget_overrides(["TabSyn_steps=4000", "TabDDPM_steps=3000"]) == {"TabSyn_steps": 4000,
                                                                                    "TabDDPM_steps": 3000}
    for item, words in [("TabSyn_step=4000", "KEY one of"), ("TabSyn_steps", "KEY one of"),
                        ("catboost_iterations=10", "KEY one of"), ("TabSyn_steps=0", "positive integer"),
                        ("TabSyn_steps=four", "positive integer")]:
        with pytest.raises(ValueError, match="--budget") as error:
            bench._budget_overrides([item])
        assert words in str(error.value)


def test_a_bad_budget_is_one_line(tmp_path, capsys):
    assert main(["bench", "tabular", "--quick", "--out", str(tmp_path), "--", "--budget", "GAN_epochs=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polydiff: error:") and "--budget" in err[0]


def test_validation_runs_are_cached_apart_from_the_benchmark(tmp_path, monkeypatch):
    pytest.importorskip("palmerpenguins")
    pytest.importorskip("catboost")
    seen = []

    def fake(task, train, test, method, budget, seed, train_seeds, isolated=False):
        seen.append((len(train), len(test), budget["TabSyn_steps"]))
        return {"ml_efficiency": 0.9, "fidelity_ks_tvd": 0.1, "dcr_median": 0.1, "fit_seconds": 1.0}

    monkeypatch.setattr(bench, "_run_seeds", fake)
    document = bench.run(tmp_path, quick=True, argv=["--datasets", "penguins", "--methods", "real,TabSyn",
                                                     "--validation", "--budget", "TabSyn_steps=7"])
    full = len(split(bench.load_dataset("penguins", quick=True), 0.3, 0)[0])
    assert seen == [(full - round(0.2 * full), round(0.2 * full), 7)] * 2
    assert sorted(p.name for p in (tmp_path / "tabular-runs").iterdir()) == [
        "quick-validation-penguins-TabSyn.json", "quick-validation-penguins-real.json"]
    assert document["validation"] is True and "(validation split)" in (tmp_path / "tabular.md").read_text()
    assert any("TabSyn_steps 7" in note for note in document["notes"])
