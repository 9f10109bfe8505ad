"""The shipped models: ``load_vocoder()`` and ``load_tts()`` read safetensors + JSON from inside the package
(nothing is downloaded); any folder written by ``save_pretrained`` loads the same way.

A saved vocoder's ``metadata["sampling"]`` may hold its defaults: ``{"steps": 6, "solver": "dpmpp_2m",
"grids": {"dpmpp_2m:6": [times...]}, "temperature": 0.5}`` (temperature: STFT vocoder only) (fitted core grids, see :func:`polydiff.core.fitted_grid.fit_grid`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .mel import MelConfig

__all__ = ["load_vocoder", "load_tts", "TextToSpeech", "WEIGHTS", "SHIPPED", "shipped_vocoders"]

WEIGHTS = Path(__file__).resolve().parent / "weights"
# name -> folder under weights/; "default" is the first vocoder of VOCODERS that is shipped
VOCODERS = ("stft", "spectral", "priorgrad", "diffwave")
SHIPPED = {**{name: name for name in VOCODERS}, "tts": "tts"}


def shipped_vocoders() -> list[str]:
    """Names of the vocoders shipped inside the package, best first."""
    return [name for name in VOCODERS if (WEIGHTS / name / "config.json").is_file()]


def _folder(name, kind: str) -> Path:
    if name == "default" and kind == "vocoder":
        shipped = shipped_vocoders()
        if not shipped:
            raise ValueError("name: this installation ships no vocoder weights")
        name = shipped[0]
    if isinstance(name, Path) or (isinstance(name, str) and ("/" in name or name.startswith("."))):
        folder = Path(name)
    elif isinstance(name, str) and name in SHIPPED:
        folder = WEIGHTS / SHIPPED[name]
    else:
        raise ValueError(f"name: expected a shipped {kind} ({', '.join(k for k in SHIPPED if k != 'tts')}) or a "
                         f"folder path, got {name!r}")
    if not (folder / "config.json").is_file():
        raise ValueError(f"name: no saved {kind} in {str(folder)!r} (config.json missing)")
    return folder


def apply_sampling_metadata(vocoder, folder: Path) -> None:
    from polydiff.core.pretrained import read_config

    sampling = read_config(folder).get("metadata", {}).get("sampling", {})
    vocoder.default_steps = int(sampling.get("steps", vocoder.default_steps))
    vocoder.default_solver = str(sampling.get("solver", vocoder.default_solver))
    vocoder.fitted_grids = dict(sampling.get("grids", {}))
    if "temperature" in sampling:
        vocoder.default_temperature = float(sampling["temperature"])


def load_vocoder(name: str | Path = "default", *, device: str = "cpu"):
    """A vocoder: "default" (the best shipped one), "stft" (:class:`~polydiff.audio.stft_vocoder.StftVocoder`, the
    diffusion from the mel pseudo-inverse prior), "spectral" (PriorGrad with a per-band MDCT prior), "priorgrad"
    (PriorGrad's frame-energy prior), "diffwave" (when shipped) or a folder written by ``save_pretrained``."""
    from polydiff.core.pretrained import read_config

    from .stft_vocoder import StftVocoder
    from .vocoder import DiffusionVocoder

    folder = _folder(name, "vocoder")
    kind = read_config(folder).get("class", "")
    cls = StftVocoder if kind.endswith(".StftVocoder") else DiffusionVocoder
    vocoder = cls.from_pretrained(folder, device=device)
    apply_sampling_metadata(vocoder, folder)
    return vocoder


class TextToSpeech:
    """Grad-TTS + a vocoder whose MelConfig matches (a mismatch is a ValueError when they are paired)."""

    def __init__(self, tts, vocoder):
        if tts.mel_config != vocoder.mel_config:
            diff = {k: (v, getattr(vocoder.mel_config, k)) for k, v in tts.mel_config.to_dict().items()
                    if getattr(vocoder.mel_config, k) != v}
            raise ValueError(f"vocoder: its MelConfig differs from the TTS model's (field: (tts, vocoder) = {diff})")
        self.tts, self.vocoder = tts, vocoder

    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    @property
    def mel_config(self) -> MelConfig:
        return self.tts.mel_config

    def mel(self, text: str, *, steps: int | None = None, solver: str = "dpmpp_2m", temperature: float | None = None,
            length_scale: float = 1.0, seed: int | None = 0):
        """Grad-TTS log-mel of ``text``; ``steps`` / ``temperature`` default to the model's (``default_steps``,
        ``default_temperature``: 10 and 1.5 unless its metadata's "sampling" says otherwise)."""
        steps = getattr(self.tts, "default_steps", 10) if steps is None else steps
        temperature = getattr(self.tts, "default_temperature", 1.5) if temperature is None else temperature
        return self.tts.mel_from_text(text, steps=steps, solver=solver, temperature=temperature,
                                      length_scale=length_scale, seed=seed)

    def synthesize(self, text: str, *, steps: int | None = None, solver: str = "dpmpp_2m",
                   vocoder_steps: int | None = None, vocoder_solver: str | None = None,
                   temperature: float | None = None, length_scale: float = 1.0, seed: int | None = 0) -> np.ndarray:
        """Waveform (float32 numpy at ``sample_rate``) of ``text``: Grad-TTS mel (``steps`` of ``solver`` at
        ``temperature``, the model's defaults when None) then the vocoder (``vocoder_steps`` of
        ``vocoder_solver``, its defaults when None)."""
        mel = self.mel(text, steps=steps, solver=solver, temperature=temperature, length_scale=length_scale,
                       seed=seed)
        return self.vocoder.vocode(mel, steps=vocoder_steps, solver=vocoder_solver, seed=seed,
                                   mel_config=self.tts.mel_config)


def load_tts(name: str | Path = "tts", *, vocoder: str | Path = "default", device: str = "cpu") -> TextToSpeech:
    """The shipped Grad-TTS (or a saved folder) paired with ``vocoder`` (a name/folder for load_vocoder or a
    vocoder object)."""
    from polydiff.core.pretrained import read_config

    from .tts import GradTTS

    folder = _folder(name, "TTS model")
    tts = GradTTS.from_pretrained(folder, device=device)
    sampling = read_config(folder).get("metadata", {}).get("sampling", {})  # chosen on validation sentences
    tts.default_steps = int(sampling.get("steps", 10))
    tts.default_temperature = float(sampling.get("temperature", 1.5))
    voc = vocoder if hasattr(vocoder, "vocode") else load_vocoder(vocoder, device=device)
    return TextToSpeech(tts, voc)
