"""polydiff.core.bench.train: the standalone report (slow: it launches torchrun and times real training)."""

import json

import pytest

from polydiff.core.bench import train as bench_train


@pytest.mark.slow
def test_standalone_train_bench_writes_rows(tmp_path):
    assert bench_train.main(["--out", str(tmp_path), "--quick"]) == 0
    document = json.loads((tmp_path / "core-train.json").read_text())
    rows = {(r["task"], r["method"]): r for r in document["rows"]}
    assert (tmp_path / "core-train.md").is_file()
    for task in {t for t, _ in rows if t.startswith("train ")}:
        ours, peer = rows[(task, "polydiff Trainer")], rows[(task, "hand-written PyTorch loop")]
        assert peer["peer"] is True and ours["peer"] is False
        assert ours["overhead_pct"] == pytest.approx(100 * (peer["steps_per_cpu_s"] / ours["steps_per_cpu_s"] - 1))
    ddp = [r for (t, _), r in rows.items() if t.startswith("ddp ")]
    assert len(ddp) == 2 and all(r["samples_per_s"] > 0 for r in ddp)


def test_plain_loop_and_trainer_time_the_same_workload():
    factory, x0, batch = bench_train._model_and_data("mlp", True, 0)
    assert x0.shape == (batch * 16, 16)
    assert min(bench_train._time_trainer(factory, x0[:64], 16, 1, 2, 0)) > 0
    assert min(bench_train._time_plain(factory, x0[:64], 16, 1, 2, 0)) > 0
