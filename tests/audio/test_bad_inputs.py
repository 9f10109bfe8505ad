"""Bad input -> ValueError naming the argument, for every public entry point of polydiff.audio."""

import math

import numpy as np
import pytest
import torch

from polydiff.audio import MelConfig, mel_spectrogram, resample
from polydiff.audio.data import load_corpus, make_corpus, read_wav, write_wav
from polydiff.audio.evaluate import pesq_wb, word_error_rate
from polydiff.audio.peers import griffin_lim
from polydiff.audio.vocoder import DiffusionVocoder

TONE = (0.3 * np.sin(np.arange(4096) / 7)).astype(np.float32)


def _vocoder(**options):
    torch.manual_seed(0)
    return DiffusionVocoder(MelConfig().to_dict(), fold=4, residual_channels=8, layers=2, dilation_cycle=2,
                            cond_hidden=8, time_dim=8, **options)


VOCODER = _vocoder()
GOOD_MEL = mel_spectrogram(TONE, MelConfig())

CASES = [
    ("MelConfig.hop", lambda: MelConfig(hop=0)),
    ("MelConfig.win", lambda: MelConfig(win=2048)),
    ("MelConfig.fmin, fmax", lambda: MelConfig(fmax=9000.0)),
    ("MelConfig.log_floor", lambda: MelConfig(log_floor=0.0)),
    ("MelConfig.power", lambda: MelConfig(power=3.0)),
    ("mel_config", lambda: MelConfig.from_dict({"hop": 256, "bogus": 1})),
    ("config", lambda: mel_spectrogram(TONE, {"hop": 256})),
    ("waveform", lambda: mel_spectrogram(np.array([np.nan] * 4096, np.float32), MelConfig())),
    ("waveform", lambda: mel_spectrogram(np.zeros(100, np.float32), MelConfig())),
    ("waveform", lambda: mel_spectrogram(np.zeros((2, 2, 4096), np.float32), MelConfig())),
    ("waveform", lambda: VOCODER.mel(np.full(4096, np.inf, np.float32), 16000)),
    ("waveform", lambda: VOCODER.mel(np.zeros((2, 4096), np.float32), 16000)),
    ("sample_rate", lambda: VOCODER.mel(TONE, 0)),
    ("sample_rate", lambda: VOCODER.mel(TONE, 16000.5)),
    ("new_rate", lambda: resample(TONE, 16000, -1)),
    ("mel", lambda: VOCODER.vocode(GOOD_MEL[:64])),
    ("mel", lambda: VOCODER.vocode(torch.full_like(GOOD_MEL, math.nan))),
    ("mel", lambda: VOCODER.vocode(GOOD_MEL - 20.0)),  # below log(log_floor): another MelConfig
    ("mel", lambda: VOCODER.vocode("not a mel")),
    ("mel_config", lambda: VOCODER.vocode(GOOD_MEL, mel_config=MelConfig(hop=128))),
    ("steps", lambda: VOCODER.vocode(GOOD_MEL, steps=0)),
    ("solver", lambda: VOCODER.vocode(GOOD_MEL, solver="nope", steps=2)),
    ("prior", lambda: _vocoder(prior="gaussian")),
    ("prior_scale", lambda: _vocoder(prior_scale=-1.0)),
    ("fold", lambda: DiffusionVocoder(MelConfig(hop=300).to_dict(), fold=16)),
    ("prediction", lambda: _vocoder(prediction="score")),
    ("n_iter", lambda: griffin_lim(GOOD_MEL, MelConfig(), n_iter=0)),
    ("mel", lambda: griffin_lim(GOOD_MEL[:40], MelConfig())),
    ("path", lambda: read_wav("/nonexistent/file.wav")),
    ("path", lambda: write_wav("out.mp3", TONE, 16000)),
    ("waveform", lambda: write_wav("out.wav", np.array([np.nan], np.float32), 16000)),
    ("folder", lambda: load_corpus("/nonexistent/corpus")),
    ("split", lambda: load_corpus(".", split="validation")),
    ("hours", lambda: make_corpus("unused", hours=0)),
    ("voices", lambda: make_corpus("unused", voices=[])),
    ("heldout_voices", lambda: make_corpus("unused", voices=["en-us"], heldout_voices=["en-us"])),
    ("voice", lambda: make_corpus("unused-corpus-dir", voices=["xx-nonexistent"], hours=0.001)),
    ("sample_rate", lambda: pesq_wb(TONE, TONE, 12.5)),
    ("references, hypotheses", lambda: word_error_rate(["a"], [])),
]


@pytest.mark.parametrize("name, call", CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_input_raises_value_error_naming_it(name, call):
    with pytest.raises(ValueError) as info:
        call()
    assert name in str(info.value)


def test_tts_bad_inputs():
    from polydiff.audio.tts import GradTTS

    tts = GradTTS(hidden=16, encoder_layers=1, heads=2, decoder_channels=8, decoder_layers=2, decoder_cycle=2)
    for name, call in [("text", lambda: tts.mel_from_text("   ")), ("ids", lambda: tts.mel_from_ids([])),
                       ("temperature", lambda: tts.mel_from_ids([5, 6], temperature=0.0)),
                       ("length_scale", lambda: tts.mel_from_ids([5, 6], length_scale=-1.0)),
                       ("prediction", lambda: GradTTS(prediction="flowish"))]:
        with pytest.raises(ValueError, match=name):
            call()
