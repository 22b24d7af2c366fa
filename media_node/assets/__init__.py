"""Pre-rendered lines (16-bit mono PCM WAV at 16 kHz and 8 kHz) the node plays without a model,
and the hold loop a caller hears while a person is rung (``HOLD``, made by ``hold_loop``)."""

from __future__ import annotations

import wave
from functools import cache
from pathlib import Path

APOLOGY = "apology"
DRAIN = "drain"
TIME_LIMIT = "time_limit"
HOLD = "hold"
LINES = (APOLOGY, DRAIN, TIME_LIMIT, HOLD)
RATES = (8000, 16000)

_DIR = Path(__file__).resolve().parent


@cache
def load_line(name: str, sample_rate: int) -> bytes:
    """The raw little-endian PCM of a pre-rendered line.

    Args:
        name: One of `LINES`.
        sample_rate: 8000 or 16000, the call's rate towards the caller.

    Raises:
        ValueError: For an unknown line or rate, or a file that is not mono 16-bit at that rate.
    """
    if name not in LINES or sample_rate not in RATES:
        raise ValueError(f"no pre-rendered line {name!r} at {sample_rate} Hz")
    path = _DIR / f"{name}_{sample_rate // 1000}k.wav"
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, sample_rate):
            raise ValueError(f"{path.name} is not mono 16-bit PCM at {sample_rate} Hz")
        return wav.readframes(wav.getnframes())
