"""The folder a table model saves to and loads from: ``config.json`` (format, config, column spec, fitted values
and the weights' size and SHA-256) and ``model.safetensors`` (network weights and the quantile transformer).

Shared by TabDDPM, TabSyn and TabDiff. Writing is all or nothing through :class:`polydiff.core.pretrained.AtomicFiles`
(weights first, then config.json with their digest); reading checks the JSON, its format and keys, the config's
fields and the weights' digest, and raises a ValueError naming the file for anything else. No pickle.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from polydiff.core.pretrained import AtomicFiles, check_file_digest

from .transform import TableTransformer

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_weights_and_transformer", "write_weights_and_document"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def _read_document(config_file: Path, fmt: str, name: str, required: tuple, optional: tuple = ()) -> dict:
    """The checked config.json of a ``name`` folder (TabDDPM, TabSyn, TabDiff): JSON, its format ``fmt``,
    exactly the ``required`` keys plus any of the ``optional`` ones."""
    try:
        document = json.loads(config_file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_file}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise ValueError(f"{config_file}: expected a JSON object, got {type(document).__name__}")
    found = document.get("format")
    if found != fmt:
        what = (f"a core pretrained module ({document.get('class')})" if found == "polydiff-pretrained"
                else f"format {found!r}")
        raise ValueError(f"{config_file}: holds {what}, not a {name} model (format {fmt!r})")
    missing = [k for k in required if k not in document]
    unknown = [k for k in document if k not in tuple(required) + tuple(optional)]
    if missing or unknown:
        raise ValueError(f"{config_file}: " + "; ".join(
            part for part in (f"missing keys {missing}" if missing else "",
                              f"unknown keys {unknown}" if unknown else "") if part))
    return document


def _read_config(config_file: Path, config, config_class: type, added: dict | None = None):
    """``config`` (the "config" object of a config.json) as a ``config_class`` (a frozen config dataclass):
    exactly its fields, list values of tuple fields back to tuples, validated by the dataclass itself.
    ``added``: fields that came after the format's first files, each with the value that reproduces what such a
    file's model did; a file without one of them reads as that value."""
    fields = [f.name for f in dataclasses.fields(config_class)]
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: config: expected an object of {config_class.__name__} fields, got "
                         f"{config!r}")
    config = {**(added or {}), **config}
    missing = [k for k in fields if k not in config]
    unknown = [k for k in config if k not in fields]
    if missing or unknown:
        raise ValueError(f"{config_file}: config: " + "; ".join(
            part for part in (f"missing fields {missing}" if missing else "",
                              f"unknown fields {unknown}" if unknown else "") if part))
    config = {key: tuple(value) if isinstance(value, list) else value for key, value in config.items()}
    try:
        return config_class(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_file}: config: {error}") from error


def _check_not_foreign(config_file: Path, fmt: str, name: str) -> None:
    """ValueError when ``config_file`` exists and is not a ``name`` config (format ``fmt``): saving would
    overwrite another model's (or another tool's) files."""
    if not config_file.exists() and not config_file.is_symlink():
        return
    try:
        found = json.loads(config_file.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        found = None
    if found != fmt:
        raise ValueError(f"path: {config_file} was not written by {name}.save_pretrained (format {found!r}); "
                         "saving would overwrite it. Choose another folder or remove that file")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def load_weights_and_transformer(config_file: Path, weights_file: Path, document: dict, name: str, *,
                                 digest_required: bool = True) -> tuple[dict, TableTransformer]:
    """The weights (checked against the digest in ``document``) and the fitted TableTransformer of a
    save_pretrained folder; anything damaged or missing raises ValueError naming the file."""
    from safetensors.torch import load as safetensors_load

    if not weights_file.is_file():
        raise ValueError(f"{weights_file}: missing (a {name} folder holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    if digest_required or document.get("weights") is not None:
        if not isinstance(document.get("weights"), dict):
            raise ValueError(f"{config_file}: weights: expected a {{sha256, bytes}} digest")
        check_file_digest(weights_file, document["weights"], config_file)
    try:
        tensors = safetensors_load(weights_file.read_bytes())
    except Exception as error:  # safetensors raises its own SafetensorError for damaged files
        raise ValueError(f"{weights_file}: not a readable safetensors file ({error})") from error
    arrays = {k.split(".", 1)[1]: v.numpy() for k, v in tensors.items() if k.startswith("transformer.")}
    try:
        transformer = TableTransformer.from_state(document["transformer"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{config_file}: the transformer spec does not load ({type(error).__name__}: "
                         f"{error})") from error
    return tensors, transformer


def write_weights_and_document(path: Path, tensors: dict, document: dict) -> Path:
    """Write a save_pretrained folder: the weights, then config.json (``document`` plus the weights' digest),
    through core's AtomicFiles, touching no other file. The document is checked to be JSON before anything is
    written, so a model that cannot be saved leaves the folder as it was."""
    from safetensors.torch import save as safetensors_bytes

    try:
        json.dumps(document, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as error:
        raise ValueError(f"save_pretrained: the model's spec cannot be written as JSON ({error}); nothing was "
                         "written") from error
    with AtomicFiles(path) as files:
        files.write(WEIGHTS_FILE, safetensors_bytes(tensors))
        document["weights"] = files.digest(WEIGHTS_FILE)
        files.write(CONFIG_FILE, json.dumps(document, indent=1, allow_nan=False, default=_json_default))
    return path
