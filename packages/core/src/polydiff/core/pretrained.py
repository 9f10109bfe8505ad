"""Save and load trained polydiff modules: a JSON config plus safetensors weights, never pickle.

A pretrained directory holds::

    config.json        {"format": "polydiff-pretrained", "format_version": 1, "class": "pkg.module.Class",
                        "polydiff_version": "0.1.0", "config": {constructor kwargs}, "metadata": {...},
                        "weights": {"sha256": ..., "bytes": ...}}
    model.safetensors  the state_dict (tied tensors stored once)

``load_pretrained(cls, dir)`` rebuilds ``cls(**config)`` and loads the weights strictly. Noise schedules inside
the config are stored as ``{"__schedule__": schedule.config()}`` and rebuilt with
:func:`polydiff.core.schedules.schedule_from_config`.

A save touches nothing in the directory but its own two files, so a model can be saved into a folder that holds
other things (a Trainer's ``checkpoint_dir``, the current directory). :func:`atomic_write_files` writes both to
temporary names in the directory, fsyncs them, then renames the weights and, last, the config into place. The
config records the size and SHA-256 of the weights it belongs to and the loader checks them, so a reader never
takes weights from one save and the config of another (a crash between the two renames, two concurrent saves),
nor a truncated or corrupt weights file. A directory whose ``config.json`` polydiff did not write is refused.
Anything wrong with a directory on load is a ValueError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from .schedules import NoiseSchedule, schedule_from_config

__all__ = ["save_pretrained", "load_pretrained", "read_config", "PretrainedMixin", "FORMAT_VERSION", "class_path",
           "atomic_write_files", "AtomicFiles", "file_digest", "check_file_digest"]

FORMAT_VERSION = 1
FORMAT = "polydiff-pretrained"
_CONFIG, _WEIGHTS = "config.json", "model.safetensors"
_REQUIRED_KEYS = ("format", "format_version", "class", "polydiff_version", "config", "metadata")
_OPTIONAL_KEYS = ("weights",)  # absent in directories written before the weights were checksummed


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


# ------------------------------------------------------------------------------- durable, atomic file sets


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some platforms cannot fsync a directory
        pass
    finally:
        os.close(fd)


def file_digest(path: str | Path) -> dict:
    """{"sha256": hex digest, "bytes": size} of a file: what a config records about the files it belongs with."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "bytes": size}


def check_file_digest(path: str | Path, expected: dict, written_by: str | Path) -> None:
    """ValueError naming ``path`` unless its size and SHA-256 are ``expected`` (a :func:`file_digest`), as recorded
    in ``written_by`` (the config that was saved with it)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"directory: {path} is missing ({written_by} was saved with it)")
    size = path.stat().st_size
    if size != expected.get("bytes"):
        raise ValueError(f"directory: {path} has {size} bytes, {written_by} was saved with {expected.get('bytes')} "
                         "(truncated, or written by another save)")
    if file_digest(path)["sha256"] != expected.get("sha256"):
        raise ValueError(f"directory: {path} fails the SHA-256 check recorded in {written_by} (corrupt, or written "
                         "by another save)")


def _check_file_name(name: str) -> None:
    if not isinstance(name, str) or not name or name in (".", "..") or name.startswith(".") or "/" in name \
            or os.sep in name or (os.altsep is not None and os.altsep in name):
        raise ValueError(f"files: {name!r} is not a plain file name (no folders, not hidden)")


class AtomicFiles:
    """Write a set of files into one directory so that they replace their old versions together, touching
    nothing else there. Use as a context manager::

        with AtomicFiles(directory) as files:
            files.write("model.safetensors", lambda path: save_file(tensors, str(path)))
            files.write("config.json", json.dumps({..., "weights": files.digest("model.safetensors")}))

    ``write(name, content)`` writes ``content`` (bytes, str, or a function ``writer(path)`` that writes the file at
    ``path``) to a hidden temporary file in the directory and fsyncs it. On a clean exit every file is renamed
    over its final name, in the order written, and the directory is fsynced; on an exception the temporary files
    are deleted and the old files stay as they were (a directory this made is removed again if left empty).

    The renames are atomic one by one, not as a set: write the file that describes the others last, and record
    their :meth:`digest` in it, so a reader can tell a mixed set (see :func:`check_file_digest`).
    The directory is created if missing; a path that exists and is not a directory is a ValueError naming it.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"directory: {self.directory} exists and is not a directory")
        self._pending: dict[str, Path] = {}
        self._created: Path | None = None

    def __enter__(self) -> AtomicFiles:
        if not self.directory.is_dir():
            missing = self.directory
            while not missing.parent.exists() and missing.parent != missing:
                missing = missing.parent
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as error:
                raise ValueError(f"directory: cannot create {self.directory} ({error})") from error
            self._created = missing
        return self

    def write(self, name: str, content: bytes | str | Callable[[Path], None]) -> None:
        _check_file_name(name)
        if name in self._pending:
            raise ValueError(f"files: {name!r} written twice")
        final = self.directory / name
        if final.is_dir() and not final.is_symlink():
            raise ValueError(f"directory: {final} is a directory; it cannot be replaced by a file")
        tmp = self.directory / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        self._pending[name] = tmp
        if isinstance(content, str):
            content = content.encode()
        if isinstance(content, (bytes, bytearray, memoryview)):
            with open(tmp, "wb") as handle:
                handle.write(content)
        elif callable(content):
            content(tmp)
            if not tmp.is_file():
                raise ValueError(f"files: the writer of {name!r} wrote no file at the path it was given")
        else:
            raise ValueError(f"files: the content of {name!r} must be bytes, str or a writer(path) function, got "
                             f"{type(content).__name__}")
        _fsync(tmp)

    def digest(self, name: str) -> dict:
        """:func:`file_digest` of a file written in this set (before it is renamed into place)."""
        if name not in self._pending:
            raise ValueError(f"files: {name!r} has not been written in this set")
        return file_digest(self._pending[name])

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            try:
                for name, tmp in list(self._pending.items()):
                    os.replace(tmp, self.directory / name)
                    del self._pending[name]
                _fsync(self.directory)
            finally:  # a rename that failed leaves no temporary file behind
                for tmp in self._pending.values():
                    tmp.unlink(missing_ok=True)
            return
        for tmp in self._pending.values():
            tmp.unlink(missing_ok=True)
        if self._created is not None:  # remove the folders this made, if nothing else was put there
            folder = self.directory
            while True:
                try:
                    folder.rmdir()
                except OSError:
                    break
                if folder == self._created:
                    break
                folder = folder.parent


