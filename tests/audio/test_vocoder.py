"""DiffusionVocoder: orthonormal fold, PriorGrad prior, any hop size, MelConfig checks, save/load round trip."""

import math

import numpy as np
import pytest
import torch

from polydiff.audio import MelConfig, mel_spectrogram, resample
from polydiff.audio.vocoder import DiffusionVocoder, hadamard_basis


def _small(mel_config=None, **options):
    torch.manual_seed(0)
    kwargs = dict(fold=4, residual_channels=8, layers=2, dilation_cycle=2, cond_hidden=8, time_dim=8)
    kwargs.update(options)
    return DiffusionVocoder((mel_config or MelConfig()).to_dict(), **kwargs)


@pytest.mark.parametrize("size", [1, 2, 8, 16])
def test_hadamard_basis_is_orthonormal(size):
    basis = hadamard_basis(size).double()
    torch.testing.assert_close(basis @ basis.T, torch.eye(size, dtype=torch.float64), rtol=0, atol=1e-7)
    assert (basis[0] > 0).all()  # row 0 is the block mean (no sign change)


def test_fold_is_orthonormal_and_inverts():
    vocoder = _small(fold=8)
    x = torch.randn(3, 256)
    z = vocoder.fold_signal(x)
    assert z.shape == (3, 8, 32)
    torch.testing.assert_close(z.square().sum(), x.square().sum())
    torch.testing.assert_close(vocoder.unfold_signal(z), x, rtol=0, atol=1e-6)


def test_priorgrad_prior_follows_the_mel_level_and_floor():
    vocoder = _small(prior_scale=0.5, prior_floor=0.02)  # fold 4: 64 blocks per 256-sample frame
    frames = 5
    mel = torch.full((1, 80, frames), math.log(1e-5))
    mel[..., 2] = math.log(0.4)  # frame level sqrt(mean(0.4^2)) = 0.4 -> sigma 0.5 * 0.4 = 0.2
    sigma = vocoder.prior_std(mel, (frames - 1) * 256)[0, 0].double().numpy()
    levels = np.full(frames, 0.5e-5)
    levels[2] = 0.2
    centres = (np.arange((frames - 1) * 64) + 0.5) / 64  # block centres in frame units
    expected = np.maximum(np.interp(centres, np.arange(frames), levels), 0.02)
    np.testing.assert_allclose(sigma, expected, rtol=1e-5)
    assert sigma.min() == pytest.approx(0.02) and 0.19 < sigma.max() < 0.2


def test_diffwave_prior_is_constant():
    vocoder = _small(prior="diffwave", prior_scale=0.1)
    sigma = vocoder.prior_std(torch.randn(2, 80, 4), 3 * 256)
    assert torch.all(sigma == 0.1)


def test_encode_decode_round_trip():
    vocoder = _small()
    x = 0.1 * torch.randn(2, 1024)
    mel = mel_spectrogram(x, vocoder.mel_config)[..., :5]
    torch.testing.assert_close(vocoder.decode(vocoder.encode(x, mel), mel), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("hop, fold", [(128, 4), (256, 16), (300, 4)])
def test_any_hop_size_vocodes_to_frames_times_hop(hop, fold):
    config = MelConfig(hop=hop, win=1024, n_fft=1024)
    vocoder = _small(config, fold=fold)
    wave = 0.1 * torch.randn(hop * 6)
    mel = vocoder.mel(wave, 16000)
    assert mel.shape == (80, 7)
    out = vocoder.vocode(mel, steps=2, solver="ddim")
    assert out.shape == ((7 - 1) * hop,) and np.isfinite(out).all()


def test_vocode_is_seeded_and_any_core_solver_runs():
    vocoder = _small()
    mel = vocoder.mel(0.1 * torch.randn(2048), 16000)
    a, b = vocoder.vocode(mel, steps=3, seed=1), vocoder.vocode(mel, steps=3, seed=1)
    np.testing.assert_array_equal(a, b)
    for solver in ("ddim", "dpmpp_2m", "unipc", "euler"):
        assert np.isfinite(vocoder.vocode(mel, steps=3, solver=solver)).all()


def test_mel_resamples_other_rates():
    vocoder = _small()
    wave = torch.sin(torch.arange(22050) * 2 * math.pi * 440 / 22050) * 0.3
    direct = vocoder.mel(wave, 22050)
    manual = mel_spectrogram(resample(wave, 22050, 16000), vocoder.mel_config)
    torch.testing.assert_close(direct, manual)


def test_a_mel_of_another_config_is_refused():
    vocoder = _small()
    other = MelConfig(hop=200, win=800, n_fft=1024)
    mel = mel_spectrogram(0.1 * torch.randn(4000), other)
    with pytest.raises(ValueError, match="mel_config"):
        vocoder.vocode(mel, mel_config=other, steps=2)
    with pytest.raises(ValueError, match="n_mels"):
        vocoder.vocode(mel_spectrogram(0.1 * torch.randn(4000), MelConfig(n_mels=64)), steps=2)


def test_save_load_round_trip(tmp_path):
    from polydiff.audio import load_vocoder

    vocoder = _small()
    torch.nn.init.normal_(vocoder.network.out.weight, std=0.1)
    vocoder.save_pretrained(tmp_path / "voc")
    loaded = load_vocoder(tmp_path / "voc")
    assert loaded.mel_config == vocoder.mel_config and loaded.prior_scale == vocoder.prior_scale
    mel = vocoder.mel(0.1 * torch.randn(2048), 16000)
    np.testing.assert_array_equal(loaded.vocode(mel, steps=2), vocoder.vocode(mel, steps=2))
