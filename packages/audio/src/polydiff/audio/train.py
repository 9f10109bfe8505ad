"""Training the vocoder with the core Trainer (exact resume from ``checkpoint_dir``).

``train_vocoder(corpus, out, ...)`` cuts the training split of a corpus into fixed segments (hop-aligned, the
mel of each segment taken from its whole utterance), fits the prior scale, trains a :class:`DiffusionVocoder`
with ``polydiff.core.training.Trainer`` and the core diffusion loss, and saves the EMA weights to ``out``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from polydiff.core.losses import diffusion_loss

from .data import load_corpus, read_wav
from .mel import MelConfig, mel_spectrogram, resample
from .vocoder import DiffusionVocoder

__all__ = ["training_segments", "stft_training_segments", "stft_vocoder_loss", "train_stft_vocoder",
           "fit_residual_scale", "ship_stft_vocoder", "fit_prior_scale", "vocoder_loss", "train_vocoder", "tts_dataset",
           "tts_validation", "train_tts", "ship_tts",
           "export_checkpoint", "fit_vocoder_grids"]


def _waves_and_mels(corpus, split: str, mel_config: MelConfig):
    """(waveform at the config's rate, its log-mel) of each utterance of one split longer than one FFT window."""
    for utterance in load_corpus(corpus, split):
        wave, rate = read_wav(utterance.path)
        wave = resample(wave, rate, mel_config.sample_rate)
        if wave.shape[-1] > mel_config.n_fft:
            yield wave, mel_spectrogram(wave, mel_config)


def training_segments(corpus, mel_config: MelConfig, *, segment: int = 8192, stride: int | None = None,
                      split: str = "train", limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(audio (N, segment), log-mel (N, n_mels, segment / hop + 1)) from the utterances of one split."""
    if segment % mel_config.hop:
        raise ValueError(f"segment: expected a multiple of the hop ({mel_config.hop}), got {segment}")
    stride = segment if stride is None else stride
    if stride % mel_config.hop or stride < 1:
        raise ValueError(f"stride: expected a positive multiple of the hop ({mel_config.hop}), got {stride}")
    frames = segment // mel_config.hop + 1
    audio, mels = [], []
    for wave, mel in _waves_and_mels(corpus, split, mel_config):
        for start in range(0, wave.shape[-1] - segment + 1, stride):
            audio.append(wave[start:start + segment])
            mels.append(mel[:, start // mel_config.hop: start // mel_config.hop + frames])
        if limit is not None and len(audio) >= limit:
            break
    if not audio:
        raise ValueError(f"corpus: no utterance of split {split!r} is longer than one segment ({segment} samples)")
    return torch.stack(audio), torch.stack(mels)


def fit_prior_scale(audio: torch.Tensor, mel: torch.Tensor, hop: int) -> float:
    """The c of sigma = c sqrt(mean_m mel^2): the median ratio of each voiced frame's RMS to its mel level."""
    frames = audio.shape[-1] // hop
    rms = audio[:, : frames * hop].reshape(audio.shape[0], frames, hop).square().mean(-1).sqrt()
    level = (2 * mel[..., :frames]).exp().mean(1).sqrt()
    voiced = rms > 0.02
    if int(voiced.sum()) < 10:
        raise ValueError("audio: fewer than 10 voiced frames to fit the prior scale")
    return float((rms[voiced] / level[voiced]).median())


def fit_band_scale(vocoder: DiffusionVocoder, audio: torch.Tensor, mel: torch.Tensor) -> list[float]:
    """Spectral prior: per band f, the robust scale of |z_f| / env_f over blocks with a clear envelope
    (median / 0.6745, the median absolute value of a unit Gaussian)."""
    z = vocoder.fold_signal(audio)
    level = torch.einsum("fm,bmt->bft", vocoder.band_from_mel, (2 * mel).exp()).sqrt()
    position = vocoder.block_centres(z.shape[-1], audio.device)
    left = position.floor().long().clamp(max=mel.shape[-1] - 1)
    right = (left + 1).clamp(max=mel.shape[-1] - 1)
    env = torch.maximum(level[..., left], level[..., right])
    scales = []
    for band in range(z.shape[1]):
        e, v = env[:, band].reshape(-1), z[:, band].reshape(-1).abs()
        keep = e > e.quantile(0.5)
        scales.append(float((v[keep] / e[keep]).median() / 0.6745))
    return scales


def edge_ramp(length: int, width: int, device=None) -> torch.Tensor:
    """(length,) ones with sin^2 fades of ``width`` samples at both ends."""
    ramp = torch.ones(length, device=device)
    fade = torch.sin(torch.linspace(0, math.pi / 2, width, device=device)) ** 2
    ramp[:width], ramp[-width:] = fade, fade.flip(0)
    return ramp


def vocoder_loss(model, batch) -> torch.Tensor:
    """The core diffusion loss on the whitened folded waveform (``batch`` = (audio, mel))."""
    audio, mel = batch
    vocoder = getattr(model, "module", model)
    if vocoder.transform == "mdct":  # the circular MDCT joins the segment's ends: fade them (128 samples)
        audio = audio * edge_ramp(audio.shape[-1], 128, audio.device)
    target = vocoder.encode(audio, mel)
    return diffusion_loss(model, vocoder.schedule, target, prediction=vocoder.prediction, cond={"mel": mel})


def train_vocoder(corpus, out, *, prior: str = "priorgrad", steps: int = 4000, batch_size: int = 8,
                  segment: int = 8192, stride: int | None = 6144, lr: float = 4e-4, checkpoint_dir=None,
                  checkpoint_every: int = 100, mel_config: MelConfig | None = None, model_options: dict | None = None,
                  limit: int | None = None, seed: int = 0, log_every: int = 25,
                  warmup_steps: int = 100) -> DiffusionVocoder:
    """Train a vocoder on ``corpus`` (train split) and save its EMA weights to ``out`` (see the module doc)."""
    from polydiff.core.training import TrainConfig, Trainer

    mel_config = MelConfig() if mel_config is None else mel_config
    audio, mel = training_segments(corpus, mel_config, segment=segment, stride=stride, limit=limit)
    options = dict(model_options or {})
    scale = fit_prior_scale(audio, mel, mel_config.hop)
    if prior == "diffwave":
        scale = float(audio.square().mean().sqrt())
    if prior == "spectral":
        scale = 1.0
        options.setdefault("transform", "mdct")
        probe = DiffusionVocoder(mel_config.to_dict(), prior=prior, **options)
        ramp = edge_ramp(audio.shape[-1], 128)
        options["band_scale"] = fit_band_scale(probe, audio[:2000] * ramp, mel[:2000])
    torch.manual_seed(seed)
    model = DiffusionVocoder(mel_config.to_dict(), prior=prior, prior_scale=scale, **options)
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(warmup_steps, steps - 1),
                         lr_schedule="cosine", ema_decay=0.999, grad_clip=1.0, log_every=log_every,
                         checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                         checkpoint_every=checkpoint_every, keep_last=2, seed=seed, device="cpu")
    trainer = Trainer(model, vocoder_loss, (audio, mel), config)
    trainer.fit()
    best = trainer.ema_model
    best.save_pretrained(Path(out), metadata={"steps": trainer.step, "segments": int(audio.shape[0]),
                                              "corpus": Path(corpus).name, "segment": segment, "lr": lr,
                                              "batch_size": batch_size, "seconds": round(
                                                  float(audio.shape[0] * segment / mel_config.sample_rate), 1)})
    return best


def stft_training_segments(corpus, mel_config: MelConfig, *, frames: int = 64, stride: int | None = None,
                           split: str = "train", floor: float = 1e-4, limit: int | None = None):
    """(STFT log-magnitude (N, n_fft // 2 + 1, frames) in float16, log-mel (N, n_mels, frames)) cut from the
    utterances of one split; both are computed on the whole utterance, so segment edges are exact."""
    from .stft_vocoder import stft_log_magnitude

    stride = frames if stride is None else stride
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames: expected an int >= 2, got {frames!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride: expected a positive int, got {stride!r}")
    magnitudes, mels = [], []
    for wave, mel in _waves_and_mels(corpus, split, mel_config):
        magnitude = stft_log_magnitude(wave, mel_config, floor)
        for start in range(0, mel.shape[-1] - frames + 1, stride):
            magnitudes.append(magnitude[:, start:start + frames].half())
            mels.append(mel[:, start:start + frames])
        if limit is not None and len(mels) >= limit:
            break
    if not mels:
        raise ValueError(f"corpus: no utterance of split {split!r} is longer than {frames} frames")
    return torch.stack(magnitudes), torch.stack(mels)


def stft_vocoder_loss(model, batch) -> torch.Tensor:
    """The core diffusion loss (x0-prediction) on the scaled log-magnitude residual over the prior."""
    magnitude, mel = batch
    vocoder = getattr(model, "module", model)
    target = vocoder.encode(magnitude.float(), mel)
    return diffusion_loss(model, vocoder.schedule, target, prediction=vocoder.prediction, cond={"mel": mel})


def fit_residual_scale(vocoder, magnitude: torch.Tensor, mel: torch.Tensor, gain: float) -> float:
    """The StftVocoder's residual scale: the spread of log|S| - log P(mel) over the data, divided by ``gain``."""
    if not (isinstance(gain, (int, float)) and math.isfinite(gain) and gain > 0):
        raise ValueError(f"gain: expected a positive float, got {gain!r}")
    scale = vocoder.residual_scale
    with torch.no_grad():
        residual = torch.cat([vocoder.encode(magnitude[i:i + 256].float(), mel[i:i + 256]).flatten()
                              for i in range(0, len(mel), 256)])
    return float(residual.std()) * scale / gain


def train_stft_vocoder(corpus, out, *, steps: int = 4000, batch_size: int = 16, frames: int = 64, lr: float = 1e-3,
                       checkpoint_dir=None, checkpoint_every: int = 100, mel_config: MelConfig | None = None,
                       model_options: dict | None = None, limit: int | None = None, seed: int = 0,
                       log_every: int = 25, warmup_steps: int = 100, gain: float = 4.0):
    """Train a :class:`~polydiff.audio.stft_vocoder.StftVocoder` on the corpus's train split with the core
    Trainer and save its EMA weights to ``out``. The residual scale is fitted on the data first: the residual's
    spread divided by ``gain``, so the diffusion state has spread ``gain`` against unit noise (a log-SNR shift of
    2 log(gain): the sampler spends its steps refining rather than removing noise the prior does not carry)."""
    from polydiff.core.training import TrainConfig, Trainer

    from .stft_vocoder import StftVocoder

    mel_config = MelConfig() if mel_config is None else mel_config
    options = dict(model_options or {})
    floor = float(options.get("floor", 1e-4))
    magnitude, mel = stft_training_segments(corpus, mel_config, frames=frames, floor=floor, limit=limit)
    options["residual_scale"] = fit_residual_scale(StftVocoder(mel_config.to_dict(), **options), magnitude, mel,
                                                   gain)
    torch.manual_seed(seed)
    model = StftVocoder(mel_config.to_dict(), **options)
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(warmup_steps, steps - 1),
                         lr_schedule="cosine", ema_decay=0.999, grad_clip=1.0, log_every=log_every,
                         checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                         checkpoint_every=checkpoint_every, keep_last=2, seed=seed, device="cpu")
    trainer = Trainer(model, stft_vocoder_loss, (magnitude, mel), config)
    trainer.fit()
    trainer.ema_model.save_pretrained(Path(out), metadata={"steps": trainer.step, "segments": int(mel.shape[0]),
                                                           "corpus": Path(corpus).name, "frames": frames, "lr": lr,
                                                           "batch_size": batch_size, "gain": gain,
                                                           "corpus_config": _corpus_config(corpus)})
    return trainer.ema_model


def tts_dataset(corpus, mel_config: MelConfig, *, split: str = "train", limit: int | None = None):
    """Padded tensors (ids (N, P), id_lengths (N,), log-mel (N, n_mels, T), mel_lengths (N,)) of one split;
    utterances with more phonemes than frames are skipped."""
    from .tts import phonemes_to_ids

    ids, mels = [], []
    for utterance in load_corpus(corpus, split)[:limit]:
        if not utterance.phonemes:
            raise ValueError(f"corpus: utterance {utterance.id} has no phonemes (build it with make-corpus)")
        wave, rate = read_wav(utterance.path)
        mel = mel_spectrogram(resample(wave, rate, mel_config.sample_rate), mel_config)
        sequence = phonemes_to_ids(utterance.phonemes)
        if len(sequence) <= mel.shape[-1]:
            ids.append(torch.tensor(sequence))
            mels.append(mel)
    if not ids:
        raise ValueError(f"corpus: no usable utterance in split {split!r}")
    id_lengths = torch.tensor([len(s) for s in ids])
    mel_lengths = torch.tensor([m.shape[-1] for m in mels])
    id_pad = torch.zeros(len(ids), int(id_lengths.max()), dtype=torch.long)
    mel_pad = torch.full((len(ids), mel_config.n_mels, int(mel_lengths.max())), math.log(mel_config.log_floor))
    for i, (sequence, mel) in enumerate(zip(ids, mels, strict=True)):
        id_pad[i, : len(sequence)] = sequence
        mel_pad[i, :, : mel.shape[-1]] = mel
    return id_pad, id_lengths, mel_pad, mel_lengths


def tts_validation(corpus, vocoder, *, count: int = 8, steps: int = 10, temperature: float = 1.5, seed: int = 0):
    """``eval_fn(trainer) -> {"wer", "wer_mu", "log_mel_l1"}`` for the Trainer: Grad-TTS (the EMA weights) + the
    vocoder on the last ``count`` sentences of the corpus's test split (the bench scores the first ones), read by
    pocketsphinx with the bigram language model of the training sentences; ``wer_mu`` vocodes the encoder's mean
    alone (no diffusion), ``log_mel_l1`` is against the eSpeak recording after DTW alignment."""
    import json
    import tempfile

    import numpy as np

    from .evaluate import transcribe, word_error_rate, write_bigram_lm
    from .text import vocabulary

    utterances = load_corpus(corpus, "test")[-count:]
    if not utterances:
        raise ValueError(f"corpus: no test sentences in {str(corpus)!r} to validate on")
    meta = json.loads((Path(corpus) / "corpus.json").read_text(encoding="utf-8"))
    sentences = meta.get("train_sentences") or [u.text for u in load_corpus(corpus, "train")]
    language_model = write_bigram_lm(Path(tempfile.mkdtemp(prefix="polydiff-audio-lm-")) / "bigram.lm", sentences,
                                     vocabulary())
    references = [u.text for u in utterances]
    reference_mels = [vocoder.mel(*read_wav(u.path)) for u in utterances]

    def evaluate(trainer) -> dict:
        from .bench import _dtw_l1
        from .tts import text_to_ids

        tts = trainer.ema_model
        heard, heard_mu, distances = [], [], []
        for utterance, reference in zip(utterances, reference_mels, strict=True):
            ids = text_to_ids(utterance.text, tts.voice)
            for count_steps, out in ((steps, heard), (0, heard_mu)):
                mel = tts.mel_from_ids(ids, steps=count_steps, temperature=temperature, seed=seed)
                audio = vocoder.vocode(mel, seed=seed)
                out.append(transcribe(audio, vocoder.sample_rate, language_model))
                if count_steps:
                    distances.append(_dtw_l1(reference, vocoder.mel(audio, vocoder.sample_rate)))
        return {"wer": word_error_rate(references, heard), "wer_mu": word_error_rate(references, heard_mu),
                "log_mel_l1": float(np.mean(distances))}

    return evaluate


def train_tts(corpus, out, *, steps: int = 3000, batch_size: int = 16, lr: float = 1e-3, checkpoint_dir=None,
              checkpoint_every: int = 50, mel_config: MelConfig | None = None, model_options: dict | None = None,
              limit: int | None = None, seed: int = 0, log_every: int = 25, warmup_steps: int = 100,
              init_from=None, init_prefix: str = "encoder.", eval_every: int | None = None, keep_last: int = 2,
              vocoder="default"):
    """Train Grad-TTS on the corpus's train split with the core Trainer; save the EMA weights to ``out``.

    ``init_from``: a saved GradTTS folder or a Trainer checkpoint (``step-N``) whose weights under
    ``init_prefix`` ("encoder.": the phoneme encoder and duration predictor; "": everything) start the run (a
    resumed run loads its own checkpoint instead). ``eval_every``: validate with :func:`tts_validation` (and
    ``vocoder``) every so many steps, logged as ``eval/wer`` etc. in ``checkpoint_dir/metrics.jsonl``."""
    from polydiff.core.training import TrainConfig, Trainer

    from .tts import GradTTS, tts_loss

    mel_config = MelConfig() if mel_config is None else mel_config
    data = tts_dataset(corpus, mel_config, limit=limit)
    torch.manual_seed(seed)
    model = GradTTS(mel_config.to_dict(), **(model_options or {}))
    if init_from is not None:
        _initialise(model, Path(init_from), init_prefix)
    eval_fn = None
    if eval_every:
        from .pretrained import load_vocoder

        eval_fn = tts_validation(corpus, vocoder if hasattr(vocoder, "vocode") else load_vocoder(vocoder))
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(warmup_steps, steps - 1),
                         lr_schedule="cosine", ema_decay=0.995, grad_clip=1.0, log_every=log_every,
                         eval_every=eval_every, checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                         checkpoint_every=checkpoint_every, keep_last=keep_last, seed=seed, device="cpu")
    trainer = Trainer(model, tts_loss, data, config, eval_fn=eval_fn)
    trainer.fit()
    trainer.ema_model.save_pretrained(Path(out), metadata={"steps": trainer.step, "utterances": int(data[0].shape[0]),
                                                           "corpus": Path(corpus).name, "lr": lr,
                                                           "batch_size": batch_size})
    return trainer.ema_model