def atomic_write_files(directory: str | Path, files: Mapping[str, bytes | str | Callable[[Path], None]]) -> dict:
    """Write ``files`` ({file name: bytes, str or writer(path)}) into ``directory`` as one set, touching nothing
    else in it: all of them replace their old versions or, on an error, none does (see :class:`AtomicFiles`; the
    renames follow the mapping's order, so put the file that describes the others last). Returns {name:
    :func:`file_digest`} of the written files."""
    if not isinstance(files, Mapping) or not files:
        raise ValueError("files: expected a non-empty mapping of file name to content")
    with AtomicFiles(directory) as writer:
        digests = {}
        for name, content in files.items():
            writer.write(name, content)
            digests[name] = writer.digest(name)
    return digests


def replace_directory(tmp: Path, target: Path, old: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``; an existing ``target`` is first renamed to ``old`` and
    removed only after the swap, so a crash never leaves neither of them on disk. (The training checkpoints'
    swap: a checkpoint directory belongs wholly to its step. ``save_pretrained`` does not use it: it must not
    replace the other contents of the folder it saves into.)"""
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


# ------------------------------------------------------------------------------------------------- saving


def _check_not_foreign(directory: Path) -> None:
    """ValueError when ``directory`` holds a config.json that is not a polydiff pretrained config: saving would
    overwrite another tool's (or another polydiff format's) model."""
    path = directory / _CONFIG
    if not path.exists() and not path.is_symlink():
        return
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        document = None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        what = f"format {document.get('format')!r}" if isinstance(document, dict) else "not a polydiff config"
        raise ValueError(f"directory: {path} was not written by save_pretrained ({what}); saving would overwrite "
                         "it. Choose another directory or remove that file")


def save_pretrained(module: nn.Module, directory: str | Path, config: dict, *, metadata: dict | None = None) -> Path:
    """Write ``module``'s weights and ``config`` (the kwargs that rebuild it: ``type(module)(**config)``) into
    ``directory`` as ``model.safetensors`` and ``config.json``, replacing only those two files, atomically as a
    pair (see the module docstring). The directory is created if needed; other files in it are left alone.

    metadata: optional JSON-serialisable extras (training step, data statistics...), returned by
    :func:`read_config`. Returns the directory path. Raises ValueError (before writing anything) when
    ``directory`` is an existing file, or holds a ``config.json`` that save_pretrained did not write.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module: expected an nn.Module, got {type(module).__name__}")
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a dict of constructor arguments, got {type(config).__name__}")
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class": class_path(type(module)),
        "polydiff_version": _polydiff_version(), "config": _encode(config, ""),
        "metadata": _encode(metadata or {}, "(metadata)"),
    }
    try:
        json.dumps(document, allow_nan=False)
    except ValueError as error:
        raise ValueError(f"config, metadata: not JSON-serialisable ({error}; NaN and inf are not allowed)") from error
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise ValueError(f"directory: {target} exists and is a file, not a directory; save_pretrained writes a "
                         f"folder ({_CONFIG}, {_WEIGHTS})")
    _check_not_foreign(target)
    with AtomicFiles(target) as files:
        files.write(_WEIGHTS, lambda path: save_model(module, str(path)))
        document["weights"] = files.digest(_WEIGHTS)
        files.write(_CONFIG, json.dumps(document, indent=1, allow_nan=False))  # renamed last: it commits the pair
    return target


