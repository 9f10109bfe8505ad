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
