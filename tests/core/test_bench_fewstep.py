"""The few-step bench's problem set and goal verdicts (the runs themselves are the bench's job)."""

import math

from polydiff.core.bench.fewstep import NFES, goals, problems


def test_the_quick_set_covers_every_dimension_kind_seed_and_component_count():
    quick, full = problems(True), problems(False)
    assert len(quick) == 6 and len(full) == 18
    for chosen in (quick, full):
        assert {p["dim"] for p in chosen} == {16, 32, 64}
        assert {p["anisotropic"] for p in chosen} == {False, True}
        assert {p["seed"] for p in chosen} == {0, 1, 2}
        assert {p["components"] for p in chosen} == {8, 12, 16}
        assert len({p["name"] for p in chosen}) == len(chosen)
    assert all(p in full for p in quick)


def _rows(ratios: dict, fit_seconds=10.0):
    rows = []
    for (name, nfe), ratio in ratios.items():
        rows.append(dict(task=f"{name}/nfe{nfe}", method="polydiff", peer=False, error=ratio,
                         ratio_to_diffusers_best=ratio, fit_seconds=fit_seconds))
        rows.append(dict(task=f"{name}/nfe{nfe}", method="diffusers", peer=True, error=1.0))
    return rows


def test_goals_take_the_worst_problem_and_the_geometric_mean():
    ratios = {("a", nfe): 0.5 for nfe in NFES} | {("b", nfe): 0.2 for nfe in NFES}
    ratios[("b", 20)] = 0.9
    found = goals(_rows(ratios), ["a", "b"])
    by_nfe = {nfe: g for nfe, g in zip(NFES, found, strict=False)}
    assert by_nfe[5]["met"] and by_nfe[10]["met"] and not by_nfe[20]["met"]
    assert f"geometric mean {math.sqrt(0.5 * 0.2):.3g}" in by_nfe[5]["goal"]
    assert "worst ratio 0.9" in by_nfe[20]["goal"]
    assert "worst ratio 0.9 on b" in by_nfe[20]["goal"]
    fitting = lambda found: next(g for g in found if g["goal"].startswith("fitting"))  # noqa: E731
    assert fitting(found)["met"]  # every fit within 60 s
    assert not fitting(goals(_rows(ratios, fit_seconds=61.0), ["a", "b"]))["met"]
    assert found[-1]["met"] is None and "not measured" in found[-1]["detail"]  # no GPU in this benchmark


def test_the_mixtures_part_writes_ratios_goals_and_overhead(tmp_path):
    """A tiny run of `polydiff bench core` (the mixtures part): peer and fitted rows per NFE, each fitted row's
    ratio to the best peer of its task, the per-problem table, the overhead rows and the goals."""
    import json

    pytest = __import__("pytest")
    pytest.importorskip("diffusers")
    from polydiff.core.cli import main

    code = main(["bench", "core", "--quick", "--out", str(tmp_path), "--", "--problems", "gmm-d16-k8-iso-s0",
                 "--nfe", "5", "--samples", "32", "--calibration", "24", "--validation", "16", "--fit-seconds",
                 "0.5", "--rtol", "1e-6", "--repeats", "1", "--timing-batch", "8"])
    document = json.loads((tmp_path / "core.json").read_text())
    assert code == 0 and [p["name"] for p in document["problems"]] == ["gmm-d16-k8-iso-s0"]
    task = [r for r in document["rows"] if r["task"] == "gmm-d16-k8-iso-s0/nfe5"]
    peers, fitted = [r for r in task if r["peer"]], [r for r in task if not r["peer"]]
    assert len(peers) > 10 and len(fitted) == 1
    best = min(r["error"] for r in peers if r["nfe"] <= 5)
    assert abs(fitted[0]["ratio_to_diffusers_best"] - fitted[0]["error"] / best) < 1e-9
    assert fitted[0]["validation_error"] is not None and fitted[0]["fit_seconds"] > 0
    assert {r["task"] for r in document["rows"] if r["task"].startswith("overhead/")} == {
        "overhead/nfe5/b8", "overhead/nfe5/b1"}
    assert [g["goal"].split(":")[0] for g in document["goals"]][:1] == ["NFE 5"]
    text = (tmp_path / "core.md").read_text()
    assert "| gmm-d16-k8-iso-s0 |" in text and "geometric mean" in text and "Per-step overhead" in text
