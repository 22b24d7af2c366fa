"""WAV files and resampling for the call emulator (16-bit little-endian PCM throughout)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file.

    Returns:
        ``(samples, rate)`` where ``samples`` is int16 with shape ``(frames, channels)``.

    Raises:
        ValueError: The file is not 8/16/32-bit integer PCM.
    """
    with wave.open(str(path), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        raw = wav.readframes(wav.getnframes())
    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2")
    elif width == 1:  # unsigned 8-bit
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype("<i2")
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype("<i2")
    else:
        raise ValueError(f"{path}: unsupported sample width {width * 8} bits")
    return samples.reshape(-1, channels), rate


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono int16 samples with soxr (HQ); a no-op when the rates match."""
    if from_rate == to_rate or samples.size == 0:
        return samples.astype("<i2", copy=False)
    return soxr.resample(samples.astype(np.int16), from_rate, to_rate, quality="HQ").astype("<i2")


def load_mono(path: str | Path, rate: int) -> bytes:
    """Load a WAV file of any rate and channel count as mono s16le PCM at ``rate``."""
    samples, file_rate = read_wav(path)
    if samples.shape[1] > 1:
        mono = samples.astype(np.int32).mean(axis=1).round().astype(np.int16)
    else:
        mono = samples[:, 0]
    return resample(mono, file_rate, rate).tobytes()


def write_wav(path: str | Path, pcm: bytes, rate: int, channels: int = 1) -> None:
    """Write s16le PCM (interleaved when ``channels`` > 1) as a WAV file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