# ------------------------------------------------------------------------------------------------ loading


def read_config(directory: str | Path) -> dict:
    """The checked ``config.json`` document of a pretrained directory (config and metadata decoded).

    ValueError naming the file for a missing file, bad JSON, another format or format version, a missing or
    unknown key, or a config that does not decode."""
    directory = Path(directory)
    path = directory / _CONFIG
    if directory.is_file():
        raise ValueError(f"directory: {directory} is a file; expected a folder written by save_pretrained")
    if not path.is_file():
        raise ValueError(f"directory: {directory} holds no {_CONFIG}; not a polydiff pretrained directory")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"directory: {path} is not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise ValueError(f"directory: {path} holds a JSON {type(document).__name__}, expected an object")
    if document.get("format") != FORMAT:
        raise ValueError(f"directory: {path} has format {document.get('format')!r}, expected {FORMAT!r}")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"directory: {directory} was written with pretrained format version "
                         f"{document.get('format_version')!r} (polydiff {document.get('polydiff_version')}); this "
                         f"polydiff {_polydiff_version()} reads format version {FORMAT_VERSION}")
    missing = [key for key in _REQUIRED_KEYS if key not in document]
    unknown = sorted(set(document) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if missing or unknown:
        raise ValueError(f"directory: {path} has missing keys {missing} and unknown keys {unknown}; expected "
                         f"{list(_REQUIRED_KEYS)} and optionally {list(_OPTIONAL_KEYS)}")
    expected_types = {"class": str, "polydiff_version": str, "config": dict, "metadata": dict, "weights": dict}
    for key, kind in expected_types.items():
        if key in document and not isinstance(document[key], kind):
            raise ValueError(f"directory: {path}: '{key}' must be a JSON {kind.__name__}, got "
                             f"{type(document[key]).__name__}")
    weights = document.get("weights")
    if weights is not None and (set(weights) != {"sha256", "bytes"} or not isinstance(weights["bytes"], int)):
        raise ValueError(f"directory: {path}: 'weights' must be {{'sha256': hex, 'bytes': int}}, got {weights!r}")
    try:
        document["config"] = _decode(document["config"])
        document["metadata"] = _decode(document["metadata"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"directory: {path}: its config does not decode ({error})") from error
    return document


def _identity(path: Path) -> tuple | None:
    """What changes when a file is replaced (rename over it) or rewritten: None when missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class _Replaced(Exception):
    """The files changed while they were read: a save into the directory is running."""


_READ_ATTEMPTS = 3


def load_pretrained(cls: type, directory: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild ``cls(**config)`` from ``directory`` and load its weights (strict); returned in eval mode.

    Raises ValueError naming the file when the directory is not a polydiff pretrained directory (see
    :func:`read_config`), was saved from a different class, its config does not build ``cls``, or its weights
    file is missing, truncated, corrupt, from another save, or does not fit the module. A save that replaces the
    files while they are read is waited out (the read is retried).
    """
    for _ in range(_READ_ATTEMPTS):
        try:
            return _load(cls, Path(directory), device)
        except _Replaced:
            continue
    raise ValueError(f"directory: {directory} changed on every one of {_READ_ATTEMPTS} reads; another process is "
                     "saving into it")


def _load(cls: type, directory: Path, device) -> nn.Module:
    config_path, weights_path = directory / _CONFIG, directory / _WEIGHTS
    config_id = _identity(config_path)
    document = read_config(directory)
    if document["class"] != class_path(cls):
        raise ValueError(f"cls: {config_path} holds a {document['class']}, not a {class_path(cls)}")
    try:
        module = cls(**document["config"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"directory: the config in {config_path} does not build a {class_path(cls)} "
                         f"({error})") from error
    weights_id = _identity(weights_path)
    if weights_id is None:
        raise ValueError(f"directory: {weights_path} is missing")
    try:
        if document.get("weights") is not None:
            check_file_digest(weights_path, document["weights"], config_path)
        missing, unexpected = load_model(module, str(weights_path), strict=False, device=str(device))
    except ValueError:
        if _identity(config_path) != config_id:
            raise _Replaced from None
        raise
    except (RuntimeError, SafetensorError, OSError) as error:  # shape mismatches, an unreadable file
        raise ValueError(f"directory: weights in {weights_path} do not fit {class_path(cls)} or cannot be read: "
                         f"{error}") from error
    if (_identity(config_path), _identity(weights_path)) != (config_id, weights_id):
        raise _Replaced
    if missing or unexpected:
        raise ValueError(f"directory: weights in {weights_path} do not fit {class_path(cls)} (missing "
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
