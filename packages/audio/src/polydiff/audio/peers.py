"""The peer every vocoder is measured against: Griffin-Lim from the same log-mel.

mel -> linear magnitude by non-negative least squares against the mel filterbank (librosa's ``nnls``), then
Griffin-Lim phase retrieval (Griffin & Lim, 1984) with librosa's fast momentum variant (Perraudin et al., 2013;
momentum 0.99) for ``n_iter`` iterations, random initial phase from ``seed``.
"""

from __future__ import annotations

import numpy as np

from .mel import MelConfig, check_mel

__all__ = ["griffin_lim", "mel_filterbank"]


def mel_filterbank(config: MelConfig) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) filterbank the MelConfig's features use (torchaudio, Slaney)."""
    import torchaudio

    bank = torchaudio.functional.melscale_fbanks(config.n_fft // 2 + 1, config.fmin, config.fmax, config.n_mels,
                                                 config.sample_rate, norm="slaney", mel_scale="slaney")
    return bank.T.numpy().astype(np.float64)


def griffin_lim(mel, config: MelConfig, n_iter: int = 60, seed: int = 0) -> np.ndarray:
    """Waveform (samples = (frames - 1) * hop) from a log-mel (n_mels, frames) made with ``config``."""
    import librosa

    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter: expected a positive int, got {n_iter!r}")
    mel = check_mel(mel, config)
    if mel.ndim != 2:
        raise ValueError(f"mel: expected (n_mels, frames), got {tuple(mel.shape)}")
    magnitude_mel = mel.double().exp().numpy()
    if config.power == 2.0:
        magnitude_mel = np.sqrt(magnitude_mel)
    bank = mel_filterbank(config)
    magnitude = librosa.util.nnls(bank, magnitude_mel)
    length = (mel.shape[-1] - 1) * config.hop
    wave = librosa.griffinlim(magnitude.astype(np.float32), n_iter=n_iter, hop_length=config.hop,
                              win_length=config.win, n_fft=config.n_fft, window="hann", center=True,
                              momentum=0.99, init="random", random_state=seed, length=length)
    return np.clip(wave, -1, 1).astype(np.float32)
