"""Grad-TTS (Popov et al., 2021): text -> eSpeak phonemes -> encoder -> durations -> mu -> diffusion decoder.

* Encoder: phoneme embedding, a convolutional pre-net and a Transformer encoder give, per phoneme, a mean mel
  mu_i (the "average voice" of the phoneme) and, from the detached encoder output, a log-duration.
* Alignment: monotonic alignment search (numba, :mod:`.alignment`) between phonemes and mel frames under
  N(mu_i, I) during training (eq. 9-11 of the paper); the predicted durations at synthesis.
* Decoder: Grad-TTS's forward SDE with mean mu converges to N(mu, I); written for x = mu + y, the residual
  y follows an ordinary variance-preserving diffusion from N(0, I) (the paper's X_t - mu = alpha (X_0 - mu) +
  sigma eps), so any core schedule, loss and solver runs it unchanged. The network is
  :class:`polydiff.core.nn.WaveNetDenoiser` over the mel frames, conditioned on mu frame by frame. Sampling
  starts from N(0, I / temperature) (the paper's temperature tau, 1.5).
  The decoder predicts x0 (the residual y itself) by default and its output layer starts at zero, so an untrained
  decoder samples mu exactly with every core solver and training only has to add detail to it. With v- or
  eps-prediction the residual (spread about 0.4 against unit noise) is recovered from a difference of two large
  terms: a decoder trained for 600 CPU steps that way turned an intelligible mu (WER 0.52 vocoded alone) into
  noise (WER 0.97). ``steps=0`` returns mu alone (no diffusion), the diagnostic baseline of the decoder.
Losses: duration MSE on log durations, the prior loss (Gaussian NLL of the mel under the aligned mu), and the
core diffusion loss on random ``segment``-frame crops of y.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polydiff.core import Denoiser, sample
from polydiff.core.losses import diffusion_loss
from polydiff.core.nn.embeddings import SinusoidalEmbedding
from polydiff.core.nn.wavenet import WaveNetDenoiser
from polydiff.core.pretrained import PretrainedMixin
from polydiff.core.schedules import VPCosineSchedule, schedule_from_config

from .alignment import maximum_path
from .mel import MelConfig
from .vocoder import MEL_SCALE, MEL_SHIFT

__all__ = ["GradTTS", "SYMBOLS", "text_to_ids", "phonemes_to_ids", "tts_loss"]

_PUNCTUATION = " ,.!?;:-'\""
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_IPA = ("ɐɑɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃˈˌːˑʼʴʰʱʲʷˠˤ˞"
        "↓↑→↗↘ᵻ̩̃")
SYMBOLS = ("<pad>", "<unk>") + tuple(dict.fromkeys(_PUNCTUATION + _LETTERS + _IPA))
_INDEX = {s: i for i, s in enumerate(SYMBOLS)}


def phonemes_to_ids(phonemes: str) -> list[int]:
    """Symbol ids of an IPA string (unknown characters map to <unk>)."""
    return [_INDEX.get(c, 1) for c in phonemes]


def text_to_ids(text: str, voice: str = "en-us") -> list[int]:
    from .espeak import phonemize

    return phonemes_to_ids(phonemize(text, voice))


def _sequence_mask(lengths: Tensor, size: int) -> Tensor:
    return torch.arange(size, device=lengths.device)[None] < lengths[:, None]


class _Encoder(nn.Module):
    def __init__(self, n_symbols: int, hidden: int, layers: int, heads: int, n_mels: int):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, hidden)
        nn.init.normal_(self.embedding.weight, 0.0, hidden**-0.5)
        self.prenet = nn.ModuleList(nn.Conv1d(hidden, hidden, 5, padding=2) for _ in range(3))
        self.position = SinusoidalEmbedding(hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.1, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.mu = nn.Conv1d(hidden, n_mels, 1)
        self.duration = nn.Sequential(nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(),
                                      nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv1d(hidden, 1, 1))

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mask = _sequence_mask(lengths, ids.shape[1])  # (batch, N)
        m = mask[:, None].float()
        h = self.embedding(ids).transpose(1, 2) * math.sqrt(self.embedding.embedding_dim) * m
        for conv in self.prenet:
            h = (h + F.relu(conv(h))) * m
        positions = torch.arange(ids.shape[1], device=ids.device, dtype=torch.float32)
        h = h.transpose(1, 2) + self.position(positions)[None]
        h = self.norm(self.transformer(h, src_key_padding_mask=~mask)).transpose(1, 2) * m
        mu = self.mu(h) * m
        log_duration = self.duration(h.detach()).squeeze(1) * mask
        return mu, log_duration, mask


class GradTTS(nn.Module, PretrainedMixin):
    """Grad-TTS over eSpeak phonemes; the mel front end is ``mel_config`` (checked against the vocoder's).

    Args: mel_config (dict of :class:`MelConfig`), hidden / encoder_layers / heads (the encoder),
    decoder_channels / decoder_layers / decoder_cycle (the WaveNet decoder), schedule (a core schedule config),
    prediction ("eps", "v", "x0"), voice (the eSpeak voice used to phonemise).
    """

    def __init__(self, mel_config: dict | MelConfig | None = None, hidden: int = 128, encoder_layers: int = 3,
                 heads: int = 2, decoder_channels: int = 64, decoder_layers: int = 8, decoder_cycle: int = 4,
                 schedule: dict | None = None, prediction: str = "x0", voice: str = "en-us"):
        super().__init__()
        mel = MelConfig() if mel_config is None else mel_config
        mel = MelConfig.from_dict(mel) if isinstance(mel, dict) else mel
        if not isinstance(mel, MelConfig):
            raise ValueError(f"mel_config: expected a MelConfig or its dict, got {type(mel_config).__name__}")
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction: expected 'eps', 'v' or 'x0', got {prediction!r}")
        self.mel_config, self.prediction, self.voice = mel, prediction, voice
        self.schedule = schedule_from_config(schedule) if schedule else VPCosineSchedule()
        self.config = {"mel_config": mel.to_dict(), "hidden": hidden, "encoder_layers": encoder_layers,
                       "heads": heads, "decoder_channels": decoder_channels, "decoder_layers": decoder_layers,
                       "decoder_cycle": decoder_cycle, "schedule": self.schedule.config(), "prediction": prediction,
                       "voice": voice}
        self.encoder = _Encoder(len(SYMBOLS), hidden, encoder_layers, heads, mel.n_mels)
        self.decoder = WaveNetDenoiser(channels=mel.n_mels, residual_channels=decoder_channels,
                                       layers=decoder_layers, dilation_cycle=decoder_cycle, cond_channels=mel.n_mels,
                                       hop=1, cond_hidden=decoder_channels, time_dim=64)

    def forward(self, y: Tensor, t: Tensor, mu: Tensor) -> Tensor:
        """The decoder on the residual y = mel_n - mu (batch, n_mels, frames), conditioned on mu."""
        return self.decoder(y, t * 1000.0, cond=mu)

    @staticmethod
    def normalize(mel: Tensor) -> Tensor:
        return (mel + MEL_SHIFT) / MEL_SCALE

    @staticmethod
    def denormalize(mel: Tensor) -> Tensor:
        return mel * MEL_SCALE - MEL_SHIFT

    @torch.no_grad()
    def mel_from_ids(self, ids: list[int], *, steps: int = 10, solver: str = "dpmpp_2m", temperature: float = 1.5,
                     length_scale: float = 1.0, seed: int | None = 0) -> Tensor:
        """Log-mel (n_mels, frames) for one phoneme-id sequence (``steps=0``: the encoder's mean mu alone)."""
        if not ids:
            raise ValueError("ids: expected at least one phoneme")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature: expected a positive float, got {temperature!r}")
        if not (math.isfinite(length_scale) and length_scale > 0):
            raise ValueError(f"length_scale: expected a positive float, got {length_scale!r}")
        device = next(self.parameters()).device
        ids_t = torch.tensor([ids], device=device)
        training = self.training
        self.eval()  # no dropout at synthesis
        try:
            mu, log_duration, _ = self.encoder(ids_t, torch.tensor([len(ids)], device=device))
        finally:
            self.train(training)
        durations = torch.ceil(log_duration.exp() * length_scale).clamp_min(1).long()[0]
        mu_frames = torch.repeat_interleave(mu[0], durations, dim=1)[None]  # (1, n_mels, frames)
        frames = max(mu_frames.shape[-1], 4)
        if mu_frames.shape[-1] < frames:
            mu_frames = F.pad(mu_frames, (0, frames - mu_frames.shape[-1]), mode="replicate")
        generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        noise = torch.randn(mu_frames.shape, generator=generator, device=device) / math.sqrt(temperature)
        y = torch.zeros_like(mu_frames) if steps == 0 else sample(
            Denoiser(self, self.schedule, self.prediction), noise, solver=solver, steps=steps, final_zero=True,
            cond={"mu": mu_frames})  # final_zero: the last step returns the denoised mel, no residual noise
        mel = self.denormalize(mu_frames + y)[0]
        return mel.clamp_min(math.log(self.mel_config.log_floor))

    def mel_from_text(self, text: str, **options) -> Tensor:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text: expected a non-empty string")
        return self.mel_from_ids(text_to_ids(text, self.voice), **options)


def tts_loss(model, batch, segment: int = 64) -> dict:
    """Grad-TTS's three losses on a padded batch (ids (B, N), id_lengths (B,), mel (B, n_mels, T), mel_lengths)."""
    ids, id_lengths, mel, mel_lengths = batch
    tts = getattr(model, "module", model)
    n, t = int(id_lengths.max()), int(mel_lengths.max())
    ids, mel = ids[:, :n], tts.normalize(mel[..., :t])
    mu, log_duration, id_mask = tts.encoder(ids, id_lengths)
    mel_mask = _sequence_mask(mel_lengths, t)
    attention_mask = id_mask[:, :, None] & mel_mask[:, None, :]
    with torch.no_grad():  # log N(mel_j; mu_i, I) up to a constant, (B, N, T)
        score = mu.transpose(1, 2) @ mel - 0.5 * (mu**2).sum(1)[..., None] - 0.5 * (mel**2).sum(1)[:, None]
        path = maximum_path(score, attention_mask)
    durations = path.sum(-1)
    duration_loss = (((log_duration - torch.log(durations.clamp_min(1e-8))) * id_mask) ** 2).sum() / id_mask.sum()
    mu_frames = mu @ path  # (B, n_mels, T)
    frame_mask = mel_mask[:, None].float()
    prior_loss = (0.5 * ((mel - mu_frames) ** 2 + math.log(2 * math.pi)) * frame_mask).sum() / (
        frame_mask.sum() * mel.shape[1])
    # decoder on random crops of `segment` frames (utterances are padded by repeating their last frame)
    lengths = mel_lengths.clamp_min(1)
    seg = min(segment, t)
    starts = (torch.rand(ids.shape[0], device=mel.device) * (lengths - seg).clamp_min(0).float()).long()
    index = (starts[:, None] + torch.arange(seg, device=mel.device)[None]).clamp(max=lengths[:, None] - 1)
    gather = index[:, None].expand(-1, mel.shape[1], -1)
    target = torch.gather(mel, 2, gather)
    mu_crop = torch.gather(mu_frames, 2, gather).detach()
    diff = diffusion_loss(model, tts.schedule, target - mu_crop, prediction=tts.prediction, cond={"mu": mu_crop})
    return {"loss": duration_loss + prior_loss + diff, "duration": duration_loss.detach(),
            "prior": prior_loss.detach(), "diffusion": diff.detach()}
