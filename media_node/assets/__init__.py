"""Pre-rendered lines (16-bit mono PCM WAV at 16 kHz and 8 kHz) the node plays without a model,
and the hold loop a caller hears while a person is rung (``HOLD``, made by ``hold_loop``)."""

from __future__ import annotations

import wave
from functools import cache
from pathlib import Path

APOLOGY = "apology"
DRAIN = "drain"
TIME_LIMIT = "time_limit"
LINES = (APOLOGY, DRAIN, TIME_LIMIT)
HOLD = "hold"
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
    return _read(name, sample_rate)


@cache
def load_hold(sample_rate: int) -> bytes:
    """One loop of the hold audio (raw little-endian PCM at 8000 or 16000 Hz); play it again
    and again while a person is rung, so the caller never hears silence."""
    if sample_rate not in RATES:
        raise ValueError(f"no hold loop at {sample_rate} Hz")
    return _read(HOLD, sample_rate)


def _read(name: str, sample_rate: int) -> bytes:
    path = _DIR / f"{name}_{sample_rate // 1000}k.wav"
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, sample_rate):
            raise ValueError(f"{path.name} is not mono 16-bit PCM at {sample_rate} Hz")
        return wav.readframes(wav.getnframes())