def _initialise(model, source: Path, prefix: str) -> None:
    """Copy the weights of ``source`` (a saved model folder or a Trainer checkpoint) whose names start with
    ``prefix`` into ``model``; shapes must match."""
    from safetensors.torch import load_file

    for name in ("ema.safetensors", "model.safetensors"):
        if (source / name).is_file():
            weights = load_file(str(source / name))
            break
    else:
        raise ValueError(f"init_from: no ema.safetensors or model.safetensors in {str(source)!r}")
    own = model.state_dict()
    chosen = {k: v for k, v in weights.items() if k.startswith(prefix) and k in own}
    if not chosen:
        raise ValueError(f"init_from: no weights named {prefix}* in {str(source)!r}")
    wrong = [k for k, v in chosen.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"init_from: shapes differ from the model's for {wrong[:3]}")
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in chosen.items()}})


def ship_tts(corpus, checkpoint, out, *, model_options: dict | None = None, half: bool = True,
             metadata: dict | None = None, temperature: float = 1.5, steps: int = 10):
    """Write a shippable GradTTS folder (EMA weights, float16 when ``half``) from a Trainer checkpoint of
    :func:`train_tts` built with the same ``model_options``; ``temperature`` and ``steps`` are stored as the
    sampling defaults that :func:`~polydiff.audio.load_tts` applies."""
    import json

    from .tts import GradTTS

    metadata = {**(metadata or {}), "sampling": {"temperature": float(temperature), "steps": int(steps)}}
    checkpoint = Path(checkpoint)
    log = checkpoint.parent / "metrics.jsonl"
    if log.is_file() and checkpoint.name.startswith("step-"):  # the validation of this step, when one was logged
        step = int(checkpoint.name.split("-")[-1])
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("step") == step and "eval/wer" in record:
                metadata["validation"] = {k[5:]: v for k, v in record.items() if k.startswith("eval/")}
    model = GradTTS(MelConfig().to_dict(), **(model_options or {}))
    export_checkpoint(checkpoint, out, model, corpus=corpus, metadata=metadata)
    if half:
        from polydiff.core.pretrained import read_config

        (model.half()).save_pretrained(Path(out), metadata=read_config(out)["metadata"])
    return model.float()


