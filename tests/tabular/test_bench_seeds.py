"""The tabular bench's seed-aware rows: means and sds over training seeds, wins decided by the combined sd, the
peak-memory probe, and issue 15's goals."""

import math

import pytest

from polydiff.tabular import bench


def test_run_seeds_averages_and_reports_the_seed_sd(monkeypatch):
    calls = []

    def fake(task, train, test, method, budget, seed):
        calls.append(seed)
        return {"ml_efficiency": 0.5 + 0.1 * seed, "fit_seconds": 10.0 * (seed + 1), "fit_peak_mb": 100.0 + seed,
                "ml_classifier": "CatBoost"}

    monkeypatch.setattr(bench, "_run_one", fake)
    row = bench._run_seeds(None, None, None, "TabDiff", {}, 4, 3)
    assert calls == [4, 5, 6]
    assert row["ml_efficiency"] == pytest.approx(0.5 + 0.1 * 5)
    assert row["ml_efficiency_seed_sd"] == pytest.approx(0.1)  # sample sd of 0.9, 1.0, 1.1
    assert row["fit_seconds"] == pytest.approx(60.0) and row["fit_peak_mb"] == 106.0
    assert row["seeds"] == 3 and row["ml_classifier"] == "CatBoost"


def test_a_win_needs_more_than_the_combined_sd():
    a = {"task": "t", "method": "TabDiff", "ml_efficiency": 0.80, "ml_efficiency_seed_sd": 0.03}
    b = {"task": "t", "method": "CTGAN", "ml_efficiency": 0.76, "ml_efficiency_seed_sd": 0.04}  # 0.04 < 0.05 sd
    c = {"task": "t", "method": "TVAE", "ml_efficiency": 0.70, "ml_efficiency_seed_sd": 0.0}    # gap 0.10 > 0.03
    real = {"task": "t", "method": "real", "ml_efficiency": 0.9}
    assert bench._combined_gap(a, b) == pytest.approx(0.8)
    assert bench._combined_gap(a, c) == pytest.approx(0.1 / 0.03)
    rows = [real, a, b, c]
    bench._add_wins(rows)
    # a beats c only; b beats c (0.06 > 0.04); c beats nobody
    assert a["wins"] == 1 and b["wins"] == 1 and c["wins"] == 0 and "wins" not in real
    # identical means with no spread: a tie both ways
    assert bench._combined_gap({"ml_efficiency": 0.5}, {"ml_efficiency": 0.5}) == 0.0
    assert math.isnan(bench._combined_gap({"ml_efficiency": math.nan}, b))


def test_peak_memory_sees_an_allocation():
    import mmap

    # the block is still mapped when the measurement ends: the kernel's high-water mark is not refreshed when
    # memory is unmapped on every kernel, so a block freed inside is seen only if the 20 ms poll caught it
    with bench._PeakMemory() as memory:
        block = mmap.mmap(-1, 64 * 2**20)  # 64 MB, every page touched
        for offset in range(0, len(block), 4096):
            block[offset] = 1
    block.close()
    assert memory.megabytes >= 50


def _row(task, method, ml, sd, detection=0.9, fit=60.0):
    return {"task": task, "method": method, "peer": method in bench.PEERS, "ml_efficiency": ml,
            "ml_efficiency_seed_sd": sd, "detection_score": detection, "fit_seconds": fit, "fit_peak_mb": 50.0,
            "fidelity_ks_tvd": 0.02, "dcr_median": 0.1, "seeds": 3}


