"""Trainer: config validation, LR/EMA closed forms, sampler, grad accumulation, non-finite guard, checkpoints."""

import json
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch import nn

from polydiff.core.training import (
    EMA,
    Callback,
    CheckpointError,
    ResumableDistributedSampler,
    TrainConfig,
    Trainer,
    ema_decay,
    lr_factor,
)
from polydiff.core.training import checkpoint as ckpt


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, torch.tanh(x @ torch.randn(4, 2, generator=g))


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, 2))


def _mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _config(tmp_path=None, **kw):
    base = dict(steps=12, batch_size=8, lr=1e-2, ema_decay=0.9, log_every=4, device="cpu",
                checkpoint_dir=None if tmp_path is None else str(tmp_path / "ckpt"), checkpoint_every=2,
                keep_last=3)
    base.update(kw)
    return TrainConfig(**base)


class Record(Callback):
    def __init__(self):
        self.params, self.lrs = [], []

    def on_step_end(self, trainer, logs):
        self.params.append([p.detach().clone() for p in trainer.model.parameters()])
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("field,value,allowed", [
    ("steps", 0, "int >= 1"), ("batch_size", 2.5, "int >= 1"), ("lr", -1.0, "float > 0"),
    ("lr_schedule", "step", "cosine"), ("betas", (0.9, 1.0), "two floats"), ("grad_clip", 0.0, "None or"),
    ("mixed_precision", "fp8", "bf16"), ("nonfinite", "ignore", "skip"), ("ema_decay", 1.0, "[0, 1)"),
    ("ema_min_decay", 0.95, "ema_decay=0.9"), ("grad_accum", 0, "int >= 1"), ("keep_last", 0, "int >= 1"),
])
def test_config_rejects_bad_values_naming_field_value_and_allowed(field, value, allowed):
    kwargs = {"steps": 10, "ema_decay": 0.9, field: value}
    with pytest.raises(ValueError) as info:
        TrainConfig(**kwargs)
    message = str(info.value)
    assert f"TrainConfig.{field}" in message and repr(value) in message and allowed in message


def test_config_is_frozen_and_round_trips_through_json():
    config = TrainConfig(steps=5, betas=[0.8, 0.9], checkpoint_dir="x")
    assert config.betas == (0.8, 0.9)
    with pytest.raises(AttributeError):
        config.steps = 6
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_fp16_without_cuda_is_rejected():
    with pytest.raises(ValueError, match="mixed_precision"):
        Trainer(_model(), _mse, _data(), _config(mixed_precision="fp16"))


