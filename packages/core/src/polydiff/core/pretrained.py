"""Save and load trained polydiff modules: a JSON config plus safetensors weights, never pickle.

A pretrained directory holds::

    config.json        {"format": "polydiff-pretrained", "format_version": 1, "class": "pkg.module.Class",
                        "polydiff_version": "0.1.0", "config": {constructor kwargs}, "metadata": {...}}
    model.safetensors  the state_dict (tied tensors stored once)

``load_pretrained(cls, dir)`` rebuilds ``cls(**config)`` and loads the weights strictly. Noise schedules inside
the config are stored as ``{"__schedule__": schedule.config()}`` and rebuilt with
:func:`polydiff.core.schedules.schedule_from_config`. The directory is written next to its destination and
renamed into place, so a reader never sees half a model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from .schedules import NoiseSchedule, schedule_from_config

__all__ = ["save_pretrained", "load_pretrained", "PretrainedMixin", "FORMAT_VERSION", "class_path"]

FORMAT_VERSION = 1
_CONFIG, _WEIGHTS = "config.json", "model.safetensors"


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _polydiff_version() -> str:
    from . import __version__

    return __version__


def _encode(value, where: str):
    if isinstance(value, NoiseSchedule):
        return {"__schedule__": value.config()}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"config{where}: keys must be strings, got {list(value)!r}")
        return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"config{where}: {type(value).__name__} is not JSON-serialisable (allowed: numbers, strings, "
                     "bools, None, lists, dicts and noise schedules)")


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"__schedule__"}:
            return schedule_from_config(value["__schedule__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def replace_directory(tmp: Path, target: Path, old: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``; an existing ``target`` is first renamed to ``old`` and
    removed only after the swap, so a crash never leaves neither of them on disk."""
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some platforms cannot fsync a directory
        pass
    finally:
        os.close(fd)


def save_pretrained(module: nn.Module, directory: str | Path, config: dict, *, metadata: dict | None = None) -> Path:
    """Write ``module``'s weights and ``config`` (the kwargs that rebuild it: ``type(module)(**config)``).

    metadata: optional JSON-serialisable extras (training step, data statistics...), returned by
    :func:`read_config`. Returns the directory path.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module: expected an nn.Module, got {type(module).__name__}")
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a dict of constructor arguments, got {type(config).__name__}")
    document = {
        "format": "polydiff-pretrained", "format_version": FORMAT_VERSION, "class": class_path(type(module)),
        "polydiff_version": _polydiff_version(), "config": _encode(config, ""),
        "metadata": _encode(metadata or {}, "(metadata)"),
    }
    text = json.dumps(document, indent=1, allow_nan=False)
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(module, str(tmp / _WEIGHTS))
        (tmp / _CONFIG).write_text(text)
        for name in (_WEIGHTS, _CONFIG):
            _fsync(tmp / name)
        _fsync(tmp)
        replace_directory(tmp, target, target.with_name(f".{target.name}.old-{os.getpid()}"))
        _fsync(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_config(directory: str | Path) -> dict:
    """The checked ``config.json`` document of a pretrained directory (config and metadata decoded)."""
    path = Path(directory) / _CONFIG
    if not path.is_file():
        raise ValueError(f"directory: {directory} holds no {_CONFIG}; not a polydiff pretrained directory")
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"directory: {path} is not valid JSON ({error})") from error
    if document.get("format") != "polydiff-pretrained":
        raise ValueError(f"directory: {path} has format {document.get('format')!r}, expected 'polydiff-pretrained'")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"directory: {directory} was written with pretrained format version "
                         f"{document.get('format_version')!r} (polydiff {document.get('polydiff_version')}); this "
                         f"polydiff {_polydiff_version()} reads format version {FORMAT_VERSION}")
    document["config"] = _decode(document["config"])
    document["metadata"] = _decode(document.get("metadata", {}))
    return document


def load_pretrained(cls: type, directory: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild ``cls(**config)`` from ``directory`` and load its weights (strict); returned in eval mode.

    Raises ValueError when the directory is not a polydiff pretrained directory, has another format version, or
    was saved from a different class.
    """
    document = read_config(directory)
    if document["class"] != class_path(cls):
        raise ValueError(f"cls: {directory} holds a {document['class']}, not a {class_path(cls)}")
    module = cls(**document["config"])
    try:
        missing, unexpected = load_model(module, str(Path(directory) / _WEIGHTS), strict=False, device=str(device))
    except RuntimeError as error:  # shape mismatches
        raise ValueError(f"directory: weights in {directory} do not fit {class_path(cls)}: {error}") from error
    if missing or unexpected:
        raise ValueError(f"directory: weights in {directory} do not fit {class_path(cls)} (missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    return module.to(device).eval()


class PretrainedMixin:
    """Gives an nn.Module ``save_pretrained(dir)`` and ``cls.from_pretrained(dir)``.

    The constructor kwargs are found in this order: a ``pretrained_config()`` method, a ``config`` dict
    attribute (the polydiff.core.nn convention), or a ``config()`` method (the schedules' convention).
    """

    def pretrained_config(self) -> dict:
        config = getattr(self, "config", None)
        if isinstance(config, dict):
            return dict(config)
        if callable(config):
            return config()
        raise ValueError(f"{type(self).__name__}: define pretrained_config() or a `config` dict of the "
                         "constructor arguments to use save_pretrained")

    def save_pretrained(self, directory: str | Path, *, metadata: dict | None = None) -> Path:
        return save_pretrained(self, directory, self.pretrained_config(), metadata=metadata)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu"):
        return load_pretrained(cls, directory, device=device)
