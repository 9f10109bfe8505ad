"""Mel features: one frozen :class:`MelConfig` stored with every model, so a mismatch is an error.

Log-mel = log(max(mel_power_or_magnitude, log_floor)) from torchaudio's STFT and mel filterbank (Slaney scale and
norm); resampling with torchaudio's windowed-sinc resampler. Waveform file I/O is soundfile's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["MelConfig", "mel_spectrogram", "resample", "as_waveform", "check_mel"]


@dataclass(frozen=True)
class MelConfig:
    """The mel front end: sample_rate (Hz), n_fft, hop (samples between frames), win (window length), n_mels,
    fmin, fmax (Hz, fmax <= sample_rate / 2), log_floor (the clamp before the natural log), power (1: magnitude,
    2: power). Frames are centred (reflect padding): a waveform of L samples gives 1 + L // hop frames."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    win: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5
    power: float = 1.0

    def __post_init__(self):
        for name in ("sample_rate", "n_fft", "hop", "win", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MelConfig.{name}: expected a positive int, got {value!r}")
        if self.win > self.n_fft:
            raise ValueError(f"MelConfig.win: {self.win} is longer than n_fft={self.n_fft}")
        if self.hop > self.win:
            raise ValueError(f"MelConfig.hop: {self.hop} is longer than win={self.win}")
        if not (math.isfinite(self.fmin) and math.isfinite(self.fmax) and 0 <= self.fmin < self.fmax
                <= self.sample_rate / 2):
            raise ValueError(f"MelConfig.fmin, fmax: expected 0 <= fmin < fmax <= sample_rate / 2, got "
                             f"{self.fmin}, {self.fmax}")
        if not (math.isfinite(self.log_floor) and self.log_floor > 0):
            raise ValueError(f"MelConfig.log_floor: expected a positive float, got {self.log_floor!r}")
        if self.power not in (1.0, 2.0):
            raise ValueError(f"MelConfig.power: expected 1.0 or 2.0, got {self.power!r}")
        object.__setattr__(self, "fmin", float(self.fmin))
        object.__setattr__(self, "fmax", float(self.fmax))
        object.__setattr__(self, "power", float(self.power))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"mel_config: unknown fields {sorted(unknown)}")
        return cls(**values)

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop


_TRANSFORMS: dict = {}


def _transform(config: MelConfig):
    transform = _TRANSFORMS.get(config)
    if transform is None:
        import torchaudio

        transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.win, hop_length=config.hop,
            f_min=config.fmin, f_max=config.fmax, n_mels=config.n_mels, power=config.power, center=True,
            pad_mode="reflect", norm="slaney", mel_scale="slaney")
        _TRANSFORMS[config] = transform
    return transform


def as_waveform(waveform, name: str = "waveform") -> Tensor:
    """A finite float32 tensor (samples,) or (batch, samples) from a numpy array or tensor; ValueError otherwise."""
    if isinstance(waveform, np.ndarray):
        if waveform.dtype == np.int16:
            waveform = waveform.astype(np.float32) / 32768.0
        waveform = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    if not isinstance(waveform, Tensor) or not waveform.is_floating_point():
        raise ValueError(f"{name}: expected a float numpy array or tensor of samples, got {type(waveform).__name__}")
    if waveform.ndim not in (1, 2) or waveform.shape[-1] < 2:
        raise ValueError(f"{name}: expected shape (samples,) or (batch, samples), got {tuple(waveform.shape)}")
    if not bool(torch.isfinite(waveform).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return waveform.float()


def resample(waveform, orig_rate: int, new_rate: int) -> Tensor:
    """Resample (samples,) or (batch, samples) from ``orig_rate`` to ``new_rate`` Hz (torchaudio, sinc)."""
    for name, value in (("orig_rate", orig_rate), ("new_rate", new_rate)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1000:
            raise ValueError(f"{name}: expected a sample rate in Hz (int >= 1000), got {value!r}")
    waveform = as_waveform(waveform)
    if orig_rate == new_rate:
        return waveform
    import torchaudio

    return torchaudio.functional.resample(waveform, int(orig_rate), int(new_rate))


def mel_spectrogram(waveform, config: MelConfig) -> Tensor:
    """Log-mel of (samples,) -> (n_mels, frames) or (batch, samples) -> (batch, n_mels, frames)."""
    if not isinstance(config, MelConfig):
        raise ValueError(f"config: expected a MelConfig, got {type(config).__name__}")
    waveform = as_waveform(waveform)
    if waveform.shape[-1] <= config.n_fft // 2:
        raise ValueError(f"waveform: {waveform.shape[-1]} samples is too short for n_fft={config.n_fft}")
    mel = _transform(config).to(waveform.device)(waveform)
    return mel.clamp_min(config.log_floor).log()


def check_mel(mel, config: MelConfig, name: str = "mel") -> Tensor:
    """Validate a log-mel (n_mels, frames) or (batch, n_mels, frames) against ``config``."""
    if isinstance(mel, np.ndarray):
        mel = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))
    if not isinstance(mel, Tensor) or not mel.is_floating_point() or mel.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a float tensor (n_mels, frames) or (batch, n_mels, frames)")
    if mel.shape[-2] != config.n_mels:
        raise ValueError(f"{name}: has {mel.shape[-2]} mel bands, the model's MelConfig has n_mels="
                         f"{config.n_mels}")
    if mel.shape[-1] < 2:
        raise ValueError(f"{name}: needs at least 2 frames, got {mel.shape[-1]}")
    if not bool(torch.isfinite(mel).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    if float(mel.min()) < math.log(config.log_floor) - 1e-3:
        raise ValueError(f"{name}: values below log(log_floor={config.log_floor}); it was made with another "
                         "MelConfig (or is not a natural-log mel)")
    return mel.float()