def _corpus_config(corpus) -> dict:
    import json

    meta = json.loads((Path(corpus) / "corpus.json").read_text(encoding="utf-8"))
    return {key: meta.get(key) for key in ("hours", "test_sentences", "seed", "voices", "heldout_voices",
                                           "sample_rate")}


def export_checkpoint(checkpoint, out, model, *, corpus, metadata: dict | None = None):
    """Save the EMA weights of a Trainer checkpoint folder (``.../step-N``) into ``model`` (built with the
    training configuration) and write it to ``out`` with ``save_pretrained``; the metadata records the step and
    the corpus configuration (so the bench can rebuild the held-out split)."""
    from polydiff.core.training.checkpoint import load_module

    checkpoint = Path(checkpoint)
    weights = checkpoint / "ema.safetensors"
    if not weights.is_file():
        weights = checkpoint / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"checkpoint: no ema.safetensors or model.safetensors in {str(checkpoint)!r}")
    load_module(model, weights)
    step = int(checkpoint.name.split("-")[-1]) if checkpoint.name.startswith("step-") else None
    info = {"steps": step, "corpus_config": _corpus_config(corpus), **(metadata or {})}
    model.eval().save_pretrained(Path(out), metadata=info)
    return model


def ship_stft_vocoder(corpus, checkpoint, out, *, frames: int = 64, gain: float = 4.0, model_options=None,
                      grid_steps=(6, 12), solver: str = "dpmpp_2m", temperature: float = 1.0, half: bool = True):
    """Write a shippable StftVocoder folder from a Trainer checkpoint of :func:`train_stft_vocoder` (same corpus,
    ``frames``, ``gain`` and ``model_options``; the residual scale is fitted again, deterministically): EMA
    weights (float16 when ``half``), fitted core grids of ``solver`` at ``grid_steps`` and the sampling defaults
    in the metadata (``temperature``: the default spread of the starting state)."""
    from polydiff.core.pretrained import read_config

    from .stft_vocoder import StftVocoder

    mel_config = MelConfig()
    options = dict(model_options or {})
    magnitude, mel = stft_training_segments(corpus, mel_config, frames=frames, floor=float(options.get("floor", 1e-4)))
    options["residual_scale"] = fit_residual_scale(StftVocoder(mel_config.to_dict(), **options), magnitude, mel,
                                                   gain)
    model = StftVocoder(mel_config.to_dict(), **options)
    export_checkpoint(checkpoint, out, model, corpus=corpus, metadata={"frames": frames, "gain": gain})
    grids = fit_vocoder_grids(model, corpus, solver=solver, steps=tuple(grid_steps), batch=1, iterations=8,
                              segment=32 * mel_config.hop, reference_steps=64, temperature=temperature)
    metadata = read_config(out)["metadata"]
    metadata["sampling"] = {"steps": int(grid_steps[0]), "solver": solver, "grids": grids,
                            "temperature": float(temperature)}
    (model.half() if half else model).save_pretrained(Path(out), metadata=metadata)
    return model.float()


