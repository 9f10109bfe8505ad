"""Metrics against exact answers: identical signals, known WER edit counts, a pure tone's STFT distance."""

import numpy as np
import pytest
import torch

from polydiff.audio import MelConfig
from polydiff.audio.evaluate import log_mel_l1, mcd, mrstft, pesq_wb, stoi, word_error_rate


@pytest.fixture(scope="module")
def speech():
    from polydiff.audio.espeak import ESPEAK_RATE, synthesize
    from polydiff.audio.mel import resample

    return resample(synthesize("The quick brown fox jumps over the lazy dog.", "en-us+m1"), ESPEAK_RATE,
                    16000).numpy()


def test_identical_signals_score_perfectly(speech):
    config = MelConfig()
    assert log_mel_l1(speech, speech, config) == 0.0
    assert mcd(speech, speech, config) == 0.0
    assert mrstft(speech, speech) == 0.0
    assert stoi(speech, speech, 16000) == pytest.approx(1.0, abs=1e-6)
    assert pesq_wb(speech, speech, 16000) > 4.5


def test_noise_lowers_every_score(speech):
    rng = np.random.default_rng(0)
    noisy = speech + 0.05 * rng.standard_normal(speech.shape).astype(np.float32)
    config = MelConfig()
    assert pesq_wb(speech, noisy, 16000) < 2.5 and stoi(speech, noisy, 16000) < 0.99
    assert log_mel_l1(speech, noisy, config) > 0.1 and mrstft(speech, noisy) > 0.1 and mcd(speech, noisy, config) > 1


def test_mrstft_of_a_scaled_signal_is_the_spectral_convergence_plus_log_ratio():
    x = torch.sin(torch.arange(8000) * 0.3).numpy()
    # |X| vs |0.5 X| everywhere above the floor: convergence 0.5, log distance log 2 (floor-clamped bins excluded)
    value = mrstft(x, 0.5 * x, floor=1e-12)
    assert value == pytest.approx(0.5 + np.log(2), rel=1e-3)


@pytest.mark.parametrize("references, hypotheses, expected", [
    (["a b c d"], ["a b c d"], 0.0),
    (["a b c d"], ["a x c d"], 0.25),
    (["a b c d"], ["a c d"], 0.25),
    (["a b"], ["a b c d"], 1.0),
    (["one two", "three four five"], ["one", "three four five six"], 0.4),
])
def test_word_error_rate(references, hypotheses, expected):
    assert word_error_rate(references, hypotheses) == pytest.approx(expected)


def test_bigram_language_model_is_valid_arpa(tmp_path):
    from polydiff.audio.evaluate import write_bigram_lm
    from polydiff.audio.text import make_sentences, vocabulary

    words = vocabulary()
    assert {"the", "farmer", "farmers", "carry", "nineteen"} <= set(words)
    path = write_bigram_lm(tmp_path / "corpus.lm", make_sentences(50, seed=1), words)
    text = open(path, encoding="utf-8").read()
    header, body = text.split("\\1-grams:\n")
    unigrams, bigrams = body.split("\\2-grams:\n")
    declared = dict(line.split("=") for line in header.splitlines() if line.startswith("ngram"))
    assert int(declared["ngram 1"]) == len(unigrams.strip().splitlines())
    assert int(declared["ngram 2"]) == len(bigrams.replace("\\end\\", "").strip().splitlines())
    assert set(words) <= {line.split()[1] for line in unigrams.strip().splitlines()}
    with pytest.raises(ValueError, match="sentences, vocabulary"):
        write_bigram_lm(tmp_path / "empty.lm", [], words)
