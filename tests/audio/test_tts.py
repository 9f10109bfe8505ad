"""Grad-TTS: the three losses on a real corpus batch, alignment-derived durations, synthesis, save/load."""

import numpy as np
import pytest
import torch

from polydiff.audio import MelConfig
from polydiff.audio.pretrained import TextToSpeech
from polydiff.audio.tts import SYMBOLS, GradTTS, phonemes_to_ids, tts_loss
from polydiff.audio.vocoder import DiffusionVocoder


def _small_tts(**options):
    torch.manual_seed(0)
    return GradTTS(MelConfig().to_dict(), hidden=16, encoder_layers=1, heads=2, decoder_channels=8,
                   decoder_layers=2, decoder_cycle=2, **options)


def test_phoneme_ids_cover_espeak_ipa():
    from polydiff.audio.espeak import phonemize

    ids = phonemes_to_ids(phonemize("The quick brown fox jumps over the lazy dog, thinking."))
    assert 1 not in ids  # no <unk>: every symbol eSpeak emits here is in the table
    assert max(ids) < len(SYMBOLS)


def test_losses_on_a_corpus_batch_train(corpus):
    from polydiff.audio.train import tts_dataset

    data = tts_dataset(corpus, MelConfig(), limit=4)
    model = _small_tts()
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(8):
        torch.manual_seed(1)
        losses = tts_loss(model, data, segment=32)
        assert all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = float(losses["prior"]) if first is None else first
    assert float(losses["prior"]) < first  # the encoder's mu moves towards the aligned mel frames


def test_synthesize_through_a_vocoder_and_mel_mismatch_is_refused(tmp_path):
    tts = _small_tts()
    vocoder = DiffusionVocoder(MelConfig().to_dict(), fold=4, residual_channels=8, layers=2, dilation_cycle=2,
                               cond_hidden=8, time_dim=8)
    speech = TextToSpeech(tts, vocoder).synthesize("Hello there.", steps=2, vocoder_steps=2)
    assert speech.dtype == np.float32 and speech.ndim == 1 and np.isfinite(speech).all()
    assert speech.shape[0] % 256 == 0
    other = DiffusionVocoder(MelConfig(hop=200, win=800).to_dict(), fold=4, residual_channels=8, layers=2,
                             dilation_cycle=2, cond_hidden=8, time_dim=8)
    with pytest.raises(ValueError, match="vocoder"):
        TextToSpeech(tts, other)


def test_save_load_round_trip(tmp_path):
    from polydiff.audio import load_tts

    tts = _small_tts()
    torch.nn.init.normal_(tts.decoder.out.weight, std=0.1)
    tts.save_pretrained(tmp_path / "tts")
    vocoder = DiffusionVocoder(MelConfig().to_dict(), fold=4, residual_channels=8, layers=2, dilation_cycle=2,
                               cond_hidden=8, time_dim=8)
    loaded = load_tts(tmp_path / "tts", vocoder=vocoder)
    a = loaded.tts.mel_from_text("A short test.", steps=3)
    b = tts.mel_from_text("A short test.", steps=3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_an_untrained_x0_decoder_samples_the_encoder_mean():
    tts = _small_tts()  # prediction "x0" by default; the decoder's output layer starts at zero
    ids = phonemes_to_ids("hɛloʊ ðɛɹ")
    mean = tts.mel_from_ids(ids, steps=0)
    for solver in ("ddim", "dpmpp_2m"):
        torch.testing.assert_close(tts.mel_from_ids(ids, steps=4, solver=solver), mean, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="steps"):
        tts.mel_from_ids(ids, steps=-1)


def test_initialise_copies_only_the_encoder(tmp_path):
    from polydiff.audio.train import _initialise

    source = _small_tts()
    torch.nn.init.normal_(source.decoder.out.weight, std=0.1)
    torch.nn.init.normal_(source.encoder.mu.weight, std=0.1)
    source.save_pretrained(tmp_path / "source")
    torch.manual_seed(5)
    target = GradTTS(MelConfig().to_dict(), hidden=16, encoder_layers=1, heads=2, decoder_channels=8,
                     decoder_layers=2, decoder_cycle=2)
    _initialise(target, tmp_path / "source", "encoder.")
    torch.testing.assert_close(target.encoder.mu.weight, source.encoder.mu.weight)
    assert float(target.decoder.out.weight.abs().max()) == 0.0
    with pytest.raises(ValueError, match="init_from"):
        _initialise(target, tmp_path / "source", "nothing.")
    with pytest.raises(ValueError, match="init_from"):
        _initialise(target, tmp_path, "encoder.")


def test_load_tts_applies_the_sampling_defaults_of_the_metadata(tmp_path):
    from polydiff.audio import load_tts

    tts = _small_tts()
    torch.nn.init.normal_(tts.decoder.out.weight, std=0.1)
    tts.save_pretrained(tmp_path / "tts", metadata={"sampling": {"temperature": 4.0, "steps": 3}})
    vocoder = DiffusionVocoder(MelConfig().to_dict(), fold=4, residual_channels=8, layers=2, dilation_cycle=2,
                               cond_hidden=8, time_dim=8)
    loaded = load_tts(tmp_path / "tts", vocoder=vocoder)
    assert (loaded.tts.default_temperature, loaded.tts.default_steps) == (4.0, 3)
    torch.testing.assert_close(loaded.mel("A short test."), tts.mel_from_text("A short test.", steps=3,
                                                                                temperature=4.0), rtol=0, atol=0)
