"""Speech corpora: an eSpeak NG corpus built offline, and any folder in LJSpeech layout.

Layout written by :func:`make_corpus` (LJSpeech's, plus one JSON file):
    DIR/wavs/<id>.wav        16-bit PCM mono at ``sample_rate``
    DIR/metadata.csv         ``id|text|text`` (LJSpeech's three columns)
    DIR/corpus.json          {"sample_rate", "voices", "heldout_voices", "utterances": [{"id", "text",
                             "phonemes", "voice", "split"}]}; split is "train", "test" (held-out sentences,
                             training voices) or "test_voice" (held-out sentences, held-out voices)
A plain LJSpeech folder (no corpus.json) loads with the last ``test_fraction`` of its rows as "test".
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .mel import resample
from .text import make_sentences

__all__ = ["DEFAULT_VOICES", "DEFAULT_HELDOUT_VOICES", "make_corpus", "load_corpus", "Utterance", "read_wav",
           "write_wav", "SPLITS"]

DEFAULT_VOICES = ("en-us+m1", "en-us+f2", "en-us+m3", "en-us+f5", "en+m2", "en+f3", "en-gb-scotland+m4",
                  "en-029+m5", "en-us-nyc+f1", "en-gb-x-rp+m7", "en-us+klatt", "en-gb-x-gbclan+m6")
DEFAULT_HELDOUT_VOICES = ("en-gb-x-rp+f4",)
SPLITS = ("train", "test", "test_voice")
SECONDS_PER_SENTENCE = 3.6  # measured mean at the default rates


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    phonemes: str
    voice: str
    split: str
    path: Path


def write_wav(path, waveform, sample_rate: int) -> None:
    """Write float samples in [-1, 1] (or int16) as 16-bit PCM; the format follows the extension (.wav, .flac)."""
    import soundfile

    path = Path(path)
    if path.suffix.lower() not in (".wav", ".flac"):
        raise ValueError(f"path: expected a .wav or .flac file name, got {str(path)!r}")
    data = np.asarray(waveform)
    if data.dtype != np.int16:
        data = np.asarray(data, dtype=np.float32)
        if data.ndim != 1 or not np.isfinite(data).all():
            raise ValueError("waveform: expected finite samples of shape (samples,)")
        data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        soundfile.write(tmp, data, int(sample_rate), subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_wav(path) -> tuple[np.ndarray, int]:
    """(float32 mono samples, sample rate) of an audio file; several channels are averaged."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no audio file at {str(path)!r}")
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(rate)


def _utterance_audio(text: str, voice: str, rng: random.Random, sample_rate: int) -> np.ndarray:
    from . import espeak

    audio = espeak.synthesize(text, voice, rate=rng.randint(140, 190), pitch=rng.randint(30, 70),
                              pitch_range=rng.randint(30, 80))
    audio = audio.astype(np.float32) / 32768.0
    nonzero = np.flatnonzero(np.abs(audio) > 1e-3)
    if nonzero.size:  # trim eSpeak's leading/trailing silence to 100 ms
        pad = espeak.ESPEAK_RATE // 10
        audio = audio[max(0, nonzero[0] - pad): nonzero[-1] + pad]
    out = resample(audio, espeak.ESPEAK_RATE, sample_rate).numpy()
    peak = float(np.abs(out).max()) if out.size else 0.0
    return out * (0.9 / peak) if peak > 0 else out


