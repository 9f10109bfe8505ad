"""Resuming with a changed TrainConfig: announced, refused field by field unless overridden, applied when accepted."""

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from polydiff.core.training import Callback, TrainConfig, Trainer, lr_factor
from polydiff.core.training.config import RESUME_FREE_FIELDS, resume_changes

LOGGER = "polydiff.core.training"


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, torch.tanh(x @ torch.randn(4, 2, generator=g))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, 2))


def _mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _config(tmp_path, **kw):
    base = dict(steps=6, batch_size=8, lr=1e-2, ema_decay=0.9, log_every=3, device="cpu",
                checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=3, keep_last=2)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def trained(tmp_path):
    """A finished 6-step run in tmp_path/ckpt."""
    torch.set_num_threads(1)
    Trainer(_model(), _mse, _data(), _config(tmp_path)).fit()
    return tmp_path


def _checkpoint_files(root: Path) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_is_announced_with_step_and_directory(trained, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    resumed = Trainer(_model(), _mse, _data(), _config(trained, steps=9))
    assert resumed.step == 6
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages == [f"resumed from step 6 of {trained / 'ckpt'}; changed: steps 6 -> 9"]


def test_resume_is_printed_to_stderr_when_logging_is_not_configured(trained, tmp_path):
    """A plain script (no logging.basicConfig) still says that it resumed: the message goes to stderr."""
    script = tmp_path / "resume.py"
    script.write_text(
        "import sys, torch\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_training_resume_config import _config, _data, _model, _mse\n"
        "from polydiff.core.training import Trainer\n"
        "from pathlib import Path\n"
        "torch.set_num_threads(1)\n"
        f"Trainer(_model(), _mse, _data(), _config(Path({str(trained)!r})))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"resumed from step 6 of {trained / 'ckpt'}"
    assert done.stdout == ""


@pytest.mark.parametrize("changes", [
    {"lr": 3e-3},
    {"lr": 3e-3, "seed": 1, "lr_schedule": "cosine"},
    {"ema_decay": 0.5, "betas": (0.8, 0.99)},
    {"mixed_precision": "bf16", "grad_clip": None},
])
def test_a_changed_training_field_is_refused_naming_old_and_new_values(trained, changes):
    root = trained / "ckpt"
    before = _checkpoint_files(root)
    with pytest.raises(ValueError) as info:
        Trainer(_model(), _mse, _data(), _config(trained, steps=12, **changes))
    message = str(info.value)
    defaults = _config(trained)
    for name, new in changes.items():
        old = getattr(defaults, name)
        assert f"{name}: {old!r} -> {new!r}" in message, message
    assert "steps" not in message.split("settings:")[1].split("Pass")[0]  # steps may change freely
    assert f"resume_overrides={sorted(changes)!r}" in message and "step-00000006" in message
    assert _checkpoint_files(root) == before  # nothing written or removed


def test_operational_fields_and_steps_change_without_asking(trained, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    changed = dict(steps=8, log_every=1, checkpoint_every=5, keep_last=4, progress=True, nonfinite="skip",
                   num_workers=1, eval_every=2, find_unused_parameters=True, device=None)
    assert set(changed) <= set(RESUME_FREE_FIELDS)
    resumed = Trainer(_model(), _mse, _data(), _config(trained, **changed))
    assert resumed.step == 6 and resumed.resumed_from.name == "step-00000006"
    (message,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "steps 6 -> 8" in message and "log_every 3 -> 1" in message and "nonfinite 'raise' -> 'skip'" in message


def test_overrides_by_name_accept_only_the_named_fields(trained):
    with pytest.raises(ValueError) as info:
        Trainer(_model(), _mse, _data(), _config(trained, lr=3e-3, seed=1), resume_overrides=["lr"])
    assert "seed: 0 -> 1" in str(info.value) and "lr:" not in str(info.value)
    resumed = Trainer(_model(), _mse, _data(), _config(trained, lr=3e-3, seed=1), resume_overrides=["lr", "seed"])
    assert resumed.step == 6
    assert Trainer(_model(), _mse, _data(), _config(trained, lr=3e-3, seed=1), resume_overrides=True).step == 6


def test_unknown_override_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"resume_overrides: unknown names \['learning_rate'\]"):
        Trainer(_model(), _mse, _data(), _config(tmp_path), resume_overrides=["learning_rate"])
    with pytest.raises(ValueError, match="resume_overrides"):
        Trainer(_model(), _mse, _data(), _config(tmp_path), resume_overrides="lr")


class Lrs(Callback):
    def __init__(self):
        self.lrs = []

    def on_train_start(self, trainer):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])

    def on_step_end(self, trainer, logs):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


def test_overridden_optimizer_values_take_effect(trained):
    """The optimizer state in the checkpoint holds the old lr / betas / weight decay; the accepted new ones win."""
    record = Lrs()
    config = _config(trained, steps=9, lr=3e-3, betas=(0.8, 0.9), weight_decay=0.1, eps=1e-6)
    resumed = Trainer(_model(), _mse, _data(), config, callbacks=[record], resume_overrides=True).fit()
    assert record.lrs == [3e-3] * 4  # constant schedule: every step of the resumed run uses the new lr
    group = resumed.optimizer.param_groups[0]
    assert (group["betas"], group["weight_decay"], group["eps"]) == ((0.8, 0.9), 0.1, 1e-6)


def test_a_longer_run_follows_the_lr_schedule_of_the_new_steps(tmp_path):
    """Extending a cosine run: the first resumed step uses lr x factor(6; steps=12), not the old run's final 0."""
    torch.set_num_threads(1)
    Trainer(_model(), _mse, _data(), _config(tmp_path, lr_schedule="cosine")).fit()
    record = Lrs()
    resumed = Trainer(_model(), _mse, _data(), _config(tmp_path, steps=12, lr_schedule="cosine"), callbacks=[record])
    resumed.fit()
    expected = [1e-2 * lr_factor(s, steps=12, warmup_steps=0, schedule="cosine") for s in range(6, 13)]
    assert record.lrs == expected
    assert record.lrs[0] > 0.0049


def test_an_unchanged_config_resumes_bitwise_exactly(tmp_path):
    """_apply_optimizer_config rewrites the stored optimizer values with equal ones: exact resume is kept."""
    torch.set_num_threads(1)
    reference = Trainer(_model(), _mse, _data(), _config(tmp_path / "a", lr_schedule="cosine", warmup_steps=2,
                                                         weight_decay=0.01, steps=10)).fit()
    Trainer(_model(), _mse, _data(), _config(tmp_path / "b", lr_schedule="cosine", warmup_steps=2,
                                             weight_decay=0.01, steps=10)).fit()
    shutil.rmtree(tmp_path / "b" / "ckpt" / "step-00000010")  # back to step 9's checkpoint
    resumed = Trainer(_model(), _mse, _data(), _config(tmp_path / "b", lr_schedule="cosine", warmup_steps=2,
                                                       weight_decay=0.01, steps=10))
    assert resumed.step == 9
    resumed.fit()
    for p, q in zip(reference.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_global_batch_is_what_counts_for_batch_size_and_grad_accum(trained, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(ValueError) as info:
        Trainer(_model(), _mse, _data(), _config(trained, batch_size=16))
    message = str(info.value)
    assert "global_batch: 8 -> 16" in message and "8 x 1 x 1 -> 16 x 1 x 1" in message
    assert "batch_size=8 keeps it" in message
    # half the batch with two micro-batches per step is the same optimisation: accepted and reported
    resumed = Trainer(_model(), _mse, _data(), _config(trained, batch_size=4, grad_accum=2))
    assert resumed.step == 6
    (note,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "batch_size 8 -> 4" in note and "grad_accum 1 -> 2" in note


def test_resume_changes_reports_world_size_and_keeps_json_types_apart():
    saved = _config(Path("x")).to_dict()
    saved["betas"] = list(saved["betas"])  # as JSON stores it
    saved["retired_field"] = 1  # a field this version no longer has is not compared
    refused, free = resume_changes(saved, _config(Path("x"), batch_size=4), saved_world_size=1, world_size=2)
    assert refused == {} and free == {"batch_size": (8, 4), "world_size": (1, 2)}
    refused, _ = resume_changes(saved, _config(Path("x")), saved_world_size=1, world_size=2)
    assert refused == {"global_batch": (8, 16)}
    refused, free = resume_changes({**saved, "ema_decay": 0.9}, _config(Path("x"), ema_decay=0.9),
                                   saved_world_size=1, world_size=1)
    assert refused == free == {}