def fit_vocoder_grids(vocoder, corpus, *, solver: str = "dpmpp_2m", steps=(6, 12), batch: int = 2,
                      segment: int = 4096, seed: int = 0, iterations: int = 20, reference_steps: int = 128,
                      temperature: float | None = None) -> dict:
    """Fitted core grids (``polydiff.core.fitted_grid.fit_grid``) of ``solver`` at each step count, on a
    calibration batch of training segments: {"solver:steps": [times]}. ``temperature``: calibrate from starting
    states of that spread (as the vocoder samples them) instead of noised data."""
    from polydiff.core import Denoiser
    from polydiff.core.fitted_grid import fit_grid

    if hasattr(vocoder, "phase"):  # the STFT vocoder: segments of log-magnitude frames
        audio, mel = stft_training_segments(corpus, vocoder.mel_config, frames=segment // vocoder.mel_config.hop,
                                            floor=vocoder.floor, limit=batch * 8)
        audio = audio.float()
    else:
        audio, mel = training_segments(corpus, vocoder.mel_config, segment=segment, limit=batch * 8)
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(audio.shape[0], generator=generator)[:batch]
    audio, mel = audio[pick], mel[pick]
    with torch.no_grad():
        data = vocoder.encode(audio, mel).detach()
    vocoder = copy.deepcopy(vocoder).double()  # fit_grid works in float64
    mel = mel.double()
    denoiser = Denoiser(vocoder, vocoder.schedule, vocoder.prediction)
    grids = {}
    for count in steps:
        start = {"data": data} if temperature is None else {
            "x_start": temperature * torch.randn(data.shape, generator=torch.Generator().manual_seed(seed),
                                                 dtype=torch.float64)}
        grid = fit_grid(denoiser, solver, count, **start, solver_options={"cond": {"mel": mel}},
                        generator=torch.Generator().manual_seed(seed), iterations=iterations,
                        reference_steps=reference_steps)
        grids[f"{solver}:{count}"] = [float(t) for t in grid]
    return grids


