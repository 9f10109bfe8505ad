"""What the three table models share. TabDDPM uses the argument checks (``device``, integers) and the encoded-rows
Dataset; TabSyn and TabDiff also derive from :class:`TableModel`, which gives them TabDDPM's API: construction
from a frozen config or keyword options, the table transform (:class:`~polydiff.tabular.transform.TableTransformer`,
the target modelled as an ordinary column), ``sample(n, seed=)`` in batches, and ``save_pretrained`` /
``from_pretrained`` through the checked folder helpers of :mod:`polydiff.tabular.persistence` (safetensors weights
+ a JSON config with the weights' digest, written by core's ``AtomicFiles``).

A subclass sets ``config_class``, ``name`` and ``format`` and implements ``_build()`` (the networks from
``self.transformer``), ``_train(x_num, x_cat)``, ``_sample_batch(size, generator, steps)`` -> (x_num, x_cat) arrays,
``_modules()`` (the modules whose weights are saved) and optionally ``_state()`` / ``_load_state()`` for
JSON-able fitted values.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .persistence import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    _check_not_foreign,
    _read_config,
    _read_document,
    load_weights_and_transformer,
    write_weights_and_document,
)
from .transform import TableTransformer

__all__ = ["TableModel", "check_common_config"]

_REQUIRED_KEYS = ("format", "config", "transformer", "state", "weights")


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def finite_list(value, length: int) -> bool:
    """Whether ``value`` (read from a JSON state) is a list of ``length`` finite numbers."""
    return isinstance(value, list) and len(value) == length and all(_real(v) for v in value)


def _device(device) -> torch.device:
    """``device`` as a torch.device (None: the CPU); ValueError for a malformed name or CUDA that is absent."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"device: expected None or a device such as 'cpu' or 'cuda:0', got {device!r}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {str(device)!r} asked for, but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {str(device)!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return device


class _Rows(torch.utils.data.Dataset):
    """The encoded table as a map-style Dataset whose batched fetch (``__getitems__``) gathers all rows of a
    batch with one indexing op per tensor, instead of one Python call per row (half the step time at batch 512)."""

    def __init__(self, *tensors: Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices):
        index = torch.as_tensor(indices, dtype=torch.long)
        return list(zip(*(t[index].unbind(0) for t in self.tensors), strict=True))


def check_common_config(config) -> None:
    """Validate the fields every table model's config has: positive integers, lr, nan, seed and progress; a tuple
    field given as a list (as JSON reads it back) becomes a tuple."""
    from polydiff.core.schedules import check_real

    from .transform import NAN_MODES

    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.type in ("int", int) and field.name != "seed":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field.name}: expected a positive integer, got {value!r}")
        if field.type in ("tuple", tuple):
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(config, field.name, value)
            if not (isinstance(value, tuple) and value and all(isinstance(h, int) and not isinstance(h, bool)
                                                               and h > 0 for h in value)):
                raise ValueError(f"{field.name}: expected positive integers, got {value!r}")
    check_real("lr", config.lr, low=0.0, low_open=True)
    if config.nan not in NAN_MODES:
        raise ValueError(f"nan: expected one of {NAN_MODES}, got {config.nan!r}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {config.seed!r}")
    if not isinstance(config.progress, bool):
        raise ValueError(f"progress: expected True or False, got {config.progress!r}")


