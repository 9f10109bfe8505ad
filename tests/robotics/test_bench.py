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


def test_trained_resumes_only_checkpoints_of_the_same_run(demos, tmp_path, capsys, caplog):
    import logging
    import shutil

    caplog.set_level(logging.INFO, logger="polydiff.core.training")

    from polydiff.robotics.bench import _trained
    from polydiff.robotics.policy import MLPPolicy

    def train(steps, tag):
        shutil.rmtree(tmp_path / "models", ignore_errors=True)  # no finished model: train (or resume)
        _trained("mlp", lambda: MLPPolicy.from_episodes(demos, n_action_steps=1), demos, steps, 8, 0, tmp_path,
                 False, tag=tag)
        said = capsys.readouterr().err + caplog.text
        caplog.clear()
        return said

    assert "resumed" not in train(1000, {"demos": 12})
    assert "resumed from step 1000" in train(1010, {"demos": 12})  # the same run, longer
    assert "resumed" not in train(1020, {"demos": 12, "expert_version": 2})  # other demonstrations: afresh
