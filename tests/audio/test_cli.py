"""``polydiff audio``: copy synthesis to a file, refusal of unknown formats and of overwriting, one-line errors."""

import numpy as np
import pytest
import torch

from polydiff.audio import MelConfig
from polydiff.audio.data import read_wav, write_wav
from polydiff.audio.vocoder import DiffusionVocoder
from polydiff.core.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    vocoder = DiffusionVocoder(MelConfig().to_dict(), fold=4, residual_channels=8, layers=2, dilation_cycle=2,
                               cond_hidden=8, time_dim=8)
    folder = tmp_path_factory.mktemp("models") / "voc"
    vocoder.save_pretrained(folder)
    return folder


@pytest.fixture()
def speech(tmp_path):
    path = tmp_path / "in.wav"
    write_wav(path, (0.3 * np.sin(np.arange(22050) / 5)).astype(np.float32), 22050)
    return path


def test_vocode_writes_the_vocoder_rate(tmp_path, speech, model_dir, capsys):
    out = tmp_path / "out.wav"
    assert main(["audio", "vocode", str(speech), str(out), "--model", str(model_dir), "--steps", "2"]) == 0
    wave, rate = read_wav(out)
    assert rate == 16000 and wave.shape[0] == (1 + 16000 // 256 - 1) * 256 and np.isfinite(wave).all()
    assert "wrote" in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [("out.mp3", "out: cannot write"), ("out", "out: cannot write")])
def test_unknown_output_format_is_refused(tmp_path, speech, model_dir, name, message, capsys):
    assert main(["audio", "vocode", str(speech), str(tmp_path / name), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polydiff: error: ") and message in err[0]


def test_existing_output_needs_force(tmp_path, speech, model_dir, capsys):
    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    assert main(["audio", "vocode", str(speech), str(out), "--model", str(model_dir), "--steps", "2"]) == 2
    assert out.read_bytes() == b"keep me" and "--force" in capsys.readouterr().err
    assert main(["audio", "vocode", str(speech), str(out), "--model", str(model_dir), "--steps", "2",
                 "--force"]) == 0
    assert read_wav(out)[1] == 16000


def test_missing_input_and_bad_model_are_one_line_errors(tmp_path, model_dir, capsys):
    assert main(["audio", "vocode", str(tmp_path / "none.wav"), str(tmp_path / "o.wav"), "--model",
                 str(model_dir)]) == 2
    assert "path" in capsys.readouterr().err
    assert main(["audio", "vocode", str(tmp_path / "none.wav"), str(tmp_path / "o.wav"), "--model",
                 "no-such-model"]) == 2
    assert "name" in capsys.readouterr().err


def test_help_names_every_argument(capsys):
    assert main(["audio", "vocode", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--model", "--steps", "--solver", "--seed", "--force"):
        assert option in text