if __name__ == "__main__":  # pragma: no cover - the background training entry
    import argparse

    parser = argparse.ArgumentParser(description="train a polydiff-audio vocoder")
    parser.add_argument("corpus", help="corpus folder (make-corpus output or LJSpeech layout)")
    parser.add_argument("out", help="folder for the trained model")
    parser.add_argument("--model", default="vocoder", choices=("vocoder", "stft", "tts"),
                        help="what to train: a waveform-domain vocoder, the STFT prior-residual vocoder or Grad-TTS")
    parser.add_argument("--prior", default="priorgrad", choices=("priorgrad", "diffwave", "spectral"),
                        help="the prior")
    parser.add_argument("--fold", type=int, default=16, help="samples per block / MDCT bands")
    parser.add_argument("--channels", type=int, default=96, help="WaveNet residual channels")
    parser.add_argument("--layers", type=int, default=10, help="WaveNet layers")
    parser.add_argument("--prior-floor", type=float, default=0.02, help="lower bound of the prior's sigma")
    parser.add_argument("--transform", default=None, choices=("hadamard", "mdct"),
                        help="orthonormal waveform transform (default: mdct for the spectral prior, else hadamard)")
    parser.add_argument("--steps", type=int, default=4000, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=8, help="segments per step")
    parser.add_argument("--segment", type=int, default=8192, help="samples per training segment")
    parser.add_argument("--lr", type=float, default=4e-4, help="peak learning rate (cosine decay)")
    parser.add_argument("--checkpoint-dir", default=None, help="Trainer checkpoints (resumes from here)")
    parser.add_argument("--dim", type=int, default=192, help="STFT vocoder: ConvNeXt width")
    parser.add_argument("--hidden", type=int, default=576, help="STFT vocoder: ConvNeXt MLP width")
    parser.add_argument("--blocks", type=int, default=8, help="STFT vocoder: ConvNeXt blocks")
    parser.add_argument("--frames", type=int, default=64, help="STFT vocoder: frames per training segment")
    parser.add_argument("--phase-iters", type=int, default=32, help="STFT vocoder: Griffin-Lim iterations")
    parser.add_argument("--compression", type=float, default=0.0,
                        help="STFT vocoder: residual domain, 0 = log-magnitude, else |S|^compression")
    parser.add_argument("--gain", type=float, default=4.0, help="STFT vocoder: residual spread / noise spread")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="STFT vocoder, TTS: default spread (TTS: prior temperature) written when shipping")
    parser.add_argument("--sampling-steps", type=int, default=10, help="TTS: default decoder steps written when "
                                                                         "shipping")
    parser.add_argument("--ship-from", default=None,
                        help="STFT vocoder, TTS: write OUT from this Trainer checkpoint (step-N folder) instead of "
                             "training")
    parser.add_argument("--prediction", default="x0", choices=("x0", "v", "eps"), help="TTS: decoder target")
    parser.add_argument("--init-from", default=None,
                        help="TTS: start from the encoder weights of this model folder or Trainer checkpoint")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="TTS: validation WER (last 8 test sentences) every so many steps")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between Trainer checkpoints")
    parser.add_argument("--keep-last", type=int, default=2, help="Trainer checkpoints kept on disk")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stft_options = {"dim": args.dim, "hidden": args.hidden, "blocks": args.blocks, "phase_iters": args.phase_iters,
                    "compression": args.compression}
    if args.model == "stft" and args.ship_from:
        ship_stft_vocoder(args.corpus, args.ship_from, args.out, frames=args.frames, gain=args.gain,
                          model_options=stft_options, temperature=args.temperature)
    elif args.model == "stft":
        train_stft_vocoder(args.corpus, args.out, steps=args.steps, batch_size=args.batch_size, frames=args.frames,
                           lr=args.lr, checkpoint_dir=args.checkpoint_dir, gain=args.gain,
                           model_options=stft_options)
    elif args.model == "tts" and args.ship_from:
        ship_tts(args.corpus, args.ship_from, args.out, model_options={"prediction": args.prediction},
                 temperature=args.temperature, steps=args.sampling_steps)
    elif args.model == "tts":
        train_tts(args.corpus, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                  keep_last=args.keep_last, eval_every=args.eval_every, init_from=args.init_from,
                  model_options={"prediction": args.prediction})
    else:
        train_vocoder(args.corpus, args.out, prior=args.prior, steps=args.steps, batch_size=args.batch_size,
                      segment=args.segment, stride=args.segment * 3 // 4, lr=args.lr,
                      checkpoint_dir=args.checkpoint_dir,
                      model_options={"fold": args.fold, "residual_channels": args.channels, "layers": args.layers,
                                     "prior_floor": args.prior_floor,
                                     **({"transform": args.transform} if args.transform else {})})
    print("saved", args.out)
