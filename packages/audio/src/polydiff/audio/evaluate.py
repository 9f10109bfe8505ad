"""Speech metrics: PESQ-WB (pesq), STOI (pystoi), multi-resolution STFT distance with a silence floor, log-mel L1,
mel cepstral distortion, real-time factor, and WER from an offline recogniser (pocketsphinx's English model).

Every metric takes the reference and the estimate at one sample rate; the pair is cut to the shorter length.
Direction: ``BETTER`` maps each metric to "max" or "min".
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from .mel import MelConfig, as_waveform, mel_spectrogram, resample

__all__ = ["BETTER", "pesq_wb", "stoi", "mrstft", "log_mel_l1", "mcd", "word_error_rate", "transcribe", "write_bigram_lm",
           "speech_metrics"]

BETTER = {"pesq": "max", "stoi": "max", "mrstft": "min", "log_mel_l1": "min", "mcd": "min", "rtf": "min", "rtf_cpu": "min",
          "wer": "min"}
_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))


def _pair(reference, estimate) -> tuple[np.ndarray, np.ndarray]:
    reference = as_waveform(reference, "reference").numpy().astype(np.float64)
    estimate = as_waveform(estimate, "estimate").numpy().astype(np.float64)
    if reference.ndim != 1 or estimate.ndim != 1:
        raise ValueError("reference, estimate: expected one channel each, shape (samples,)")
    n = min(reference.shape[0], estimate.shape[0])
    return reference[:n], estimate[:n]


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1000:
        raise ValueError(f"sample_rate: expected a rate in Hz (int >= 1000), got {sample_rate!r}")
    return int(sample_rate)


def pesq_wb(reference, estimate, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz (resampled when needed); -0.5 .. 4.64, higher is better."""
    from polydiff.core.optional import require

    pesq = require("pesq", "polydiff-audio[bench]", "PESQ")
    rate = _check_rate(sample_rate)
    ref, est = _pair(reference, estimate)
    if rate != 16000:
        ref, est = (resample(torch.from_numpy(v).float(), rate, 16000).double().numpy() for v in (ref, est))
    return float(pesq.pesq(16000, ref, est, "wb"))


def stoi(reference, estimate, sample_rate: int) -> float:
    """Short-time objective intelligibility (Taal et al., 2011), 0..1, higher is better."""
    from polydiff.core.optional import require

    pystoi = require("pystoi", "polydiff-audio[bench]", "STOI")
    ref, est = _pair(reference, estimate)
    return float(pystoi.stoi(ref, est, _check_rate(sample_rate), extended=False))


def mrstft(reference, estimate, sample_rate: int | None = None, floor: float = 1e-4) -> float:
    """Multi-resolution STFT distance (Yamamoto et al., 2020, eq. 4-6): the mean over three resolutions of the
    spectral convergence plus the L1 log-magnitude distance, magnitudes clamped at ``floor`` so silence does not
    dominate the log term. Lower is better."""
    ref, est = (torch.from_numpy(v).float() for v in _pair(reference, estimate))
    total = 0.0
    for n_fft, hop, win in _RESOLUTIONS:
        window = torch.hann_window(win)
        a = torch.stft(ref, n_fft, hop, win, window, return_complex=True).abs().clamp_min(floor)
        b = torch.stft(est, n_fft, hop, win, window, return_complex=True).abs().clamp_min(floor)
        convergence = torch.linalg.norm(a - b) / torch.linalg.norm(a)
        magnitude = (a.log() - b.log()).abs().mean()
        total += float(convergence + magnitude)
    return total / len(_RESOLUTIONS)


def log_mel_l1(reference, estimate, config: MelConfig) -> float:
    """Mean |log-mel(reference) - log-mel(estimate)| in ``config`` (natural log). Lower is better."""
    ref, est = (torch.from_numpy(v).float() for v in _pair(reference, estimate))
    return float((mel_spectrogram(ref, config) - mel_spectrogram(est, config)).abs().mean())


