"""A small ctypes binding to eSpeak NG (the library and voice data shipped by the ``espeakng-loader`` wheel).

Two calls: :func:`synthesize` (text -> int16 waveform at eSpeak's own rate, 22050 Hz) and :func:`phonemize`
(text -> IPA from eSpeak's own phonemiser). The library is global state, so every call holds one lock.
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["synthesize", "phonemize", "list_variants", "ESPEAK_RATE", "available"]

ESPEAK_RATE = 22050
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()
_STATE: dict = {}


def available() -> bool:
    """True when the espeakng-loader wheel (library and voice data) is importable."""
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return False
    return True


def _library():
    if "lib" in _STATE:
        return _STATE["lib"]
    try:
        import espeakng_loader
    except ImportError as error:
        raise ImportError('eSpeak NG is missing: pip install "polydiff-audio" (it depends on espeakng-loader)') \
            from error
    lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
    data = espeakng_loader.get_data_path()
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(Path(data).parent).encode(), 0)
    if rate <= 0:  # some builds want the data folder itself
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0)
    if rate != ESPEAK_RATE:
        raise RuntimeError(f"eSpeak NG failed to initialise (returned {rate})")
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    chunks: list[np.ndarray] = []

    def collect(wav, count, events):
        if count > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    _STATE.update(lib=lib, chunks=chunks, callback=callback, data=Path(data))
    return lib


def list_variants() -> list[str]:
    """Names of the voice variants shipped with the data (``en+<variant>`` selects one)."""
    _library()
    folder = _STATE["data"] / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _set_voice(lib, voice: str) -> None:
    if not isinstance(voice, str) or not voice:
        raise ValueError(f"voice: expected an eSpeak voice name such as 'en-us' or 'en+f3', got {voice!r}")
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"voice: eSpeak NG does not know the voice {voice!r}")


def synthesize(text: str, voice: str = "en-us", *, rate: int = 160, pitch: int = 50, pitch_range: int = 50,
               wordgap: int = 0) -> np.ndarray:
    """Speak ``text`` with eSpeak NG; returns int16 samples at :data:`ESPEAK_RATE` Hz.

    rate: words per minute (80-450); pitch, pitch_range: 0-100 (eSpeak's scale); wordgap: pause between words in
    units of 10 ms.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: expected a non-empty string")
    for name, value, low, high in (("rate", rate, 80, 450), ("pitch", pitch, 0, 100),
                                   ("pitch_range", pitch_range, 0, 100), ("wordgap", wordgap, 0, 100)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value!r}")
    with _LOCK:
        lib = _library()
        _set_voice(lib, voice)
        for name, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range), ("wordgap", wordgap)):
            lib.espeak_SetParameter(_PARAM[name], value, 0)
        chunks = _STATE["chunks"]
        chunks.clear()
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"eSpeak NG synthesis failed (status {status})")
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        chunks.clear()
    return audio.astype(np.int16)


@lru_cache(maxsize=4096)
def _phonemize_cached(text: str, voice: str) -> str:
    with _LOCK:
        lib = _library()
        _set_voice(lib, voice)
        data = ctypes.c_char_p(text.encode("utf-8"))
        pointer = ctypes.pointer(data)
        parts = []
        while pointer.contents.value:
            result = lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, 0x02)  # bit 1: IPA
            if result:
                parts.append(result.decode("utf-8").strip())
        return " ".join(p for p in parts if p)


def phonemize(text: str, voice: str = "en-us") -> str:
    """IPA phonemes of ``text`` from eSpeak NG's phonemiser (words separated by spaces, clauses joined)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: expected a non-empty string")
    return _phonemize_cached(text, voice)
