"""`polydiff tabular fit | sample | evaluate`: the held-out split by default, one-line errors (exit 2), the
format the extension names, --force, --solver/--steps/--seed, one labelled progress bar."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polydiff.core.cli import main


def frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return pd.DataFrame({"x": x, "k": rng.integers(0, 5, n), "c": rng.choice(["u", "v"], n),
                         "y": np.where(x > 0, "yes", "no")})


def read_csv(path):
    options = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(path, **options)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("polydiff: error: ") and "Traceback" not in err, err
    return lines[0]


FIT = ["--steps", "4", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "data.csv"
    frame().to_csv(data, index=False)
    assert main(["tabular", "fit", str(data), "--target", "y", "--out", str(folder / "model"), *FIT]) == 0
    return folder


def test_fit_keeps_a_held_out_split_next_to_the_model(fitted):
    model = fitted / "model"
    assert {"config.json", "model.safetensors", "train.csv", "test.csv", "split.json"} <= {p.name for p in
                                                                                         model.iterdir()}
    data, train, test = read_csv(fitted / "data.csv"), read_csv(model / "train.csv"), read_csv(model / "test.csv")
    split = json.loads((model / "split.json").read_text())
    assert len(train) + len(test) == len(data) and len(test) == 36 and split["test_rows"] == 36
    assert split["stratified"] and split["target"] == "y" and split["seed"] == 0
    # disjoint, and together the whole table
    assert not set(train["x"]) & set(test["x"])
    assert sorted(pd.concat([train, test])["x"]) == sorted(data["x"])
    # stratified: the class shares of the test split follow the data's
    assert abs((test["y"] == "yes").mean() - (data["y"] == "yes").mean()) < 0.05


def test_fit_refuses_a_non_empty_folder_without_force(fitted, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["tabular", "fit", str(fitted / "data.csv"), "--out", str(out), *FIT]
    assert main(argv) == 2
    assert "--force" in error_line(capsys)
    assert (out / "notes.txt").read_text() == "mine"
    assert main([*argv, "--force", "--test-size", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: --test-size 0" in err
    assert (out / "config.json").exists() and not (out / "notes.txt").exists()
    assert len(pd.read_csv(out / "test.csv")) == 0


@pytest.mark.parametrize("argv, names", [
    (["tabular", "fit", "missing.csv", "--out", "m"], "missing.csv"),
    (["tabular", "fit", "{data}", "--out", "m", "--target", "nope"], "--target"),
    (["tabular", "fit", "{data}", "--out", "m", "--categorical", "c,nope"], "--categorical"),
    (["tabular", "fit", "{data}", "--out", "m", "--test-size", "1.5"], "--test-size"),
    (["tabular", "fit", "{data}", "--out", "m", "--steps", "0"], "--steps"),
    (["tabular", "fit", "{bad}", "--out", "m"], ".xlsx"),
    (["tabular", "fit", "{empty}", "--out", "m"], "empty.csv"),
    (["tabular", "sample", "no-model", "-n", "5", "--out", "s.csv"], "no-model"),
    (["tabular", "sample", "{model}", "-n", "0", "--out", "s.csv"], "-n"),
    (["tabular", "sample", "{model}", "-n", "-3", "--out", "s.csv"], "-n"),
    (["tabular", "sample", "{model}", "-n", "5", "--out", "s.xlsx"], ".xlsx"),
    (["tabular", "sample", "{model}", "-n", "5", "--out", "s.csv", "--conditions", "{bad"], "--conditions"),
    (["tabular", "sample", "{model}", "-n", "5", "--out", "s.csv", "--conditions", "[1]"], "--conditions"),
    (["tabular", "sample", "{model}", "-n", "5", "--out", "s.csv", "--conditions", '{"y": "maybe"}'], "maybe"),
    (["tabular", "sample", "{model}", "-n", "5", "--out", "s.csv", "--solver", "ddim_inversion"], "solver"),
    (["tabular", "sample", "{model}", "-n", "5", "--out", "s.csv", "--solver", "nope"], "solver"),
    (["tabular", "evaluate", "{data}", "--train", "{data}"], "--test"),
    (["tabular", "evaluate", "{data}", "{data}"], "--test"),
    (["tabular", "evaluate", "{data}", "--model", "{model}", "--seeds", "0"], "--seeds"),
    (["tabular", "evaluate", "{data}", "--model", "{model}", "--target", "nope"], "--target"),
    (["tabular", "evaluate", "{data}", "--model", "{data}"], "split.json"),
])
def test_user_errors_are_one_line_exit_2(argv, names, fitted, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.xlsx").write_text("x")
    paths = {"data": str(fitted / "data.csv"), "model": str(fitted / "model"), "bad": "bad.xlsx",
             "empty": "empty.csv"}
    argv = [a.format(**paths) if a.startswith("{") and a.endswith("}") and a[1:-1] in paths else a for a in argv]
    assert main(argv) == 2
    assert names in error_line(capsys)
    assert not (tmp_path / "s.xlsx").exists() and not (tmp_path / "m").exists()


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_sample_writes_the_format_its_extension_names(suffix, fitted, tmp_path, capsys):
    pytest.importorskip("pyarrow") if suffix == ".parquet" else None
    out = tmp_path / f"s{suffix}"
    assert main(["tabular", "sample", str(fitted / "model"), "-n", "7", "--out", str(out), "--steps", "3",
                 "--quiet"]) == 0
    if suffix in (".csv", ".tsv"):
        back = pd.read_csv(out, sep="\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        back = pd.read_parquet(out)
    else:
        text = out.read_text()
        rows = [json.loads(line) for line in text.splitlines()] if suffix == ".jsonl" else json.loads(text)
        back = pd.DataFrame(rows)
    assert list(back.columns) == ["x", "k", "c", "y"] and len(back) == 7
    assert "wrote 7 rows" in capsys.readouterr().err


def test_sample_refuses_an_existing_file_unless_force_and_replaces_it_whole(fitted, tmp_path, capsys, monkeypatch):
    """Regression: `sample --out FILE` overwrote an existing file without a word."""
    out = tmp_path / "synth.csv"
    out.write_text("mine\n")
    def sample_to(path):
        return ["tabular", "sample", str(fitted / "model"), "-n", "5", "--out", str(path), "--steps", "3", "--quiet"]

    argv = sample_to(out)
    assert main(argv) == 2
    line = error_line(capsys)
    assert "--out" in line and "exists" in line and "--force" in line
    assert out.read_text() == "mine\n"
    (tmp_path / "link.csv").symlink_to(tmp_path / "nowhere.csv")  # a dangling link is refused too
    assert main(sample_to(tmp_path / "link.csv")) == 2
    assert "exists" in error_line(capsys) and not (tmp_path / "nowhere.csv").exists()
    (tmp_path / "link.csv").unlink()

    def half_written(self, path, *args, **kwargs):  # a write that dies halfway (a full disk)
        Path(path).write_text("x,k\n0.1")
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_csv", half_written)
        assert main([*argv, "--force"]) == 2
    assert "No space left" in error_line(capsys)
    assert out.read_text() == "mine\n" and [p.name for p in tmp_path.iterdir()] == ["synth.csv"]
    assert main([*argv, "--force"]) == 0
    assert len(read_csv(out)) == 5 and [p.name for p in tmp_path.iterdir()] == ["synth.csv"]
    assert "wrote 5 rows" in capsys.readouterr().err


def test_parquet_without_pyarrow_names_the_install(fitted, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert main(["tabular", "sample", str(fitted / "model"), "-n", "5", "--out", str(tmp_path / "s.parquet")]) == 2
    line = error_line(capsys)
    assert "pip install pyarrow" in line and "polydiff-tabular[parquet]" in line


def test_sample_to_stdout_with_solver_steps_and_seed(fitted, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["tabular", "sample", str(fitted / "model"), "-n", "6", "--out", "-", "--solver", "dpmpp_2m",
            "--steps", "4", "--seed", "3", "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert not (tmp_path / "-").exists()
    first = captured.out
    assert first.splitlines()[0] == "x,k,c,y" and len(first.splitlines()) == 7
    assert "solver dpmpp_2m, 4 steps, seed 3" in captured.err
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # same seed, same rows
    assert main([*argv, "--conditions", '{"y": "yes"}']) == 0
    assert set(pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))["y"]) == {"yes"}


def test_one_labelled_progress_bar_for_sampling(fitted, tmp_path, capsys, monkeypatch):
    import polydiff.core.progress as progress

    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert main(["tabular", "sample", str(fitted / "model"), "-n", "300", "--out", str(tmp_path / "s.csv"),
                 "--steps", "2", "--batch-size", "128"]) == 0
    err = capsys.readouterr().err
    assert "sampling 300 rows" in err
    assert "sampling:" not in err  # no per-batch bar of the sampler's own
    assert "0/6" in err  # one bar over 3 batches x 2 steps


def test_no_progress_bar_when_stderr_is_not_a_terminal(fitted, tmp_path, capsys, monkeypatch):
    import polydiff.core.progress as progress

    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    assert main(["tabular", "sample", str(fitted / "model"), "-n", "300", "--out", str(tmp_path / "s.csv"),
                 "--steps", "2", "--batch-size", "128"]) == 0
    assert "sampling 300 rows" not in capsys.readouterr().err


def test_evaluate_takes_train_and_test_and_says_which_way_is_better(fitted, tmp_path, capsys):
    synth = tmp_path / "synth.csv"
    assert main(["tabular", "sample", str(fitted / "model"), "-n", "80", "--out", str(synth), "--steps", "3",
                 "--quiet"]) == 0
    capsys.readouterr()
    model = fitted / "model"
    assert main(["tabular", "evaluate", str(synth), "--model", str(model), "--seeds", "2", "--iterations",
                 "10"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err  # the split fit kept is held out
    out = captured.out
    for word in ("ml_efficiency", "detection_auc", "closer_to_train_share", "0.5", "better"):
        assert word in out
    assert main(["tabular", "evaluate", str(synth), "--train", str(model / "train.csv"), "--test",
                 str(model / "test.csv"), "--target", "y", "--seeds", "1", "--iterations", "10", "--json",
                 "--no-reference"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"ml_efficiency", "fidelity_ks_tvd", "dcr_median", "detection_auc"} <= set(metrics)


def test_evaluate_warns_when_test_rows_were_trained_on(fitted, tmp_path, capsys):
    synth = tmp_path / "synth.csv"
    assert main(["tabular", "sample", str(fitted / "model"), "-n", "60", "--out", str(synth), "--steps", "3",
                 "--quiet"]) == 0
    capsys.readouterr()
    # the old README flow: test rows taken from the table the model trained on
    assert main(["tabular", "evaluate", str(synth), "--train", str(fitted / "model" / "train.csv"), "--test",
                 str(fitted / "model" / "train.csv"), "--target", "y", "--seeds", "1", "--iterations", "5",
                 "--no-reference"]) == 0
    err = capsys.readouterr().err
    assert "polydiff: warning:" in err and "identical" in err
