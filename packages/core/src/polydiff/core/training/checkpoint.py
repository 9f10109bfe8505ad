"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else, checked on load.

Layout of ``checkpoint_dir``::

    step-00001000/                 one complete checkpoint per directory
        model.safetensors          model weights (shared tensors stored once)
        ema.safetensors            EMA weights (when the run keeps an EMA)
        optimizer.safetensors      optimizer state tensors;  optimizer.json: the rest of its state_dict
        trainer.json               step, epoch, sampler position, LR-scheduler and grad-scaler state, config
        rng-rank0.safetensors      torch CPU (and CUDA) generator states of rank 0;  rng-rank0.json: numpy, random
        manifest.json              SHA-256 and size of every other file; written last
    metrics.jsonl

A checkpoint is written into ``.tmp-step-...``, every file fsynced, then the directory is renamed into place
(``os.replace`` is atomic on POSIX) and the parent directory fsynced: a run killed at any instant leaves either
the whole checkpoint or none. On load the manifest is checked; a checkpoint that fails the check is reported by
name (``warnings.warn``) and the next older one is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ..pretrained import replace_directory

__all__ = [
    "CheckpointError", "encode_state", "decode_state", "write_json", "write_tensors", "read_json",
    "finalize", "verify", "list_checkpoints", "latest_valid", "prune", "tmp_dir_for", "rng_state", "set_rng_state",
    "save_module", "load_module", "FORMAT_VERSION",
]

FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})$")


class CheckpointError(RuntimeError):
    pass


# ---------------------------------------------------------------- encoding state dicts as JSON + tensors
def encode_state(value, tensors: dict, key: str = "s"):
    """A JSON-able copy of ``value`` whose tensors are moved into ``tensors`` (name -> tensor) by reference.

    Handles nested dicts (any hashable JSON-scalar keys), lists, tuples, None/bool/int/float/str and non-finite
    floats; raises TypeError for anything else, so nothing is ever pickled.
    """
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (np.integer, np.floating)):
        return encode_state(value.item(), tensors, key)
    if isinstance(value, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_state(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode_state(v, tensors, f"{key}.{k}") for k, v in value.items()}
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"encode_state: dict key {k!r} at {key} is not a JSON scalar")
            items.append([k, encode_state(v, tensors, f"{key}.{k}")])
        return {"__items__": items}
    raise TypeError(f"encode_state: {type(value).__name__} at {key} cannot be stored without pickle")


def decode_state(value, tensors: dict):
    """Inverse of :func:`encode_state`."""
    if isinstance(value, list):
        return [decode_state(v, tensors) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        if set(value) == {"__tuple__"}:
            return tuple(decode_state(v, tensors) for v in value["__tuple__"])
        if set(value) == {"__items__"}:
            return {k: decode_state(v, tensors) for k, v in value["__items__"]}
        return {k: decode_state(v, tensors) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- durable file writes
def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, document) -> None:
    with open(path, "w") as handle:
        json.dump(document, handle, indent=1, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())


def read_json(path: Path):
    with open(path) as handle:
        return json.load(handle)


def write_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    save_file(tensors, str(path), metadata=metadata)
    _fsync_file(path)


def save_module(module: torch.nn.Module, path: Path) -> None:
    """Weights of ``module`` (tied tensors stored once) to a safetensors file, fsynced."""
    save_model(module, str(path))
    _fsync_file(path)


def load_module(module: torch.nn.Module, path: Path) -> None:
    missing, unexpected = load_model(module, str(path), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the model (missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- checkpoint directories
def tmp_dir_for(root: Path, step: int) -> Path:
    return root / f".tmp-step-{step:08d}"


def finalize(root: Path, step: int) -> Path:
    """Write the manifest into the temp dir of ``step`` and rename it into place; returns the final path."""
    tmp = tmp_dir_for(root, step)
    files = {}
    for path in sorted(tmp.iterdir()):
        if path.name != "manifest.json":
            files[path.name] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    write_json(tmp / "manifest.json", {"format": "polydiff-checkpoint", "format_version": FORMAT_VERSION,
                                       "step": step, "files": files})
    _fsync_dir(tmp)
    final = root / f"step-{step:08d}"
    # rewriting a step (resume=False over an old run) moves the old one out of the way first
    replace_directory(tmp, final, root / f".old-step-{step:08d}")
    _fsync_dir(root)
    return final


def verify(path: Path) -> None:
    """Raise CheckpointError saying what is wrong unless every file matches the manifest."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise CheckpointError(f"{path}: no manifest.json")
    try:
        manifest = read_json(manifest_path)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable manifest.json ({error})") from error
    if manifest.get("format") != "polydiff-checkpoint" or manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: manifest format {manifest.get('format')!r} version "
                              f"{manifest.get('format_version')!r}; expected polydiff-checkpoint {FORMAT_VERSION}")
    for name, entry in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{path}: {name} is missing")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise CheckpointError(f"{path}: {name} has {size} bytes, manifest says {entry['bytes']} (truncated?)")
        if _sha256(file) != entry["sha256"]:
            raise CheckpointError(f"{path}: {name} fails its SHA-256 check (corrupt)")


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``step-*`` directory, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def latest_valid(root: Path) -> Path | None:
    """Newest checkpoint that passes :func:`verify`; every newer one that fails is reported with a warning."""
    for _, path in reversed(list_checkpoints(root)):
        try:
            verify(path)
            return path
        except CheckpointError as error:
            warnings.warn(f"skipping bad checkpoint {path.name}: {error}", RuntimeWarning, stacklevel=2)
    return None


def prune(root: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints, and stale temp dirs."""
    for _, path in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def clean_temp(root: Path) -> None:
    for path in root.glob(".tmp-step-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".old-step-*"):
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- random number generators
def rng_state() -> tuple[dict, dict]:
    """(tensors, json) holding torch CPU/CUDA, numpy and python ``random`` generator states."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{index}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the legacy global state is what user code draws from)
    document = {
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": encode_state(random.getstate(), {}),
    }
    return tensors, document


def set_rng_state(tensors: dict, document: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted((k for k in tensors if k.startswith("torch_cuda_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    if cuda and torch.cuda.is_available():
        count = torch.cuda.device_count()
        for key in cuda:
            index = int(key.rsplit("_", 1)[1])
            if index < count:
                torch.cuda.set_rng_state(tensors[key], index)
    state = document["numpy"]
    np.random.set_state((state["kind"], np.asarray(state["keys"], dtype=np.uint32), state["pos"],  # noqa: NPY002
                         state["has_gauss"], state["cached_gaussian"]))
    python = decode_state(document["python"], {})
    random.setstate((python[0], tuple(python[1]), python[2]))


def load_tensors(path: Path) -> dict:
    return load_file(str(path))
