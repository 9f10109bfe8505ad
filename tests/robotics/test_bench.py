import json

import pytest


@pytest.mark.slow
def test_quick_bench_writes_every_row_and_the_goals(tmp_path):
    from polydiff.robotics.bench import run

    document = run(tmp_path, quick=True, seed=0)
    methods = [row["method"] for row in document["rows"]]
    assert "Diffusion Policy (DDPM-100)" in methods and "MLP BC (1-step MSE)" in methods
    assert any(m.startswith("Diffuser") for m in methods) and any(m.startswith("DPPO after") for m in methods)
    assert all(0 <= row["success"] <= 1 for row in document["rows"])
    assert json.loads((tmp_path / "robotics.json").read_text())["package"] == "robotics"
    text = (tmp_path / "robotics.md").read_text()
    assert "## Goals" in text and (tmp_path / "robotics-obstacle-paths.png").stat().st_size > 0