def mcd(reference, estimate, config: MelConfig, n_coefficients: int = 13) -> float:
    """Mel cepstral distortion in dB over coefficients 1..n (no time warping: the pair is frame-aligned).
    Cepstra are the DCT-II of the log-mel. Lower is better."""
    from scipy.fft import dct

    ref, est = (torch.from_numpy(v).float() for v in _pair(reference, estimate))
    a = dct(mel_spectrogram(ref, config).numpy(), type=2, norm="ortho", axis=0)[1:n_coefficients + 1]
    b = dct(mel_spectrogram(est, config).numpy(), type=2, norm="ortho", axis=0)[1:n_coefficients + 1]
    return float((10 / math.log(10)) * math.sqrt(2) * np.sqrt(((a - b) ** 2).sum(0)).mean())


_DECODER = {}


def write_bigram_lm(path, sentences: list[str], vocabulary: list[str]) -> str:
    """Write an ARPA bigram language model over ``vocabulary`` (every word at least once) with the bigrams of
    ``sentences`` (Witten-Bell discounting, back-off to the unigrams); returns the path. Words outside
    pocketsphinx's dictionary raise ValueError when the decoder loads it."""
    import collections

    words = [["<s>", *_words(s), "</s>"] for s in sentences]
    if not vocabulary or not words:
        raise ValueError("sentences, vocabulary: expected non-empty lists")
    unigrams = collections.Counter(w for s in words for w in s[1:])
    unigrams.update(set(_words(" ".join(vocabulary))))
    total = sum(unigrams.values())
    bigrams: dict = collections.defaultdict(collections.Counter)
    for s in words:
        for a, b in zip(s, s[1:], strict=False):
            bigrams[a][b] += 1

    def seen(a):  # (count of contexts a, distinct followers of a)
        return sum(bigrams[a].values()), len(bigrams[a])

    def backoff(a):
        n, types = seen(a)
        return math.log10(types / (n + types)) if types else 0.0

    lines = ["\\data\\", f"ngram 1={len(unigrams) + 1}", f"ngram 2={sum(len(c) for c in bigrams.values())}", "",
             "\\1-grams:", f"-99 <s> {backoff('<s>'):.4f}"]
    lines += [f"{math.log10(c / total):.4f} {w} {backoff(w):.4f}" for w, c in sorted(unigrams.items())]
    lines += ["", "\\2-grams:"]
    for a, followers in sorted(bigrams.items()):
        n, types = seen(a)
        lines += [f"{math.log10(c / (n + types)):.4f} {a} {b}" for b, c in sorted(followers.items())]
    lines += ["", "\\end\\", ""]
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines))
    return str(path)


def transcribe(waveform, sample_rate: int, language_model=None) -> str:
    """Lower-case words recognised by pocketsphinx's bundled US English model (offline), with its general
    language model or an ARPA file ``language_model`` (e.g. from :func:`write_bigram_lm`)."""
    from polydiff.core.optional import require

    pocketsphinx = require("pocketsphinx", "polydiff-audio[bench]", "the WER of the TTS rows")
    wave = as_waveform(waveform).numpy()
    if _check_rate(sample_rate) != 16000:
        wave = resample(torch.from_numpy(wave), sample_rate, 16000).numpy()
    key = "decoder" if language_model is None else str(language_model)
    if key not in _DECODER:
        config = pocketsphinx.Decoder.default_config()
        config["loglevel"] = "FATAL"
        if language_model is not None:
            config["lm"] = str(language_model)
        _DECODER[key] = pocketsphinx.Decoder(config)
    decoder = _DECODER[key]
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16).tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return "" if hypothesis is None else hypothesis.hypstr.lower()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: total word edit distance / total reference words."""
    if len(references) != len(hypotheses) or not references:
        raise ValueError("references, hypotheses: expected two non-empty lists of equal length")
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        r, h = _words(reference), _words(hypothesis)
        row = list(range(len(h) + 1))
        for i in range(1, len(r) + 1):
            previous, row[0] = row[0], i
            for j in range(1, len(h) + 1):
                current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (r[i - 1] != h[j - 1]))
                previous = current
        errors += row[len(h)]
        words += len(r)
    return errors / max(words, 1)


def speech_metrics(reference, estimate, config: MelConfig) -> dict:
    """pesq, stoi, mrstft, log_mel_l1 and mcd of an estimate against its reference (both at config's rate)."""
    rate = config.sample_rate
    return {"pesq": pesq_wb(reference, estimate, rate), "stoi": stoi(reference, estimate, rate),
            "mrstft": mrstft(reference, estimate), "log_mel_l1": log_mel_l1(reference, estimate, config),
            "mcd": mcd(reference, estimate, config)}
