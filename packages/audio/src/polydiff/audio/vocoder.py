"""Diffusion vocoders: DiffWave (Kong et al., 2021) and PriorGrad (Lee et al., 2022) on one network.

The waveform x (samples at ``mel_config.sample_rate``) is modelled as
    x = sigma_prior(mel) * y,   y ~ the diffusion model, prior N(0, I),
so the diffusion runs on the whitened signal y with any core schedule, loss and solver, unchanged:
* PriorGrad: sigma_prior is the frame-level signal level predicted from the mel energy,
  sigma = max(prior_scale * sqrt(mean_m mel_m^2), prior_floor), held over each block. The diffusion prior of x is
  then N(0, diag(sigma^2)), PriorGrad's data-dependent prior, and the plain MSE on y's noise equals PriorGrad's
  Sigma^-1-weighted loss on x's noise (Lee et al., 2022, eq. 6).
* DiffWave: sigma_prior is one constant (the data's RMS), the standard N(0, I) prior up to scale.

The network is :class:`polydiff.core.nn.WaveNetDenoiser` run on the waveform folded into ``fold`` channels by an
orthonormal block transform (a sequency-ordered Walsh-Hadamard basis of ``fold`` samples, the Haar wavelet-packet
split of FreGrad (Nguyen et al., 2024) taken to ``log2(fold)`` levels). The transform is orthogonal, so white
noise stays white, the loss equals the waveform loss, and the WaveNet runs at 1 / fold of the sample rate with
wider convolutions: much more quality per CPU-second than a full-rate WaveNet.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor, nn

from polydiff.core import Denoiser, sample
from polydiff.core.nn.wavenet import WaveNetDenoiser
from polydiff.core.pretrained import PretrainedMixin
from polydiff.core.schedules import NoiseSchedule, VPCosineSchedule

from .mel import MelConfig, as_waveform, check_mel, mel_spectrogram, resample

__all__ = ["DiffusionVocoder", "VocoderAPI", "hadamard_basis", "mdct_basis", "PRIORS", "TRANSFORMS"]

PRIORS = ("priorgrad", "diffwave", "spectral")
TRANSFORMS = ("hadamard", "mdct")
MEL_SHIFT, MEL_SCALE = 5.0, 3.0  # network input (log_mel + 5) / 3, roughly zero mean and unit spread


def hadamard_basis(size: int) -> Tensor:
    """Orthonormal (size, size) Walsh-Hadamard basis in sequency order (rows by number of sign changes)."""
    if size < 1 or size & (size - 1):
        raise ValueError(f"fold: expected a power of two, got {size}")
    matrix = torch.ones(1, 1, dtype=torch.float64)
    while matrix.shape[0] < size:
        matrix = torch.cat([torch.cat([matrix, matrix], 1), torch.cat([matrix, -matrix], 1)], 0)
    changes = (matrix[:, 1:] != matrix[:, :-1]).sum(1)
    return (matrix[changes.argsort()] / math.sqrt(size)).float()


def mdct_basis(bands: int) -> Tensor:
    """(2 * bands, bands) windowed MDCT analysis matrix with the sine window (Princen & Bradley, 1986): frames of
    2N samples at hop N, z_k = basis^T x[kN : kN + 2N]; with circular framing the transform is orthonormal
    (time-domain aliasing cancellation), and synthesis overlap-adds basis z_k."""
    n = torch.arange(2 * bands, dtype=torch.float64)[:, None]
    f = torch.arange(bands, dtype=torch.float64)[None]
    window = torch.sin(math.pi * (n + 0.5) / (2 * bands))
    cosine = math.sqrt(2.0 / bands) * torch.cos(math.pi / bands * (n + 0.5 + bands / 2) * (f + 0.5))
    return (window * cosine).float()


def _band_interpolation(config: MelConfig, bands: int) -> Tensor:
    """(bands, n_mels) power weights: STFT bin k takes the convex combination of the mel channels whose filters
    cover it (weights proportional to the filter values), and band f averages the bins inside
    [f, f + 1) * sr / 2N; the band envelope is sqrt(weights @ mel^2)."""
    import torchaudio

    bank = torchaudio.functional.melscale_fbanks(config.n_fft // 2 + 1, config.fmin, config.fmax, config.n_mels,
                                                 config.sample_rate, norm="slaney", mel_scale="slaney").double()
    covered = bank.sum(1, keepdim=True)
    share = torch.where(covered > 0, bank / covered.clamp_min(1e-30), torch.zeros_like(bank))
    frequencies = torch.linspace(0, config.sample_rate / 2, bank.shape[0], dtype=torch.float64)
    band = (frequencies * 2 * bands / config.sample_rate).floor().clamp(max=bands - 1).long()
    matrix = torch.zeros(bands, config.n_mels, dtype=torch.float64)
    matrix.index_add_(0, band, share)
    counts = torch.bincount(band, minlength=bands).double().clamp_min(1)[:, None]
    return (matrix / counts).float()


class VocoderAPI:
    """The task API every vocoder shares: ``sample_rate``, ``mel(waveform, sample_rate)``, ``check_mel`` and
    ``real_time_factor``; subclasses define ``mel_config`` and ``vocode``."""

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    def mel(self, waveform, sample_rate: int) -> Tensor:
        """Log-mel (n_mels, frames) of a waveform (samples,) in this model's MelConfig, resampling from
        ``sample_rate`` when it differs."""
        waveform = as_waveform(waveform)
        if waveform.ndim != 1:
            raise ValueError(f"waveform: expected one channel (samples,), got {tuple(waveform.shape)}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1000:
            raise ValueError(f"sample_rate: expected the waveform's rate in Hz (int >= 1000), got {sample_rate!r}")
        if sample_rate != self.sample_rate:
            waveform = resample(waveform, int(sample_rate), self.sample_rate)
        return mel_spectrogram(waveform, self.mel_config)

    def check_mel(self, mel, mel_config: MelConfig | None = None) -> Tensor:
        if mel_config is not None and mel_config != self.mel_config:
            diff = {k: (v, getattr(self.mel_config, k)) for k, v in mel_config.to_dict().items()
                    if getattr(self.mel_config, k) != v}
            raise ValueError(f"mel_config: the mel was made with another MelConfig than the vocoder's "
                             f"(field: (given, vocoder's) = {diff})")
        return check_mel(mel, self.mel_config)

    def _vocode_inputs(self, mel, mel_config, steps, solver, seed, device):
        """What ``vocode`` starts from: the checked mel as a batch on ``device``, whether one mel was given, the
        resolved ``steps`` and ``solver`` and the seeded generator (None for a random seed)."""
        mel = self.check_mel(mel, mel_config)
        single = mel.ndim == 2
        mel = (mel[None] if single else mel).to(device)
        steps = self.default_steps if steps is None else steps
        solver = self.default_solver if solver is None else solver
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: expected a positive int, got {steps!r}")
        generator = torch.Generator(device=mel.device).manual_seed(seed) if seed is not None else None
        return mel, single, steps, solver, generator

    def _sample(self, noise: Tensor, mel: Tensor, solver: str, steps: int, grid) -> Tensor:
        """The model's sample from ``noise`` given ``mel`` through the core solver; ``grid`` None takes the fitted
        grid shipped for that solver and step count, else "logsnr"."""
        if grid is None:
            grid = self.fitted_grids.get(f"{solver}:{steps}", "logsnr")
            if not isinstance(grid, str):
                grid = torch.tensor(grid, dtype=torch.float64)
        return sample(Denoiser(self, self.schedule, self.prediction), noise, solver=solver, steps=steps, grid=grid,
                      cond={"mel": mel})

    def real_time_factor(self, seconds: float = 2.0, steps: int | None = None, solver: str | None = None) -> float:
        """Wall time / audio time of vocoding ``seconds`` of audio (one call, after one warm-up)."""
        frames = int(seconds * self.sample_rate / self.mel_config.hop) + 1
        mel = torch.full((self.mel_config.n_mels, frames), -4.0)
        self.vocode(mel[:, :8], steps=steps, solver=solver)
        start = time.perf_counter()
        self.vocode(mel, steps=steps, solver=solver)
        return (time.perf_counter() - start) / seconds


class DiffusionVocoder(VocoderAPI, nn.Module, PretrainedMixin):
    """mel -> waveform by diffusion. ``mel_config`` (a dict of :class:`MelConfig`) is part of the model: a mel
    of another configuration is refused.

    Args:
        mel_config: the MelConfig (or its dict) of the conditioning mels.
        prior: "priorgrad" (mel-energy prior), "diffwave" (constant prior) or "spectral" (a PriorGrad prior per
            MDCT band: sigma(f, k) = band_scale[f] * env(f, k), env the mel magnitude interpolated to the band's
            centre frequency; needs ``transform="mdct"``).
        prior_scale: PriorGrad: sigma = prior_scale * sqrt(mean mel^2); DiffWave: the constant sigma; spectral:
            a factor on every band scale.
        band_scale: spectral prior: one scale per band (fitted on training data), or None for ones.
        transform: "hadamard" (block Walsh-Hadamard, ``fold`` samples) or "mdct" (circular MDCT with ``fold``
            bands at hop ``fold``); both orthonormal.
        prior_floor: PriorGrad's lower bound on sigma.
        fold: samples per block of the orthonormal fold (a power of two dividing ``mel_config.hop``).
        residual_channels, layers, dilation_cycle, cond_hidden, time_dim: the WaveNet's size.
        schedule: the noise schedule's config dict (default: VP cosine).
        prediction: what the network predicts ("eps", "v", "x0").
    Attributes: ``sample_rate``, ``mel_config`` (a MelConfig), ``schedule``, ``network``.
    """

    def __init__(self, mel_config: dict | MelConfig | None = None, prior: str = "priorgrad", prior_scale: float = 1.0,
                 prior_floor: float = 0.02, fold: int = 16, residual_channels: int = 96, layers: int = 10,
                 dilation_cycle: int = 5, cond_hidden: int = 128, time_dim: int = 64, schedule: dict | None = None,
                 prediction: str = "v", transform: str = "hadamard", band_scale: list | None = None):
        super().__init__()
        mel = MelConfig() if mel_config is None else mel_config
        mel = MelConfig.from_dict(mel) if isinstance(mel, dict) else mel
        if not isinstance(mel, MelConfig):
            raise ValueError(f"mel_config: expected a MelConfig or its dict, got {type(mel_config).__name__}")
        if prior not in PRIORS:
            raise ValueError(f"prior: expected one of {PRIORS}, got {prior!r}")
        if not (math.isfinite(prior_scale) and prior_scale > 0):
            raise ValueError(f"prior_scale: expected a positive float, got {prior_scale!r}")
        if not (math.isfinite(prior_floor) and prior_floor > 0):
            raise ValueError(f"prior_floor: expected a positive float, got {prior_floor!r}")
        if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1 or fold & (fold - 1) or mel.hop % fold:
            raise ValueError(f"fold: expected a power of two dividing the hop ({mel.hop}), got {fold!r}")
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction: expected 'eps', 'v' or 'x0', got {prediction!r}")
        if transform not in TRANSFORMS:
            raise ValueError(f"transform: expected one of {TRANSFORMS}, got {transform!r}")
        if prior == "spectral" and transform != "mdct":
            raise ValueError("prior: 'spectral' needs transform='mdct' (bands with a centre frequency)")
        if band_scale is not None:
            band_scale = [float(v) for v in band_scale]
            if len(band_scale) != fold or not all(math.isfinite(v) and v > 0 for v in band_scale):
                raise ValueError(f"band_scale: expected {fold} positive floats, got {len(band_scale)} values")
        from polydiff.core.schedules import schedule_from_config

        self.schedule: NoiseSchedule = schedule_from_config(schedule) if schedule else VPCosineSchedule()
        self.mel_config = mel
        self.prior, self.prior_scale, self.prior_floor = prior, float(prior_scale), float(prior_floor)
        self.fold, self.prediction = fold, prediction
        self.config = {"mel_config": mel.to_dict(), "prior": prior, "prior_scale": self.prior_scale,
                       "prior_floor": self.prior_floor, "fold": fold, "residual_channels": residual_channels,
                       "layers": layers, "dilation_cycle": dilation_cycle, "cond_hidden": cond_hidden,
                       "time_dim": time_dim, "schedule": self.schedule.config(), "prediction": prediction,
                       "transform": transform, "band_scale": band_scale}
        self.transform = transform
        self.network = WaveNetDenoiser(channels=fold, residual_channels=residual_channels, layers=layers,
                                       dilation_cycle=dilation_cycle, cond_channels=mel.n_mels, hop=mel.hop // fold,
                                       cond_hidden=cond_hidden, time_dim=time_dim)
        basis = hadamard_basis(fold) if transform == "hadamard" else mdct_basis(fold)
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("band_scale", torch.tensor(band_scale or [1.0] * fold), persistent=False)
        if prior == "spectral":
            self.register_buffer("band_from_mel", _band_interpolation(mel, fold), persistent=False)

    # ---------------------------------------------------------------- transforms
    def _frame_index(self, length: int, device) -> Tensor:
        start = torch.arange(0, length, self.fold, device=device)[:, None]
        return (start + torch.arange(2 * self.fold, device=device)[None]) % length  # circular MDCT frames

    def fold_signal(self, x: Tensor) -> Tensor:
        """(batch, samples) -> (batch, fold, samples / fold), orthonormal."""
        if self.transform == "mdct":
            frames = x[:, self._frame_index(x.shape[-1], x.device)]  # (batch, K, 2N)
            return torch.einsum("kn,bjk->bnj", self.basis, frames)
        blocks = x.reshape(x.shape[0], -1, self.fold)
        return torch.einsum("ij,bnj->bin", self.basis, blocks)

    def unfold_signal(self, z: Tensor) -> Tensor:
        if self.transform == "mdct":
            length = z.shape[-1] * self.fold
            frames = torch.einsum("kn,bnj->bjk", self.basis, z)  # (batch, K, 2N)
            out = torch.zeros(z.shape[0], length, dtype=z.dtype, device=z.device)
            index = self._frame_index(length, z.device).reshape(-1)
            return out.index_add_(1, index, frames.reshape(z.shape[0], -1))
        return torch.einsum("ij,bin->bnj", self.basis, z).reshape(z.shape[0], -1)

    def block_centres(self, blocks: int, device) -> Tensor:
        """Centre of each block / MDCT frame in mel-frame units (mel frame j is centred on sample j * hop)."""
        offset = self.fold if self.transform == "mdct" else self.fold / 2
        return (torch.arange(blocks, device=device, dtype=torch.float64) * self.fold + offset) / self.mel_config.hop

    def prior_std(self, mel: Tensor, length: int) -> Tensor:
        """sigma_prior per block: (batch, 1 or fold, length / fold), from log-mel (batch, n_mels, frames)."""
        if self.prior == "diffwave":
            return torch.full((mel.shape[0], 1, length // self.fold), self.prior_scale, dtype=mel.dtype,
                              device=mel.device)
        if self.prior == "spectral":  # (batch, bands, frames): mel magnitude at each band's centre frequency
            level = torch.einsum("fm,bmt->bft", self.band_from_mel, (2 * mel).exp()).sqrt() * (
                self.band_scale[:, None] * self.prior_scale)
        else:
            level = (2 * mel).exp().mean(1, keepdim=True).sqrt() * self.prior_scale  # (batch, 1, frames)
        blocks = length // self.fold
        # linear interpolation of the frame levels at each block's centre
        position = self.block_centres(blocks, mel.device)
        left = position.floor().long().clamp(max=mel.shape[-1] - 1)
        right = (left + 1).clamp(max=mel.shape[-1] - 1)
        if self.prior == "spectral":  # the upper envelope of the two nearest frames: short MDCT frames see onsets
            sigma = torch.maximum(level[..., left], level[..., right])  # that the long mel window smears
            return (sigma.square() + self.prior_floor**2).sqrt()
        weight = (position - left.to(torch.float64)).to(mel.dtype)
        sigma = torch.lerp(level[..., left], level[..., right], weight)
        return sigma.clamp_min(self.prior_floor)

    def forward(self, y: Tensor, t: Tensor, mel: Tensor) -> Tensor:
        """The network on the whitened, folded state y (batch, fold, blocks) with log-mel (batch, n_mels, frames)."""
        return self.network(y, t * 1000.0, cond=(mel + MEL_SHIFT) / MEL_SCALE)  # t in [0, 1] -> [0, 1000]

    def encode(self, waveform: Tensor, mel: Tensor) -> Tensor:
        """Training target: waveform (batch, samples) -> whitened folded y (batch, fold, samples / fold)."""
        return self.fold_signal(waveform) / self.prior_std(mel, waveform.shape[-1])

    def decode(self, y: Tensor, mel: Tensor) -> Tensor:
        length = y.shape[-1] * self.fold
        return self.unfold_signal(y * self.prior_std(mel, length))

    # ---------------------------------------------------------------- the task API
    @torch.no_grad()
    def vocode(self, mel, steps: int | None = None, solver: str | None = None, *, mel_config: MelConfig | None = None,
               grid=None, seed: int | None = 0, return_tensor: bool = False):
        """Waveform (float32 numpy, samples = (frames - 1) * hop) from a log-mel (n_mels, frames).

        steps, solver: sampling budget (defaults: the model's ``default_steps`` / ``default_solver``); grid: a
        grid kind or explicit times (default: the fitted grid shipped with the model for that solver and step
        count, else "logsnr"); mel_config: the MelConfig the mel was made with (checked when given);
        seed: the noise seed (None: random).
        """
        mel, single, steps, solver, generator = self._vocode_inputs(mel, mel_config, steps, solver, seed,
                                                                    self.basis.device)
        length = (mel.shape[-1] - 1) * self.mel_config.hop
        noise = torch.randn((mel.shape[0], self.fold, length // self.fold), generator=generator, device=mel.device)
        y = self._sample(noise, mel, solver, steps, grid)
        x = self.decode(y, mel).clamp(-1, 1)
        x = x[0] if single else x
        return x if return_tensor else x.cpu().numpy()

    default_steps = 6
    default_solver = "dpmpp_2m"
    fitted_grids: dict = {}
