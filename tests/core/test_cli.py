"""The `polydiff` command line: one-line user errors (exit 2) with --debug for the traceback, --version,
`bench --list` / `bench --help`, the end-of-run summary, help on every argument; benchkit's report (directions,
target ranking, goals); polydiff.core.optional."""

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest

from polydiff.core import benchkit, cli
from polydiff.core.cli import UsageError, build_parser, main
from polydiff.core.optional import MissingDependency, require

RESULTS = Path(__file__).resolve().parents[2] / "results"


class FakeEntryPoint:
    def __init__(self, name, target, value=None):
        self.name, self._target, self.value, self.dist = name, target, value or f"fake.{name}:run", None

    def load(self):
        return self._target


def _only_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("polydiff: error: "), text
    assert "Traceback" not in text
    return lines[0]


# ---------------------------------------------------------------------------------------------- errors


def test_version_lists_every_polydiff_distribution(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert "polydiff-core " in out and "python " in out
    assert set(cli.polydiff_versions()) >= {"polydiff-core"}


@pytest.mark.parametrize("argv", [
    ["nope"],
    ["bench"],
    ["bench", "nope", "--out", "x"],
    ["bench", "--seed", "abc"],
])
def test_usage_errors_are_one_line_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    _only_error_line(capsys.readouterr().err)


def _with_command(monkeypatch, function, name="demo"):
    def register(sub):
        parser = sub.add_parser(name, help="a test command")
        parser.add_argument("--n", type=cli.positive_int, default=1, help="a positive count")
        parser.set_defaults(func=function)

    real = cli._group
    monkeypatch.setattr(cli, "_group", lambda group: {name: FakeEntryPoint(name, register)}
                        if group == "polydiff.commands" else real(group))


@pytest.mark.parametrize("error", [ValueError("thing: bad value\nsecond line"), FileNotFoundError(2, "No such file",
                                   "missing.csv"), MissingDependency("x is not installed; pip install y", module="x"),
                                   json.JSONDecodeError("Expecting value", "{", 1)])
def test_library_user_errors_are_one_line_and_debug_shows_the_traceback(error, monkeypatch, capsys):
    def run(args):
        raise error

    _with_command(monkeypatch, run)
    assert main(["demo"]) == 2
    line = _only_error_line(capsys.readouterr().err)
    if isinstance(error, FileNotFoundError):
        assert "missing.csv" in line
    with pytest.raises(type(error)):
        main(["demo", "--debug"])
    monkeypatch.setenv("POLYDIFF_DEBUG", "1")
    with pytest.raises(type(error)):
        main(["demo"])


def test_bad_argument_value_is_one_line(monkeypatch, capsys):
    _with_command(monkeypatch, lambda args: 0)
    assert main(["demo", "--n", "0"]) == 2
    line = _only_error_line(capsys.readouterr().err)
    assert "--n" in line and "positive integer" in line
    assert main(["demo", "--unknown"]) == 2
    assert "unrecognized arguments: --unknown" in _only_error_line(capsys.readouterr().err)


def test_a_bug_keeps_its_traceback(monkeypatch):
    def run(args):
        raise RuntimeError("a bug")

    _with_command(monkeypatch, run)
    with pytest.raises(RuntimeError):
        main(["demo"])


def test_a_broken_package_does_not_break_the_others(monkeypatch, capsys):
    class Broken(FakeEntryPoint):
        def load(self):
            raise ModuleNotFoundError("No module named 'polydiff.broken.cli'")

    real = cli._group
    monkeypatch.setattr(cli, "_group", lambda group: {"broken": Broken("broken", None)}
                        if group == "polydiff.commands" else real(group))
    assert main(["--version"]) == 0
    capsys.readouterr()
    assert main(["broken", "fit", "--x"]) == 2
    assert "could not be loaded" in _only_error_line(capsys.readouterr().err)


def test_broken_pipe_is_quiet(monkeypatch):
    def run(args):
        raise BrokenPipeError(32, "Broken pipe")

    _with_command(monkeypatch, run)
    monkeypatch.setattr(cli.os, "dup2", lambda *a: None)
    assert main(["demo"]) == 1


def _walk(parser: argparse.ArgumentParser, prog=""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{prog} {name}")
        else:
            yield prog, action


def test_every_argument_has_help():
    missing = [f"{prog}: {action.option_strings or action.dest}" for prog, action in _walk(build_parser())
               if action.help in (None, "") and action.dest != "rest"]
    assert not missing, missing


# ------------------------------------------------------------------------------------------------ bench


def test_bench_list_prints_installed_packages_and_options(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "core" in out and "--no-peers" in out and "--report-only" in out
    assert main(["bench", "core", "--help"]) == 0
    assert "--nfe" in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0
    assert "Installed benchmarks:" in capsys.readouterr().out


def test_bench_list_degrades_for_packages_without_add_arguments(monkeypatch, capsys):
    real = cli._group
    eps = {"plain": FakeEntryPoint("plain", None, "json:loads"),
           "gone": FakeEntryPoint("gone", None, "polydiff_no_such_module:run")}
    monkeypatch.setattr(cli, "_group", lambda group: eps if group == "polydiff.bench" else real(group))
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "JSON" in out  # json's module docstring
    assert "could not load" in out


def test_bench_all_keeps_going_and_ends_with_a_summary(monkeypatch, tmp_path, capsys):
    def good(out_dir, *, quick, seed, argv):
        rows = [{"task": "t", "method": "m", "peer": False, "score": 1.0}]
        return benchkit.write_report(out_dir, "good", quick=quick, seed=seed, versions={}, better={"score": "max"},
                                     rows=rows, title="good")

    def bad(out_dir, *, quick, seed, argv):
        raise ValueError("bad: broke")

    real = cli._group
    eps = {"bad": FakeEntryPoint("bad", bad), "good": FakeEntryPoint("good", good)}
    monkeypatch.setattr(cli, "_group", lambda group: eps if group == "polydiff.bench" else real(group))
    assert main(["bench", "all", "--quick", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    summary = captured.out[captured.out.index("polydiff bench summary"):]
    assert "good" in summary and "ok" in summary and "FAILED" in summary
    assert str(tmp_path / "good.md") in summary
    assert "bad: broke" in captured.err
    # one package: its error is the command's error, in one line
    assert main(["bench", "bad", "--out", str(tmp_path)]) == 2
    _only_error_line(capsys.readouterr().err)


def test_bench_summary_names_each_report_once(monkeypatch, tmp_path, capsys):
    def writer(name):
        def run(out_dir, *, quick, seed, argv):
            rows = [{"task": "t", "method": "m", "peer": False, "score": 1.0}]
            return benchkit.write_report(out_dir, name, quick=quick, seed=seed, versions={},
                                         better={"score": "max"}, rows=rows, title=name)
        return run

    real = cli._group
    eps = {"first": FakeEntryPoint("first", writer("first")), "second": FakeEntryPoint("second", writer("second"))}
    monkeypatch.setattr(cli, "_group", lambda group: eps if group == "polydiff.bench" else real(group))
    assert main(["bench", "all", "--quick", "--out", str(tmp_path)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("reports:"))
    # the second package starts within a second of the first report: it is still listed once
    assert line.count("first.md") == 1 and line.count("second.md") == 1


def test_bench_core_report_only_rewrites_the_markdown_from_json(tmp_path, capsys):
    """--report-only rewrites every core report from its JSON: the mixture set (core), the one-mixture solver
    table (core-solvers, whose older reports kept the reference-solve time only in their markdown), train, inverse."""
    names = ("core.json", "core-solvers.json", "core-solvers.md", "core-train.json", "core-inverse.json")
    for name in names:
        shutil.copy(RESULTS / name, tmp_path / name)
    before = {name: json.loads((tmp_path / name).read_text()) for name in names if name.endswith(".json")}
    assert main(["bench", "core", "--out", str(tmp_path), "--", "--report-only"]) == 0
    mixtures, solvers = (tmp_path / "core.md").read_text(), (tmp_path / "core-solvers.md").read_text()
    for text in (mixtures, solvers):
        assert "## Goals" in text and "issue author" not in text.lower() and "source:" in text
    assert "geometric mean" in mixtures and "Per-step overhead" in mixtures
    assert "Reference solve:" in solvers  # kept from the report written before it was in the JSON
    assert all(json.loads((tmp_path / name).read_text()) == document for name, document in before.items())
    assert (tmp_path / "core-train.md").exists() and (tmp_path / "core-inverse.md").exists()


def test_committed_reports_speak_of_goals_and_sources():
    for path in RESULTS.glob("*.md"):
        assert "issue author" not in path.read_text().lower(), path


def test_bench_core_fails_in_one_line_without_its_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    assert main(["bench", "core", "--quick", "--out", str(tmp_path)]) == 2
    line = _only_error_line(capsys.readouterr().err)
    assert 'pip install "polydiff-core[bench]"' in line and "diffusers" in line
    assert not (tmp_path / "core.json").exists()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the solvers part draws a figure
    assert main(["bench", "core", "--quick", "--out", str(tmp_path), "--parts", "solvers", "--no-peers"]) == 2
    line = _only_error_line(capsys.readouterr().err)
    assert 'pip install "polydiff-core[bench]"' in line and "matplotlib" in line
    assert not (tmp_path / "core-solvers.json").exists()


# --------------------------------------------------------------------------------------------- benchkit


ROWS = [
    {"task": "a", "method": "x", "peer": False, "err": 0.1, "sd": 0.0, "auc": 0.70, "lone": 3.0, "tie": 1.0},
    {"task": "a", "method": "y", "peer": True, "err": 0.2, "sd": 0.0, "auc": 0.45, "tie": 1.0},
    {"task": "a", "method": "z", "peer": True, "err": 0.3, "sd": 0.1, "auc": 0.58, "tie": 1.0},
]


@pytest.mark.parametrize("spec, expected", [("min", ("min", None)), ("max", ("max", None)), (None, ("none", None)),
                                            ("none", ("none", None)), ("target:0.5", ("target", 0.5)),
                                            (0.5, ("target", 0.5)), (1, ("target", 1.0))])
def test_direction(spec, expected):
    assert benchkit.direction(spec) == expected


@pytest.mark.parametrize("spec", ["best", "target:x", True, float("nan"), "target:inf"])
def test_direction_refuses(spec):
    with pytest.raises(ValueError, match="better"):
        benchkit.direction(spec)


def test_table_ranks_targets_by_distance_and_never_bolds_a_spread_a_tie_or_a_lone_value():
    better = {"err": "min", "sd": None, "auc": "target:0.5", "lone": "max", "tie": "min"}
    table = benchkit.markdown_table(ROWS, list(better), better)
    lines = table.splitlines()
    assert "auc (→ 0.5)" in lines[0] and "| sd |" in lines[0] and "err (↓)" in lines[0]
    x, y, z = lines[2], lines[3], lines[4]
    assert "**0.1**" in x and "**0.45**" in y  # 0.45 is 0.05 from 0.5; 0.58 is 0.08 away; 0.7 is 0.2 away
    assert "**0.58**" not in z and "**0.7**" not in x
    assert "**0**" not in table and "**3**" not in table and "**1**" not in table


def test_write_report_goals_and_backward_compatible_json(tmp_path):
    goals = [benchkit.goal("error ≤ peer", True, "0.1 vs 0.2", "issue #2"),
             benchkit.goal("fast", None)]
    document = benchkit.write_report(tmp_path, "demo", quick=True, seed=3, versions={"torch": "x"},
                                     better={"err": "min", "auc": "target:0.5"}, rows=ROWS, title="Demo",
                                     preamble="Protocol.", goals=goals, extra={"notes": []})
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert {"package", "quick", "seed", "versions", "better", "rows"} <= set(saved) and saved == document
    assert saved["goals"][0]["source"] == "issue #2"
    text = (tmp_path / "demo.md").read_text()
    assert text.index("## Goals") < text.index("Protocol.")
    assert "*(source: issue #2)*" in text and "**not checked**" in text and "closest" in text
    with pytest.raises(ValueError, match="better\\['err'\\]"):
        benchkit.write_report(tmp_path, "demo", quick=True, seed=0, versions={}, better={"err": "lowest"},
                              rows=ROWS, title="x")
    with pytest.raises(ValueError, match="met"):
        benchkit.goal("x", "yes")


def test_option_parser_raises_value_errors():
    parser = benchkit.OptionParser(prog="polydiff bench demo")
    parser.add_argument("--n", type=int, help="n")
    with pytest.raises(UsageError, match="polydiff bench demo: argument --n"):
        parser.parse_args(["--n", "x"])


# --------------------------------------------------------------------------------------------- optional


def test_require_names_the_extra(monkeypatch):
    assert require("json").loads("1") == 1
    monkeypatch.setitem(sys.modules, "polydiff_absent_dep", None)
    with pytest.raises(MissingDependency) as caught:
        require("polydiff_absent_dep", "polydiff-core[bench]", "the figures")
    message = str(caught.value)
    assert "\n" not in message and 'pip install "polydiff-core[bench]"' in message and "the figures" in message
    assert isinstance(caught.value, ImportError) and caught.value.extra == "polydiff-core[bench]"
    with pytest.raises(MissingDependency, match="pip install pyarrow"):
        require("polydiff_absent_dep", "polydiff-tabular[parquet]", install="pyarrow")
    with pytest.raises(ValueError, match="module"):
        require("")


def test_bench_summary_ends_with_each_reports_goals(monkeypatch, tmp_path, capsys):
    """The summary lists every goal of each report with its verdict and numbers: from the JSON's goals, else from
    the markdown's Goals section."""
    def with_goals(out_dir, *, quick, seed, argv):
        rows = [{"task": "t", "method": "m", "peer": False, "score": 1.0}]
        goals = [benchkit.goal("score ≥ 0.9 (got 1.0)", True), benchkit.goal("latency ≤ 10 ms", False, "17.5 ms")]
        return benchkit.write_report(out_dir, "withgoals", quick=quick, seed=seed, versions={},
                                     better={"score": "max"}, rows=rows, title="w", goals=goals)

    def markdown_only(out_dir, *, quick, seed, argv):
        (Path(out_dir) / "mdonly.md").write_text("# m\n\n## Goals\n\n- **NOT met** — coverage ≥ 0.85: 0.62\n"
                                                 "- **met** — beats the MLP: 0.86 vs 0.56\n\n## Rows\n- not a goal\n")
        return {"rows": []}

    real = cli._group
    eps = {"withgoals": FakeEntryPoint("withgoals", with_goals), "mdonly": FakeEntryPoint("mdonly", markdown_only)}
    monkeypatch.setattr(cli, "_group", lambda group: eps if group == "polydiff.bench" else real(group))
    assert main(["bench", "all", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("polydiff bench summary"):]
    assert "goals of withgoals" in summary and "goals of mdonly" in summary
    lines = summary.splitlines()
    assert any(line.split()[:1] == ["met"] and "score ≥ 0.9 (got 1.0)" in line for line in lines)
    assert any(line.strip().startswith("NOT MET") and "latency ≤ 10 ms 17.5 ms" in line for line in lines)
    assert any(line.strip().startswith("NOT MET") and "coverage ≥ 0.85: 0.62" in line for line in lines)
    assert not any("not a goal" in line for line in lines)
    assert summary.count("1 of 2 met") == 2