def make_corpus(out, *, hours: float = 0.5, voices=DEFAULT_VOICES, heldout_voices=DEFAULT_HELDOUT_VOICES,
                test_sentences: int = 40, sample_rate: int = 16000, seed: int = 0, force: bool = False,
                splits=SPLITS, limit: int | None = None) -> Path:
    """Build an eSpeak NG speech corpus in ``out`` (see the module docstring for the layout).

    hours: training audio wanted (about 3.6 s per sentence); voices: eSpeak voices of the training split
    (``lang+variant``); heldout_voices: voices only in "test_voice"; test_sentences: sentences held out of
    training, each spoken once by a training voice ("test") and once by each held-out voice ("test_voice").
    The folder is written next to ``out`` and moved into place when complete; an existing ``out`` needs
    ``force``. ``splits`` limits what is synthesised (the sentences of every split are drawn all the same, so
    ``splits=("test", "test_voice")`` rebuilds exactly the held-out sentences of a corpus of the same hours and
    seed, without its training audio).
    """
    from . import espeak

    out = Path(out)
    if not (isinstance(hours, (int, float)) and not isinstance(hours, bool) and 0 < hours <= 100):
        raise ValueError(f"hours: expected a number in (0, 100], got {hours!r}")
    voices, heldout_voices = list(voices), list(heldout_voices)
    if not voices:
        raise ValueError("voices: expected at least one eSpeak voice")
    overlap = set(voices) & set(heldout_voices)
    if overlap:
        raise ValueError(f"heldout_voices: {sorted(overlap)} are also training voices")
    if isinstance(test_sentences, bool) or not isinstance(test_sentences, int) or test_sentences < 1:
        raise ValueError(f"test_sentences: expected a positive int, got {test_sentences!r}")
    if out.exists() and not force:
        raise ValueError(f"out: {str(out)!r} exists; pass force=True (--force) to replace it")
    for voice in voices + heldout_voices:  # fail before any work on an unknown voice
        espeak.phonemize("hello", voice)
    train_count = max(1, round(hours * 3600 / SECONDS_PER_SENTENCE))
    sentences = make_sentences(train_count + test_sentences, seed=seed)
    rng = random.Random(seed)
    rng.shuffle(sentences)
    test, train = sentences[:test_sentences], sentences[test_sentences:]
    jobs = [(text, voices[i % len(voices)], "train") for i, text in enumerate(train)]
    jobs += [(text, voices[(i * 7 + 3) % len(voices)], "test") for i, text in enumerate(test)]
    jobs += [(text, voice, "test_voice") for voice in heldout_voices for text in test]
    unknown = set(splits) - set(SPLITS)
    if unknown or not splits:
        raise ValueError(f"splits: expected a non-empty subset of {SPLITS}, got {splits!r}")
    jobs = [job for job in jobs if job[2] in splits]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit: expected a positive int or None, got {limit!r}")
        jobs = [job for split in SPLITS for job in [j for j in jobs if j[2] == split][:limit]]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "wavs").mkdir()
        utterances = []
        for index, (text, voice, split) in enumerate(jobs):
            uid = f"{split}-{index:05d}"
            write_wav(tmp / "wavs" / f"{uid}.wav", _utterance_audio(text, voice, rng, sample_rate), sample_rate)
            utterances.append({"id": uid, "text": text, "phonemes": espeak.phonemize(text, voice.split("+")[0]),
                               "voice": voice, "split": split})
        with open(tmp / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\")
            for item in utterances:
                writer.writerow([item["id"], item["text"], item["text"]])
        meta = {"sample_rate": sample_rate, "voices": voices, "heldout_voices": heldout_voices, "seed": seed,
                "hours": hours, "test_sentences": test_sentences, "train_sentences": train,
                "source": "eSpeak NG (espeakng-loader)", "utterances": utterances}
        (tmp / "corpus.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_corpus(folder, split: str | None = None, *, test_fraction: float = 0.05) -> list[Utterance]:
    """The utterances of a corpus folder (eSpeak corpus or LJSpeech layout), optionally of one split."""
    folder = Path(folder)
    if split is not None and split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS} or None, got {split!r}")
    if not (folder / "metadata.csv").is_file():
        raise ValueError(f"folder: {str(folder)!r} has no metadata.csv (LJSpeech layout expected)")
    if (folder / "corpus.json").is_file():
        meta = json.loads((folder / "corpus.json").read_text(encoding="utf-8"))
        items = [Utterance(u["id"], u["text"], u.get("phonemes", ""), u.get("voice", ""), u["split"],
                           folder / "wavs" / f"{u['id']}.wav") for u in meta["utterances"]]
    else:
        with open(folder / "metadata.csv", encoding="utf-8") as handle:
            rows = [line.rstrip("\n").split("|") for line in handle if line.strip()]
        cut = len(rows) - max(1, int(round(len(rows) * test_fraction)))
        items = [Utterance(row[0], row[-1], "", "", "train" if i < cut else "test", folder / "wavs" / f"{row[0]}.wav")
                 for i, row in enumerate(rows)]
    return [u for u in items if split is None or u.split == split]