class TableModel:
    """Base of TabSyn and TabDiff (module docstring)."""

    config_class: type = None
    name: str = ""
    format: str = ""
    #: config fields added after the format's first files, with the value that reproduces such a file's model
    added_fields: dict = {}

    def __init__(self, config=None, *, device=None, **options):
        cls = self.config_class
        if config is not None and options:
            raise ValueError(f"options: give either a {cls.__name__} or keyword options, not both")
        if config is not None and not isinstance(config, cls):
            raise ValueError(f"config: expected a {cls.__name__}, got {type(config).__name__}")
        for name, value in options.items():  # lists from JSON-like callers become the tuples the config holds
            if isinstance(value, list):
                options[name] = tuple(value)
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [name for name in options if name not in fields]
        if unknown:
            raise ValueError(f"{', '.join(map(str, unknown))}: not an option of {self.name}; options: "
                             f"{fields + ['device']}")
        self.config = config if config is not None else cls(**options)
        self.device = _device(device)
        self.transformer: TableTransformer | None = None
        self.history: dict = {}

    # ------------------------------------------------------------------------------------------- fit

    def fit(self, df: pd.DataFrame, target=None, categorical=None, discrete=None):
        """Fit on ``df``. ``target``: one column name, modelled jointly with the others (TabSyn and TabDiff
        generate whole rows; it is recorded for evaluation); ``categorical`` / ``discrete``: column names that win
        over dtype detection. Values a saved model cannot hold are refused here, naming the column."""
        self.transformer = TableTransformer(target, categorical, discrete, nan=self.config.nan,
                                            target_as_label=False).fit(df)
        x_num, x_cat, _ = self.transformer.transform(df)
        if not np.isfinite(x_num).all():
            raise ValueError("df: the quantile transform produced non-finite values")
        # None where every score is 0 (a numeric column holding one value besides NaN): nothing to clip
        self.clip = (float(np.abs(x_num).max()) or None) if x_num.size else None
        torch.manual_seed(self.config.seed)  # before the networks are built: their initial weights
        self._build()
        self._train(torch.from_numpy(x_num).float(), torch.from_numpy(x_cat).long())
        return self

    @property
    def num_numeric(self) -> int:
        return len(self.transformer.numeric_columns)

    @property
    def num_classes(self) -> list[int]:
        return list(self.transformer.num_classes)

    # ---------------------------------------------------------------------------------------- sample

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, *, steps: int | None = None,
               batch_size: int = 8192) -> pd.DataFrame:
        """``n`` synthetic rows as a DataFrame with the training frame's columns, order, dtypes and levels.
        seed: same seed, same rows (on one device). steps: sampling steps (default: the config's)."""
        if self.transformer is None:
            raise ValueError("sample: the model is not fitted; call fit(df) or from_pretrained(path) first")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        if seed is not None and not (_integer(seed) and 0 <= seed < 2**64):
            raise ValueError(f"seed: expected None or an integer in [0, 2**64), got {seed!r}")
        if steps is not None and not (_integer(steps) and steps >= 1):
            raise ValueError(f"steps: expected None or a positive integer, got {steps!r}")
        if not (_integer(batch_size) and batch_size >= 1):
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**62))
        steps = self.config.sample_steps if steps is None else int(steps)
        nums, cats = [], []
        for start in range(0, int(n), batch_size):
            x_num, x_cat = self._sample_batch(min(batch_size, int(n) - start), generator, steps)
            nums.append(x_num.detach().cpu().double().numpy())
            cats.append(x_cat.detach().cpu().numpy())
        x_num, x_cat = np.concatenate(nums), np.concatenate(cats)
        if not np.isfinite(x_num).all():
            raise RuntimeError("sample: the sampler produced non-finite values")
        if self.clip is not None:
            x_num = np.clip(x_num, -self.clip, self.clip)
        return self.transformer.inverse_transform(x_num, x_cat, None)

    # ------------------------------------------------------------------------------------ persistence

    def _state(self) -> dict:
        return {}

    def _load_state(self, state: dict, config_file: Path) -> None:
        if state:
            raise ValueError(f"{config_file}: state: unexpected keys {list(state)}")

    def save_pretrained(self, path) -> Path:
        """Write ``path/config.json`` (config, column spec, fitted values, the weights' size and SHA-256) and
        ``path/model.safetensors``, all or nothing (as :meth:`TabDDPM.save_pretrained`); returns ``path``."""

        if self.transformer is None:
            raise ValueError("save_pretrained: the model is not fitted")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"path: {str(path)!r} is an existing file, not a folder; choose another path")
        _check_not_foreign(path / CONFIG_FILE, self.format, self.name)
        spec, arrays = self.transformer.state()
        tensors = {f"transformer.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        for prefix, module in self._modules().items():
            tensors.update({f"{prefix}.{k}": v.detach().to("cpu").contiguous().clone()
                            for k, v in module.state_dict().items()})
        document = {"format": self.format, "config": asdict(self.config), "transformer": spec,
                    "state": {"clip": self.clip, **self._state()}}
        return write_weights_and_document(path, tensors, document)

    @classmethod
    def from_pretrained(cls, path, *, device=None):
        """Load a :meth:`save_pretrained` folder onto ``device`` (None: the CPU); anything else raises
        ValueError naming the file."""

        path = Path(path)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not path.is_dir():
            raise ValueError(f"path: {str(path)!r} is not a folder (expected a {cls.name} save_pretrained folder)")
        if not config_file.is_file():
            raise ValueError(f"path: {str(path)!r} has no {CONFIG_FILE} (expected a {cls.name} save_pretrained folder)")
        document = _read_document(config_file, cls.format, cls.name, _REQUIRED_KEYS, ())
        self = cls(_read_config(config_file, document["config"], cls.config_class, cls.added_fields), device=device)
        tensors, self.transformer = load_weights_and_transformer(config_file, weights_file, document, cls.name)
        state = document["state"]
        if not isinstance(state, dict) or "clip" not in state:
            raise ValueError(f"{config_file}: state: expected an object with 'clip'")
        state = dict(state)
        clip = state.pop("clip")
        if clip is not None and not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip > 0):
            raise ValueError(f"{config_file}: clip: expected None or a positive number, got {clip!r}")
        self.clip = clip
        self._build()
        self._load_state(state, config_file)
        for prefix, module in self._modules().items():
            try:
                module.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items()
                                        if k.startswith(prefix + ".")})
            except RuntimeError as error:
                raise ValueError(f"{weights_file}: the weights do not fit the network {config_file.name} describes "
                                 f"({error})") from error
            module.to(self.device).eval()
        return self
