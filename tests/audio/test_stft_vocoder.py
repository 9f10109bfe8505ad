"""StftVocoder: the pseudo-inverse prior, the zero-initialised residual, the mel projection, any hop, MelConfig
checks, the core loss and a save/load round trip."""

import math

import numpy as np
import pytest
import torch

from polydiff.audio import MelConfig, mel_spectrogram
from polydiff.audio.stft_vocoder import StftVocoder, stft_log_magnitude
from polydiff.audio.train import stft_vocoder_loss
from polydiff.core import Denoiser, sample


def _small(mel_config=None, **options):
    torch.manual_seed(0)
    kwargs = dict(dim=16, hidden=32, blocks=2, kernel=3, time_dim=8, phase_iters=4)
    kwargs.update(options)
    return StftVocoder((mel_config or MelConfig()).to_dict(), **kwargs)


def _speechlike(samples=8192, rate=16000):
    t = torch.arange(samples) / rate
    f0 = 120 + 20 * torch.sin(2 * math.pi * 3 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    wave = sum(torch.sin(k * phase) / k for k in range(1, 20))
    return 0.1 * wave * torch.hann_window(samples, periodic=False)


@pytest.mark.parametrize("solver", ["ddim", "dpmpp_2m", "unipc"])
def test_untrained_model_samples_the_prior_exactly(solver):
    vocoder = _small()
    mel = mel_spectrogram(_speechlike(), vocoder.mel_config)[None]
    noise = torch.randn(1, vocoder.bins, mel.shape[-1])
    with torch.no_grad():
        y = sample(Denoiser(vocoder, vocoder.schedule, vocoder.prediction), noise, solver=solver, steps=6,
                   cond={"mel": mel})
    # zero-initialised x0-prediction: every solver returns the prior, up to the noise the schedule leaves at t_min
    _, sigma_min = vocoder.schedule.alpha_sigma(torch.tensor(vocoder.schedule.t_min))
    assert y.abs().max() < 5 * float(sigma_min) * noise.abs().max()


@pytest.mark.parametrize("compression", [0.0, 0.5])
def test_encode_decode_round_trip_and_the_prior(compression):
    vocoder = _small(project_iters=0, residual_scale=0.5, compression=compression)
    wave = _speechlike()
    mel = mel_spectrogram(wave, vocoder.mel_config)[None]
    log_magnitude = stft_log_magnitude(wave, vocoder.mel_config, vocoder.floor)[None]
    assert log_magnitude.shape == (1, 513, mel.shape[-1])
    y = vocoder.encode(log_magnitude, mel)
    torch.testing.assert_close(vocoder.decode(y, mel).log(), log_magnitude, rtol=0, atol=1e-4)
    prior = vocoder.prior_log_magnitude(mel).exp()  # the pseudo-inverse nearly reproduces the mel
    rebuilt = torch.einsum("fm,bft->bmt", vocoder.bank, prior).clamp_min(1e-5).log()
    loud = mel > mel.max() - 6
    assert (rebuilt - mel)[loud].abs().mean() < 0.1


def test_projection_restores_the_mel():
    vocoder = _small(project_iters=6)
    mel = mel_spectrogram(_speechlike(), vocoder.mel_config)[None]
    y = torch.randn(1, vocoder.bins, mel.shape[-1])  # a residual that moves energy across bands
    magnitude = vocoder.decode(y, mel)
    rebuilt = torch.einsum("fm,bft->bmt", vocoder.bank, magnitude).clamp_min(1e-5).log()
    loud = mel > mel.max() - 6
    unprojected = _small(project_iters=0).decode(y, mel)
    before = (torch.einsum("fm,bft->bmt", vocoder.bank, unprojected).clamp_min(1e-5).log() - mel)[loud].abs().mean()
    after = (rebuilt - mel)[loud].abs().mean()
    assert after < 0.05 < before


@pytest.mark.parametrize("hop", [128, 256, 300])
def test_any_hop_size(hop):
    config = MelConfig(hop=hop, win=1024)
    vocoder = _small(config)
    mel = mel_spectrogram(_speechlike(), config)
    out = vocoder.vocode(mel, steps=2, solver="ddim")
    assert out.dtype == np.float32 and out.shape == ((mel.shape[-1] - 1) * hop,) and np.isfinite(out).all()
    assert np.sqrt(np.mean(out**2)) > 0.005


def test_mel_config_mismatch_and_bad_arguments():
    vocoder = _small()
    other = MelConfig(hop=200, win=800)
    mel = mel_spectrogram(_speechlike(), other)
    with pytest.raises(ValueError, match="mel_config"):
        vocoder.vocode(mel, mel_config=other)
    with pytest.raises(ValueError, match="steps"):
        vocoder.vocode(mel_spectrogram(_speechlike(), vocoder.mel_config), steps=0)
    for name, value in (("floor", 0.0), ("residual_scale", -1.0), ("dim", 0), ("kernel", 4), ("project_iters", -1),
                        ("compression", 2.0)):
        with pytest.raises(ValueError, match=name):
            _small(**{name: value})


def test_core_loss_trains_and_save_load_round_trip(tmp_path):
    vocoder = _small()
    wave = torch.stack([_speechlike(), 0.5 * _speechlike()])
    mel = mel_spectrogram(wave, vocoder.mel_config)
    magnitude = stft_log_magnitude(wave, vocoder.mel_config, vocoder.floor).half()
    loss = stft_vocoder_loss(vocoder, (magnitude, mel))
    loss.backward()
    assert torch.isfinite(loss) and vocoder.out.weight.grad.abs().sum() > 0
    with torch.no_grad():
        vocoder.out.weight.normal_(0, 0.01)
    vocoder.save_pretrained(tmp_path / "stft")
    again = StftVocoder.from_pretrained(tmp_path / "stft")
    np.testing.assert_allclose(again.vocode(mel[0], steps=2, seed=3), vocoder.vocode(mel[0], steps=2, seed=3),
                               atol=1e-5)