# ---------------------------------------------------------------- closed forms
def test_lr_factor_closed_forms():
    kw = dict(steps=110, warmup_steps=10)
    assert lr_factor(0, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_factor(9, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_factor(10, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_factor(60, schedule="cosine", **kw) == pytest.approx(0.5)
    assert lr_factor(35, schedule="cosine", **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(60, schedule="linear", **kw) == pytest.approx(0.5)
    assert lr_factor(110, schedule="linear", **kw) == 0.0
    assert lr_factor(60, schedule="constant", **kw) == 1.0


def test_trainer_applies_the_lr_schedule_each_step():
    record = Record()
    config = _config(steps=10, warmup_steps=3, lr_schedule="cosine")
    Trainer(_model(), _mse, _data(), config, callbacks=[record]).fit()
    # after optimizer step s (1-based) the LR for the next step is lr * factor(s)
    expected = [1e-2 * lr_factor(s, steps=10, warmup_steps=3, schedule="cosine") for s in range(1, 11)]
    assert record.lrs == pytest.approx(expected, rel=1e-12)


def test_ema_decay_schedule_matches_formula():
    assert ema_decay(0, max_decay=0.9999) == 0.0
    assert ema_decay(1, max_decay=0.9999) == pytest.approx(1 - 2 ** (-2 / 3))
    assert ema_decay(11, max_decay=0.9999, power=0.75, inv_gamma=2.0, warmup=1) == pytest.approx(1 - 6 ** -0.75)
    assert ema_decay(10**9, max_decay=0.999) == 0.999
    assert ema_decay(1, max_decay=0.999, min_decay=0.5) == 0.5
    assert ema_decay(3, max_decay=0.999, warmup=3) == 0.0


def test_ema_tracks_the_exact_moving_average_of_the_weights():
    record = Record()
    config = _config(steps=8, ema_decay=0.7, ema_min_decay=0.7, ema_warmup=2)
    trainer = Trainer(_model(), _mse, _data(), config, callbacks=[record]).fit()
    expected = None
    for step, params in enumerate(record.params, start=1):
        if step <= 2:
            expected = [p.clone() for p in params]
        else:
            expected = [0.7 * e + 0.3 * p for e, p in zip(expected, params, strict=True)]
    for e, p in zip(expected, trainer.ema_model.parameters(), strict=True):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    assert not any(p.requires_grad for p in trainer.ema_model.parameters())


def test_ema_copies_integer_buffers():
    model = nn.BatchNorm1d(3)
    ema = EMA(model, max_decay=0.9, min_decay=0.9)
    model.num_batches_tracked += 5
    model.running_mean += 1.0
    ema.update(model, step=10)
    assert int(ema.ema_model.num_batches_tracked) == 5
    torch.testing.assert_close(ema.ema_model.running_mean, torch.full((3,), 0.1))


# ---------------------------------------------------------------- data order
@pytest.mark.parametrize("world,accum", [(1, 1), (2, 1), (4, 1), (2, 3)])
def test_sampler_global_batches_are_the_same_blocks_for_any_world_size(world, accum):
    batch, n = 3, 50
    global_batch = batch * world * accum
    streams = []
    for rank in range(world):
        sampler = ResumableDistributedSampler(n, global_batch=global_batch, rank=rank, world_size=world, seed=7)
        sampler.set_epoch(2, start=global_batch)  # resume after one step of epoch 2
        streams.append(list(sampler))
        assert len(streams[-1]) == len(sampler)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(9)).tolist()
    steps = (n - global_batch) // global_batch
    for step in range(steps):
        got = sorted(i for s in streams for i in s[step * batch * accum:(step + 1) * batch * accum])
        want = sorted(order[(step + 1) * global_batch:(step + 2) * global_batch])
        assert got == want


@given(n=st.integers(1, 80), batch=st.integers(1, 5), world=st.integers(1, 4), accum=st.integers(1, 3),
       done=st.integers(0, 20), epoch=st.integers(0, 3))
def test_sampler_partitions_each_global_batch_among_ranks(n, batch, world, accum, done, epoch):
    global_batch = batch * world * accum
    if n < global_batch:
        with pytest.raises(ValueError, match="fewer than one global batch"):
            ResumableDistributedSampler(n, global_batch=global_batch)
        return
    start = min(done, n // global_batch) * global_batch
    streams = []
    for rank in range(world):
        sampler = ResumableDistributedSampler(n, global_batch=global_batch, rank=rank, world_size=world, seed=3)
        sampler.set_epoch(epoch, start)
        streams.append(list(sampler))
        assert len(streams[-1]) == sampler.steps_left() * batch * accum
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3 + epoch)).tolist()
    merged = sorted(i for s in streams for i in s)
    assert merged == sorted(order[start:start + (n - start) // global_batch * global_batch])


def test_grad_accumulation_equals_the_larger_batch():
    a = Trainer(_model(), _mse, _data(), _config(steps=10, batch_size=16, grad_accum=1)).fit()
    b = Trainer(_model(), _mse, _data(), _config(steps=10, batch_size=8, grad_accum=2)).fit()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_training_converges_and_writes_metrics(tmp_path):
    config = _config(tmp_path, steps=120, lr=3e-2, log_every=40, checkpoint_every=60, ema_decay=0.95)
    trainer = Trainer(_model(), _mse, _data(), config).fit()
    lines = [json.loads(s) for s in (tmp_path / "ckpt" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [40, 80, 120]
    assert lines[-1]["loss"] < 0.5 * lines[0]["loss"]
    x, y = _data()
    assert _mse(trainer.model, (x, y)).item() < 0.1 * _mse(_model(), (x, y)).item()
    assert {"lr", "grad_norm", "steps_per_s", "ema_decay", "skipped_steps", "epoch"} <= set(lines[0])
    assert trainer.step == 120 and trainer.epoch == 120 * 8 // 64


def test_bf16_autocast_trains_on_cpu():
    trainer = Trainer(_model(), _mse, _data(), _config(steps=30, mixed_precision="bf16", lr=3e-2)).fit()
    x, y = _data()
    assert _mse(trainer.model, (x, y)).item() < _mse(_model(), (x, y)).item()


def test_eval_fn_is_called_and_logged(tmp_path):
    calls = []

    def eval_fn(trainer):
        calls.append(trainer.step)
        return {"mse": 1.5}

    Trainer(_model(), _mse, _data(), _config(tmp_path, steps=9, eval_every=3), eval_fn=eval_fn).fit()
    assert calls == [3, 6, 9]
    lines = [json.loads(s) for s in (tmp_path / "ckpt" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "eval/mse" in r] == [3, 6, 9]


# ---------------------------------------------------------------- non-finite guard
class NaNLossAt:
    def __init__(self, steps):
        self.steps, self.calls = set(steps), 0

    def __call__(self, model, batch):
        self.calls += 1
        loss = _mse(model, batch)
        return loss * float("nan") if self.calls in self.steps else loss


def test_nan_loss_raises_naming_step_and_keeps_last_good_checkpoint(tmp_path):
    trainer = Trainer(_model(), NaNLossAt({5}), _data(), _config(tmp_path, steps=12))
    with pytest.raises(RuntimeError, match=r"step 5: the loss \(nan\)"):
        trainer.fit()
    root = tmp_path / "ckpt"
    assert [s for s, _ in ckpt.list_checkpoints(root)] == [2, 4]
    assert ckpt.latest_valid(root).name == "step-00000004"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nan_gradient_raises_naming_the_parameter():
    model = _model()
    calls = {"n": 0}

    def poison(grad):
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 3 else grad

    model[2].weight.register_hook(poison)
    with pytest.raises(RuntimeError, match=r"step 3: the gradient of parameter '2.weight'"):
        Trainer(model, _mse, _data(), _config(steps=6)).fit()


def test_skip_mode_skips_and_counts_nonfinite_steps(tmp_path):
    record = Record()
    trainer = Trainer(_model(), NaNLossAt({3, 6}), _data(), _config(tmp_path, steps=8, nonfinite="skip",
                                                                    log_every=8), callbacks=[record]).fit()
    assert trainer.skipped_steps == 2 and trainer.step == 8
    for skipped in (3, 6):  # the weights did not move on a skipped step
        for before, after in zip(record.params[skipped - 2], record.params[skipped - 1], strict=True):
            assert torch.equal(before, after)
    for before, after in zip(record.params[3], record.params[4], strict=True):
        assert not torch.equal(before, after)
    line = json.loads((tmp_path / "ckpt" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["skipped_steps"] == 2 and math.isfinite(line["loss"])  # the loss averages the good steps


# ---------------------------------------------------------------- checkpoints
def test_checkpoints_keep_last_and_contain_no_pickle(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "save", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "dump", forbidden)
    monkeypatch.setattr(pickle, "dumps", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    trainer = Trainer(_model(), _mse, _data(), _config(tmp_path, steps=10)).fit()
    root = tmp_path / "ckpt"
    assert [s for s, _ in ckpt.list_checkpoints(root)] == [6, 8, 10]
    assert not list(root.glob(".tmp-*"))
    files = {p.name for p in (root / "step-00000010").iterdir()}
    assert files == {"model.safetensors", "ema.safetensors", "optimizer.safetensors", "optimizer.json",
                     "trainer.json", "rng-rank0.safetensors", "rng-rank0.json", "manifest.json"}
    weights = load_file(str(root / "step-00000010" / "model.safetensors"))
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(weights[name], value)
    resumed = Trainer(_model(1), _mse, _data(), _config(tmp_path, steps=10))  # loads without pickle too
    assert resumed.step == 10


def test_corrupt_or_truncated_checkpoint_falls_back_to_previous_good_one(tmp_path):
    reference = Trainer(_model(), _mse, _data(), _config(tmp_path / "a", steps=10)).fit()
    root = tmp_path / "b" / "ckpt"
    Trainer(_model(), _mse, _data(), _config(tmp_path / "b", steps=10)).fit()
    model_file = root / "step-00000010" / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:-9])  # truncated
    optim_file = root / "step-00000008" / "optimizer.safetensors"
    data = bytearray(optim_file.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit pattern, same size
    optim_file.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = Trainer(_model(), _mse, _data(), _config(tmp_path / "b", steps=10))
    messages = [str(w.message) for w in caught]
    assert any("step-00000010" in m and "truncated" in m for m in messages)
    assert any("step-00000008" in m and "SHA-256" in m for m in messages)
    assert resumed.step == 6
    resumed.fit()
    for p, q in zip(reference.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(reference.ema_model.parameters(), resumed.ema_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_resume_true_without_checkpoint_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match="no valid checkpoint"):
        Trainer(_model(), _mse, _data(), _config(tmp_path), resume=True)


def test_missing_manifest_is_reported(tmp_path):
    (tmp_path / "step-00000001").mkdir()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        ckpt.verify(tmp_path / "step-00000001")


def test_state_encoding_round_trips_without_pickle():
    state = {"state": {0: {"step": torch.tensor(3.0), "m": torch.randn(2, 2)}},
             "groups": [{"betas": (0.9, 0.99), "lr": float("inf"), "params": [0, 1], "fused": None}]}
    tensors = {}
    document = json.loads(json.dumps(ckpt.encode_state(state, tensors)))
    back = ckpt.decode_state(document, tensors)
    assert back["groups"] == state["groups"] and torch.equal(back["state"][0]["m"], state["state"][0]["m"])
    with pytest.raises(TypeError, match="without pickle"):
        ckpt.encode_state({"f": object()}, {})


def test_rng_states_round_trip():
    import random

    tensors, document = ckpt.rng_state()
    document = json.loads(json.dumps(document))
    a = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    ckpt.set_rng_state(tensors, document)
    b = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_progress_bar_shows_loss_rate_and_eta_on_a_terminal_only(monkeypatch, capsys):
    from polydiff.core import progress

    Trainer(_model(), _mse, _data(), _config(steps=8, progress=True, log_every=4)).fit()
    assert capsys.readouterr().err == ""  # a log (pytest's capture is not a terminal) gets no redrawn bar
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    Trainer(_model(), _mse, _data(), _config(steps=8, progress=True, log_every=4)).fit()
    err = capsys.readouterr().err
    assert "8/8" in err and "loss=" in err and "step/s" in err and "<" in err  # elapsed<remaining (ETA)


def test_dataloader_workers_see_the_same_batches():
    a = Trainer(_model(), _mse, _data(), _config(steps=10)).fit()
    b = Trainer(_model(), _mse, _data(), _config(steps=10, num_workers=2)).fit()
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_dict_loss_entries_are_logged(tmp_path):
    def loss_fn(model, batch):
        loss = _mse(model, batch)
        return {"loss": loss, "half": 0.5 * loss.detach()}

    Trainer(_model(), loss_fn, _data(), _config(tmp_path, steps=4, log_every=4)).fit()
    line = json.loads((tmp_path / "ckpt" / "metrics.jsonl").read_text())
    assert line["half"] == pytest.approx(0.5 * line["loss"], rel=1e-6)


def test_resume_with_a_different_dataset_warns(tmp_path):
    Trainer(_model(), _mse, _data(), _config(tmp_path, steps=4)).fit()
    with pytest.warns(RuntimeWarning, match="the dataset has 48 samples"):
        Trainer(_model(), _mse, _data(48), _config(tmp_path, steps=8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["no", "bf16", "fp16"])
def test_cuda_mixed_precision_trains_and_resumes(tmp_path, precision):
    config = _config(tmp_path, steps=40, lr=3e-2, device="cuda", mixed_precision=precision, checkpoint_every=20)
    trainer = Trainer(_model(), _mse, _data(), config).fit()
    assert next(trainer.model.parameters()).is_cuda and (trainer.scaler is not None) == (precision == "fp16")
    x, y = _data()
    assert _mse(trainer.model.cpu(), (x, y)).item() < 0.5 * _mse(_model(), (x, y)).item()
    resumed = Trainer(_model(), _mse, _data(), _config(tmp_path, steps=40, device="cuda",
                                                       mixed_precision=precision, checkpoint_every=20))
    assert resumed.step == 40
    for p, q in zip(trainer.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p.cpu(), q.cpu())
