"""demos -> train -> eval from the command line, and the CLI's refusals."""

import json

from polydiff.core.cli import main


def test_demos_train_eval(tmp_path, capsys):
    demos, policy, video = tmp_path / "demos.npz", tmp_path / "policy", tmp_path / "rollout.gif"
    assert main(["robotics", "demos", "--task", "obstacle", "-n", "6", "--out", str(demos), "--quiet"]) == 0
    assert main(["robotics", "train", str(demos), "--out", str(policy), "--steps", "5", "--batch-size", "16",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["robotics", "eval", str(policy), "--episodes", "2", "--render", str(video), "--steps", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and 0 <= summary["success"] <= 1 and "mode_left" in summary
    assert video.stat().st_size > 0


def test_refuses_to_overwrite_without_force_and_names_the_argument(tmp_path, capsys):
    demos = tmp_path / "demos.npz"
    assert main(["robotics", "demos", "-n", "2", "--out", str(demos), "--quiet"]) == 0
    before = demos.read_bytes()
    assert main(["robotics", "demos", "-n", "3", "--out", str(demos), "--quiet"]) == 2
    assert "--out" in capsys.readouterr().err and demos.read_bytes() == before
    assert main(["robotics", "demos", "-n", "2", "--out", str(demos), "--quiet", "--force"]) == 0


def test_wrong_extension_is_one_line_error(tmp_path, capsys):
    assert main(["robotics", "demos", "-n", "2", "--out", str(tmp_path / "demos.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polydiff: error: --out") and err.count("\n") == 1


def test_pusher_demos_train_x0_and_eval_on_joint_targets(tmp_path, capsys):
    from polydiff.robotics.policy import load_policy

    demos, policy = tmp_path / "demos.npz", tmp_path / "policy"
    assert main(["robotics", "demos", "--task", "pusher", "-n", "1", "--out", str(demos), "--quiet"]) == 0
    assert main(["robotics", "train", str(demos), "--out", str(policy), "--steps", "3", "--batch-size", "8",
                 "--horizon", "8", "--n-action-steps", "4", "--prediction", "x0", "--quiet"]) == 0
    assert load_policy(policy).prediction == "x0"
    capsys.readouterr()
    assert main(["robotics", "eval", str(policy), "--episodes", "1", "--steps", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 1 and "final_distance" in summary
