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
    nn_module = pytest.importorskip("polydiff.core.nn")
    model_cls = type("MLP", (PretrainedMixin, nn_module.MLPDenoiser), {"__module__": __name__})
    globals()["MLP"] = model_cls  # so class_path names an importable class
    model = model_cls(in_features=3, hidden=(16, 16), time_embedding_dim=8)
    model.save_pretrained(tmp_path / "mlp")
    back = model_cls.from_pretrained(tmp_path / "mlp")
    x, t = torch.randn(5, 3), torch.rand(5)
    assert torch.equal(back(x, t), model.eval()(x, t))