def test_seed_aware_goals_count_ties_as_not_losing():
    rows = [{"task": "a", "method": "real", "ml_efficiency": 0.80},
            _row("a", "TabDDPM", 0.78, 0.01), _row("a", "TabDiff", 0.79, 0.01, detection=0.95),
            _row("a", "CTGAN", 0.80, 0.02, detection=0.6),  # ahead by 0.01 < sqrt(0.01^2 + 0.02^2): a tie
            {"task": "b", "method": "real", "ml_efficiency": 0.80},
            _row("b", "TabSyn", 0.70, 0.01, fit=400.0), _row("b", "TVAE", 0.75, 0.01, detection=0.99)]
    goals = bench._seed_aware_goals(rows, {(r["task"], r["method"]): r for r in rows}, ["a", "b"], False)
    verdicts = {g["goal"].split(" ")[0] + str(i): g for i, g in enumerate(goals)}
    real, peers, detection, fit = goals
    assert real["met"] is False and "a ✓ TabDiff 0.790 / 0.800" in real["detail"] and "b ✗" in real["detail"]
    assert "1/2" in peers["detail"] and "a ✓" in peers["detail"] and "b ✗" in peers["detail"]
    assert peers["met"] is True  # at least 1 of 2
    assert detection["met"] is False and "a ✓ 0.950 vs best peer 0.600" in detection["detail"]
    assert fit["met"] is False and "b/TabSyn ✗ 400 s" in fit["detail"]
    assert len(verdicts) == 4
    # rows without seeds (an older report) get no issue-15 goals
    assert bench._seed_aware_goals([{k: v for k, v in r.items() if k != "seeds"} for r in rows], {}, [], False) == []


def test_the_fit_goal_reads_cpu_time_when_the_row_has_it():
    # CPU time (the one-thread fit's own cost) decides when present; wall-clock only for rows without it
    assert bench._fit_time({"fit_seconds": 900.0, "fit_cpu_seconds": 240.0}) == (240.0, "CPU")
    assert bench._fit_time({"fit_seconds": 200.0}) == (200.0, "wall")
    assert bench._fit_time({"fit_seconds": 200.0, "fit_cpu_seconds": math.nan}) == (200.0, "wall")


def test_run_one_measures_the_fit_in_cpu_and_wall_time(monkeypatch):
    class Busy:
        def fit(self, train, target=None):
            total = 0
            for k in range(300_000):  # CPU work: its process time is nonzero and at most its wall time (+ rounding)
                total += k * k
            self.total = total

        def sample(self, n, seed=None):
            return "synthetic"

    monkeypatch.setattr(bench, "_generator", lambda *a: Busy())
    monkeypatch.setattr(bench, "evaluate", lambda *a, **k: {"ml_efficiency": 0.5})

    class Task:
        target, task = "y", "regression"

    row = bench._run_one(Task(), [0] * 10, [0] * 5, "TabDDPM", {"ml_seeds": 1, "catboost_iterations": 1}, 0)
    assert 0 < row["fit_cpu_seconds"] <= row["fit_seconds"] + 0.02


def test_an_isolated_run_measures_the_fit_in_a_fresh_process():
    pytest.importorskip("palmerpenguins")
    pytest.importorskip("catboost")
    from polydiff.tabular.data import load_dataset, split

    task = load_dataset("penguins", quick=True, seed=0)
    train, test = split(task, 0.3, 0)
    budget = {**bench.budgets(quick=True), "TabDDPM_steps": 20, "catboost_iterations": 10, "ml_seeds": 1}
    row = bench._run_seeds(task, train, test, "TabDDPM", budget, 0, 1, isolated=True)
    # the fresh process pays torch's first allocations and the model's: never the ~0 MB growth of a process
    # that reuses memory freed by earlier fits
    assert row["fit_peak_mb"] > 1 and row["seeds"] == 1
    assert 0 <= row["ml_efficiency"] <= 1
    assert "fit_peak_mb" not in bench._run_one(task, train, test, "TabDDPM", budget, 0)


def test_a_single_table_run_needs_its_one_table_ahead_of_the_peers():
    rows = [{"task": "a", "method": "real", "ml_efficiency": 0.80}, _row("a", "TabDiff", 0.70, 0.01),
            _row("a", "SMOTENC", 0.78, 0.01)]
    by = {(r["task"], r["method"]): r for r in rows}
    peers = bench._seed_aware_goals(rows, by, ["a"], False)[1]
    assert peers["met"] is False and "at least 1 of 1" in peers["goal"]
    assert [bench._need(n) for n in (0, 1, 2, 6)] == [0, 1, 1, 5]
