"""The eSpeak NG corpus: layout, splits by sentence and by voice, phonemes from eSpeak, refusal to overwrite."""

import csv
import json

import numpy as np
import pytest

from polydiff.audio import espeak
from polydiff.audio.data import load_corpus, make_corpus, read_wav, write_wav
from polydiff.audio.text import make_sentences


def test_sentences_are_distinct_and_seeded():
    a, b = make_sentences(300, seed=3), make_sentences(300, seed=3)
    assert a == b and len(set(a)) == 300
    assert make_sentences(50, seed=4) != a[:50]


def test_espeak_speaks_and_phonemizes():
    audio = espeak.synthesize("Hello world.", "en-us+m1")
    assert audio.dtype == np.int16 and audio.size > espeak.ESPEAK_RATE // 4 and np.abs(audio).max() > 1000
    assert espeak.phonemize("hello world") == "həlˈoʊ wˈɜːld"


def test_corpus_layout_and_splits(corpus):
    utterances = load_corpus(corpus)
    meta = json.loads((corpus / "corpus.json").read_text())
    assert meta["sample_rate"] == 16000
    with open(corpus / "metadata.csv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="|"))
    assert [r[0] for r in rows] == [u.id for u in utterances]
    train, test, test_voice = (load_corpus(corpus, s) for s in ("train", "test", "test_voice"))
    assert len(test) == 2 and len(test_voice) == 2 and len(train) >= 5
    assert not {u.text for u in train} & {u.text for u in test}  # held-out sentences
    assert {u.text for u in test} == {u.text for u in test_voice}
    assert {u.voice for u in test_voice} == {"en-gb-x-rp+f4"}  # held-out voice
    assert "en-gb-x-rp+f4" not in {u.voice for u in train}
    for u in utterances:
        wave, rate = read_wav(u.path)
        assert rate == 16000 and 0.5 < np.abs(wave).max() <= 0.91 and u.phonemes


def test_existing_corpus_is_kept_without_force(corpus):
    before = sorted(p.name for p in (corpus / "wavs").iterdir())
    with pytest.raises(ValueError, match="out"):
        make_corpus(corpus, hours=0.001, test_sentences=1)
    assert sorted(p.name for p in (corpus / "wavs").iterdir()) == before


def test_ljspeech_folder_without_corpus_json(tmp_path):
    (tmp_path / "wavs").mkdir()
    for i in range(4):
        write_wav(tmp_path / "wavs" / f"LJ{i}.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "metadata.csv").write_text("".join(f"LJ{i}|Raw {i}.|Normal {i}.\n" for i in range(4)))
    items = load_corpus(tmp_path, test_fraction=0.25)
    assert [u.split for u in items] == ["train", "train", "train", "test"]
    assert items[0].text == "Normal 0." and items[0].path.name == "LJ0.wav"


def test_wav_round_trip(tmp_path):
    wave = (0.5 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    write_wav(tmp_path / "a.wav", wave, 16000)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000
    np.testing.assert_allclose(back, wave, atol=1 / 32768)


def test_heldout_only_rebuild_has_the_same_test_sentences(corpus, tmp_path):
    rebuilt = make_corpus(tmp_path / "heldout", hours=0.005, voices=["en-us+m1", "en+f3"],
                          heldout_voices=["en-gb-x-rp+f4"], test_sentences=2, seed=0, splits=("test", "test_voice"),
                          limit=1)
    original = {u.text for u in load_corpus(corpus, "test")}
    items = load_corpus(rebuilt)
    assert [u.split for u in items] == ["test", "test_voice"]
    assert {u.text for u in items} <= original
    meta = json.loads((rebuilt / "corpus.json").read_text())
    assert set(meta["train_sentences"]) == {u.text for u in load_corpus(corpus, "train")}
