"""``polydiff audio make-corpus | vocode | tts | mel``: the shipped vocoder and TTS from the command line.

    polydiff audio make-corpus --hours 0.5 --out corpus/        # eSpeak NG speech, offline, with held-out splits
    polydiff audio vocode speech.wav copy.wav                    # copy synthesis: wav -> mel -> vocoder -> wav
    polydiff audio tts "The quick brown fox." fox.wav            # Grad-TTS + vocoder

Audio files are read and written with soundfile; the output format follows the extension (.wav or .flac, any
other extension is refused before any work). An existing output file is kept unless --force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]

_AUDIO = (".wav", ".flac")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _output(path: str, force: bool) -> Path:
    out = Path(path)
    if out.suffix.lower() not in _AUDIO:
        raise ValueError(f"out: cannot write {out.suffix or 'extension-less'!r} files ({path!r}); use .wav or .flac")
    if out.exists() and not force:
        raise ValueError(f"out: {path!r} exists; pass --force to replace it")
    if out.exists() and out.is_dir():
        raise ValueError(f"out: {path!r} is a folder; expected a .wav or .flac file name")
    return out


def _make_corpus(args) -> int:
    from .data import DEFAULT_HELDOUT_VOICES, DEFAULT_VOICES, make_corpus

    voices = args.voices.split(",") if args.voices else list(DEFAULT_VOICES)
    heldout = args.heldout_voices.split(",") if args.heldout_voices else list(DEFAULT_HELDOUT_VOICES)
    out = make_corpus(args.out, hours=args.hours, voices=voices, heldout_voices=heldout,
                      test_sentences=args.test_sentences, sample_rate=args.sample_rate, seed=args.seed,
                      force=args.force)
    _say(f"wrote {out} (LJSpeech layout + corpus.json)")
    return 0


def _vocode(args) -> int:
    from .data import read_wav, write_wav
    from .pretrained import load_vocoder

    out = _output(args.output, args.force)
    vocoder = load_vocoder(args.model)
    wave, rate = read_wav(args.input)
    mel = vocoder.mel(wave, rate)
    audio = vocoder.vocode(mel, steps=args.steps, solver=args.solver, seed=args.seed)
    write_wav(out, audio, vocoder.sample_rate)
    _say(f"wrote {out} ({audio.shape[0] / vocoder.sample_rate:.2f} s at {vocoder.sample_rate} Hz)")
    return 0


def _tts(args) -> int:
    from .data import write_wav
    from .pretrained import load_tts

    out = _output(args.output, args.force)
    if not args.text.strip():
        raise ValueError("text: expected a non-empty sentence")
    pipeline = load_tts(args.model, vocoder=args.vocoder)
    audio = pipeline.synthesize(args.text, steps=args.steps, solver=args.solver, vocoder_steps=args.vocoder_steps,
                                seed=args.seed, temperature=args.temperature, length_scale=args.length_scale)
    write_wav(out, audio, pipeline.sample_rate)
    _say(f"wrote {out} ({audio.shape[0] / pipeline.sample_rate:.2f} s at {pipeline.sample_rate} Hz)")
    return 0


def register(subparsers) -> None:
    """Add ``audio`` with make-corpus / vocode / tts to the polydiff command line."""
    from polydiff.core.cli import positive_int

    formatter = argparse.RawDescriptionHelpFormatter
    audio = subparsers.add_parser("audio", help="diffusion vocoders and TTS: make-corpus, vocode, tts",
                                  formatter_class=formatter, description=__doc__.split("\n\n", 1)[1])
    sub = audio.add_subparsers(dest="audio_command", required=True, metavar="COMMAND")

    corpus = sub.add_parser("make-corpus", help="build an eSpeak NG speech corpus offline",
                            description="Synthesise sentences with eSpeak NG voices into an LJSpeech-layout folder "
                                        "with train / test (held-out sentences) / test_voice (held-out voices).",
                            epilog="example: polydiff audio make-corpus --hours 0.5 --out corpus/")
    corpus.add_argument("--out", required=True, metavar="DIR", help="corpus folder to write (refused when it "
                        "exists, unless --force)")
    corpus.add_argument("--hours", type=float, default=0.5, help="hours of training speech (default 0.5)")
    corpus.add_argument("--voices", default=None, metavar="V1,V2",
                        help="comma-separated eSpeak voices of the training split, e.g. en-us+m1,en+f3 (default: "
                             "12 English voices)")
    corpus.add_argument("--heldout-voices", default=None, metavar="V1,V2",
                        help="voices heard only in the test_voice split (default: en-gb-x-rp+f4)")
    corpus.add_argument("--test-sentences", type=positive_int, default=40,
                        help="sentences held out of training (default 40)")
    corpus.add_argument("--sample-rate", type=positive_int, default=16000, help="sample rate in Hz (default 16000)")
    corpus.add_argument("--seed", type=int, default=0, help="seed of sentences, voices and prosody (default 0)")
    corpus.add_argument("--force", action="store_true", help="replace --out when it exists")
    corpus.set_defaults(func=_make_corpus)

    vocode = sub.add_parser("vocode", help="copy synthesis: audio file -> mel -> diffusion vocoder -> audio file",
                            epilog="example: polydiff audio vocode speech.wav copy.wav --steps 12")
    vocode.add_argument("input", help="audio file to analyse (any rate; resampled to the vocoder's)")
    vocode.add_argument("output", help="audio file to write (.wav or .flac)")
    vocode.add_argument("--model", default="default", help="shipped vocoder name or a saved folder (default: "
                        "the shipped PriorGrad)")
    vocode.add_argument("--steps", type=positive_int, default=None, help="sampling steps (default: the model's)")
    vocode.add_argument("--solver", default=None, help="a core solver name, e.g. dpmpp_2m, ddim, unipc "
                        "(default: the model's)")
    vocode.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    vocode.add_argument("--force", action="store_true", help="replace the output file when it exists")
    vocode.set_defaults(func=_vocode)

    tts = sub.add_parser("tts", help="text -> speech with the shipped Grad-TTS and vocoder",
                         epilog='example: polydiff audio tts "The quick brown fox." fox.wav')
    tts.add_argument("text", help="English text to speak")
    tts.add_argument("output", help="audio file to write (.wav or .flac)")
    tts.add_argument("--model", default="tts", help="shipped TTS name or a saved folder (default: tts)")
    tts.add_argument("--vocoder", default="default", help="vocoder name or folder (default: the shipped one)")
    tts.add_argument("--steps", type=positive_int, default=None, help="Grad-TTS decoder steps (default: the model's)")
    tts.add_argument("--solver", default="dpmpp_2m", help="core solver of the decoder (default dpmpp_2m)")
    tts.add_argument("--vocoder-steps", type=positive_int, default=None,
                     help="vocoder steps (default: the vocoder's)")
    tts.add_argument("--temperature", type=float, default=None,
                     help="Grad-TTS prior temperature (default: the model's)")
    tts.add_argument("--length-scale", type=float, default=1.0, help="speaking-time factor (default 1.0)")
    tts.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    tts.add_argument("--force", action="store_true", help="replace the output file when it exists")
    tts.set_defaults(func=_tts)
