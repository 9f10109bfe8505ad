"""save_pretrained / load_pretrained / PretrainedMixin: round trips, schedules in configs, clear refusals."""

import json
import pickle

import pytest
import torch
from torch import nn

from polydiff.core.pretrained import PretrainedMixin, load_pretrained, read_config, save_pretrained
from polydiff.core.schedules import DiscreteSchedule, VPCosineSchedule, linear_betas


class TiedNet(PretrainedMixin, nn.Module):
    def __init__(self, width: int, schedule=None, depth: int = 2):
        super().__init__()
        self.config = {"width": width, "schedule": schedule, "depth": depth}
        self.schedule = schedule
        self.embed = nn.Embedding(10, width)
        self.body = nn.Sequential(*(nn.Linear(width, width) for _ in range(depth)))
        self.head = nn.Linear(width, 10, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, idx):
        return self.head(self.body(self.embed(idx)) * self.scale)


class Other(PretrainedMixin, nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.lin = nn.Linear(width, width)

    def pretrained_config(self):
        return {"width": self.lin.in_features}


def test_round_trip_with_tied_weights_and_a_schedule(tmp_path):
    torch.manual_seed(0)
    schedule = DiscreteSchedule(linear_betas(50))
    net = TiedNet(8, schedule=schedule, depth=3)
    with torch.no_grad():
        net.scale.fill_(3.0)
    net.save_pretrained(tmp_path / "m", metadata={"step": 7})
    back = TiedNet.from_pretrained(tmp_path / "m")
    assert not back.training and back.head.weight is back.embed.weight
    for (name, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert isinstance(back.schedule, DiscreteSchedule)
    t = torch.linspace(0.02, 1.0, 9, dtype=torch.float64)
    assert torch.equal(back.schedule.log_snr(t), schedule.log_snr(t))
    idx = torch.tensor([1, 2, 3])
    assert torch.equal(back(idx), net.eval()(idx))
    document = read_config(tmp_path / "m")
    assert document["metadata"] == {"step": 7} and document["class"].endswith("TiedNet")


def test_files_are_json_and_safetensors_only(tmp_path, monkeypatch):
    monkeypatch.setattr(pickle, "dump", lambda *a, **k: pytest.fail("pickle used"))
    monkeypatch.setattr(torch, "save", lambda *a, **k: pytest.fail("torch.save used"))
    save_pretrained(Other(3), tmp_path / "o", {"width": 3})
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert config["format_version"] == 1 and config["config"] == {"width": 3} and "polydiff_version" in config
    assert not list(tmp_path.glob(".*"))  # the temp dir was renamed away


def test_overwrite_replaces_atomically(tmp_path):
    Other(3).save_pretrained(tmp_path / "o")
    Other(5).save_pretrained(tmp_path / "o")
    assert Other.from_pretrained(tmp_path / "o").lin.in_features == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_wrong_class_is_refused(tmp_path):
    Other(3).save_pretrained(tmp_path / "o")
    with pytest.raises(ValueError, match=r"holds a .*Other, not a .*TiedNet"):
        TiedNet.from_pretrained(tmp_path / "o")


def test_other_format_version_is_refused(tmp_path):
    Other(3).save_pretrained(tmp_path / "o")
    path = tmp_path / "o" / "config.json"
    document = json.loads(path.read_text())
    document["format_version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="format version 99.*reads format version 1"):
        load_pretrained(Other, tmp_path / "o")


def test_not_a_pretrained_directory(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_pretrained(Other, tmp_path)


def test_mismatched_weights_are_refused(tmp_path):
    Other(3).save_pretrained(tmp_path / "o")
    path = tmp_path / "o" / "config.json"
    document = json.loads(path.read_text())
    document["config"]["width"] = 4
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="do not fit"):
        Other.from_pretrained(tmp_path / "o")


def test_unserialisable_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"config\['f'\]: function"):
        save_pretrained(Other(3), tmp_path / "o", {"f": lambda: 0})
    assert not (tmp_path / "o").exists()


def test_schedule_config_round_trip_for_continuous_schedule(tmp_path):
    net = TiedNet(4, schedule=VPCosineSchedule())
    net.save_pretrained(tmp_path / "m")
    assert isinstance(TiedNet.from_pretrained(tmp_path / "m").schedule, VPCosineSchedule)


def test_core_nn_modules_with_config_dict_round_trip(tmp_path):
    from polydiff.core.nn import MLPDenoiser  # a PretrainedMixin through its `config` dict

    model = MLPDenoiser(in_features=3, hidden=(16, 16), time_embedding_dim=8)
    model.save_pretrained(tmp_path / "mlp")
    back = MLPDenoiser.from_pretrained(tmp_path / "mlp")
    x, t = torch.randn(5, 3), torch.rand(5)
    assert torch.equal(back(x, t), model.eval()(x, t))


# ------------------------------------------------------------------------------ a save never destroys data


def _tree(root):
    """{relative path: bytes} of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_save_into_a_trainer_checkpoint_dir_keeps_its_checkpoints(tmp_path):
    """Before: the save replaced the whole folder, deleting every step-* checkpoint and metrics.jsonl."""
    from polydiff.core.training import TrainConfig, Trainer

    data = (torch.randn(32, 3), torch.randn(32, 3))
    model = Other(3)
    config = TrainConfig(steps=4, batch_size=8, lr=1e-2, device="cpu", log_every=1, checkpoint_every=2,
                         checkpoint_dir=str(tmp_path / "run"))
    Trainer(model, lambda m, b: ((m.lin(b[0]) - b[1]) ** 2).mean(), data, config).fit()
    before = _tree(tmp_path / "run")
    assert any(name.startswith("step-") for name in before) and "metrics.jsonl" in before
    model.save_pretrained(tmp_path / "run")
    after = _tree(tmp_path / "run")
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == ["config.json", "model.safetensors"]
    assert torch.equal(Other.from_pretrained(tmp_path / "run").lin.weight, model.lin.weight)
    Other(3).save_pretrained(tmp_path / "run")  # a second save replaces only its own two files
    assert {k: v for k, v in _tree(tmp_path / "run").items() if k in before} == before


def test_save_into_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    model = Other(4)
    save_pretrained(model, ".", {"width": 4})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "notes.txt"]
    assert torch.equal(load_pretrained(Other, ".").lin.bias, model.lin.bias)


def test_a_failed_save_leaves_the_previous_model_intact(tmp_path, monkeypatch):
    from polydiff.core import pretrained

    Other(3).save_pretrained(tmp_path / "o")
    before = _tree(tmp_path)

    def half_written(module, path):
        with open(path, "wb") as handle:
            handle.write(b"\x00" * 10)
        raise OSError("disk full")

    monkeypatch.setattr(pretrained, "save_model", half_written)
    with pytest.raises(OSError, match="disk full"):
        Other(5).save_pretrained(tmp_path / "o")
    assert _tree(tmp_path) == before  # the old pair, and no temporary file left behind
    assert Other.from_pretrained(tmp_path / "o").lin.in_features == 3
    with pytest.raises(OSError):
        Other(5).save_pretrained(tmp_path / "new" / "o")
    assert not (tmp_path / "new").exists()  # folders made for a failed save are removed again


def test_a_crash_between_the_two_renames_is_detected_on_load(tmp_path, monkeypatch):
    """The weights are renamed first, the config last; a crash in between leaves new weights beside the old
    config, which records the old weights' size and SHA-256: loading refuses the mixed pair by name."""
    from polydiff.core import pretrained

    Other(3).save_pretrained(tmp_path / "o")
    real_replace = pretrained.os.replace
    calls = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between the renames
        real_replace(src, dst)

    monkeypatch.setattr(pretrained.os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        Other(3).save_pretrained(tmp_path / "o")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(ValueError, match=r"model\.safetensors fails the SHA-256 check .*another save"):
        Other.from_pretrained(tmp_path / "o")
    Other(3).save_pretrained(tmp_path / "o")  # the next save repairs it
    Other.from_pretrained(tmp_path / "o")


def test_a_save_during_a_load_is_waited_out(tmp_path, monkeypatch):
    """A reader that overlaps a save retries and returns one consistent model (never old config + new weights)."""
    from polydiff.core import pretrained

    Other(3).save_pretrained(tmp_path / "o")
    newer = Other(3)
    real_load = pretrained.load_model
    calls = []

    def load_while_saving(module, path, **kwargs):
        if not calls:
            newer.save_pretrained(tmp_path / "o")  # lands between the reader's config read and weights read
        calls.append(path)
        return real_load(module, path, **kwargs)

    monkeypatch.setattr(pretrained, "load_model", load_while_saving)
    loaded = Other.from_pretrained(tmp_path / "o")
    assert len(calls) == 2 and torch.equal(loaded.lin.weight, newer.lin.weight)


def test_atomic_write_files_writes_a_set_and_touches_nothing_else(tmp_path):
    from safetensors.torch import load_file, save_file

    from polydiff.core.pretrained import atomic_write_files, check_file_digest

    (tmp_path / "keep.txt").write_text("keep")
    tensors = {"a": torch.arange(4.0)}
    digests = atomic_write_files(tmp_path, {"weights.safetensors": lambda path: save_file(tensors, str(path)),
                                            "meta.json": '{"n": 4}'})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "meta.json", "weights.safetensors"]
    assert torch.equal(load_file(str(tmp_path / "weights.safetensors"))["a"], tensors["a"])
    check_file_digest(tmp_path / "weights.safetensors", digests["weights.safetensors"], tmp_path / "meta.json")

    def failing(path):
        path.write_bytes(b"partial")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        atomic_write_files(tmp_path, {"meta.json": "{}", "weights.safetensors": failing})
    assert (tmp_path / "meta.json").read_text() == '{"n": 4}'  # neither file was replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "meta.json", "weights.safetensors"]
    for name in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="files: .* is not a plain file name"):
            atomic_write_files(tmp_path, {name: b""})
    with pytest.raises(ValueError, match="directory: .*keep.txt exists and is not a directory"):
        atomic_write_files(tmp_path / "keep.txt", {"a": b""})
