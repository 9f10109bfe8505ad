"""polydiff.audio: an STFT diffusion vocoder from an informed prior, DiffWave / PriorGrad vocoders and Grad-TTS that ship working weights, measured against Griffin-Lim.

    from polydiff.audio import load_vocoder, load_tts
    vocoder = load_vocoder()
    waveform = vocoder.vocode(vocoder.mel(speech, 16000))
    speech = load_tts().synthesize("The quick brown fox.")
"""

from .mel import MelConfig, mel_spectrogram, resample

__all__ = ["MelConfig", "mel_spectrogram", "resample", "load_vocoder", "load_tts", "DiffusionVocoder", "StftVocoder",
           "GradTTS",
           "make_corpus", "load_corpus", "read_wav", "write_wav"]


def __getattr__(name):  # heavier modules on first use
    if name in ("load_vocoder", "load_tts"):
        from . import pretrained

        return getattr(pretrained, name)
    if name == "DiffusionVocoder":
        from .vocoder import DiffusionVocoder

        return DiffusionVocoder
    if name == "StftVocoder":
        from .stft_vocoder import StftVocoder

        return StftVocoder
    if name == "GradTTS":
        from .tts import GradTTS

        return GradTTS
    if name in ("make_corpus", "load_corpus", "read_wav", "write_wav"):
        from . import data

        return getattr(data, name)
    raise AttributeError(name)
