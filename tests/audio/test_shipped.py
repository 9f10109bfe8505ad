"""The weights shipped inside the package load through safetensors + JSON and make non-silent, finite speech."""

import json

import numpy as np
import pytest

from polydiff.audio import load_tts, load_vocoder
from polydiff.audio.pretrained import WEIGHTS, shipped_vocoders


def test_weights_are_safetensors_and_json_within_budget():
    files = [p for p in WEIGHTS.rglob("*") if p.is_file()]
    assert files and {p.suffix for p in files} <= {".json", ".safetensors"}
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20  # 20 MB for every shipped model together
    for config in WEIGHTS.glob("*/config.json"):
        assert json.loads(config.read_text())["format"] == "polydiff-pretrained"


@pytest.mark.parametrize("name", ["default", *shipped_vocoders()])
def test_shipped_vocoder_copy_synthesis(name):
    from polydiff.audio.espeak import ESPEAK_RATE, synthesize

    vocoder = load_vocoder(name)
    speech = synthesize("Shipped weights work.", "en-us+m3").astype(np.float32) / 32768
    mel = vocoder.mel(speech, ESPEAK_RATE)
    out = vocoder.vocode(mel, steps=4)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert out.shape[0] == (mel.shape[-1] - 1) * vocoder.mel_config.hop
    assert np.sqrt(np.mean(out**2)) > 0.01  # not silent


def test_shipped_tts_synthesizes_speech():
    pipeline = load_tts()
    speech = pipeline.synthesize("Hello world.", steps=4, vocoder_steps=4)
    assert np.isfinite(speech).all() and speech.shape[0] > pipeline.sample_rate // 4
    assert np.sqrt(np.mean(speech**2)) > 0.01
