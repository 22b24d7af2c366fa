"""Audio helpers for the OpenAI Realtime double: PCM16 arithmetic, G.711, WAV, speech-like signals.

The Realtime API speaks PCM16 little-endian mono at 24 kHz (48 bytes per millisecond) or
G.711 μ-law / A-law at 8 kHz (8 bytes per millisecond). The double cannot synthesise real
speech, so replies default to a deterministic speech-like signal: voiced harmonics with a
syllabic envelope and short pauses between words, whose length follows the text. It has the
loudness, rhythm and spectrum that make level meters, VAD and resampling assertions meaningful.
"""

from __future__ import annotations

import functools
import io
import wave
import zlib
from pathlib import Path

import numpy as np
import soxr

__all__ = [
    "PCM_RATE",
    "G711_RATE",
    "bytes_per_ms",
    "decode_g711",
    "encode_g711",
    "load_wav",
    "pcm16_ms",
    "rms_dbfs",
    "silence",
    "synthesize_speech",
    "to_output_format",
]

PCM_RATE = 24_000
"""The only PCM sample rate the Realtime API accepts."""

G711_RATE = 8_000
"""Sample rate of ``audio/pcmu`` and ``audio/pcma``."""

_MULAW_BIAS = 0x84
_MULAW_CLIP = 32_635
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def bytes_per_ms(format_type: str) -> int:
    """Bytes per millisecond of audio in a Realtime format (``audio/pcm``, ``pcmu``, ``pcma``)."""
    return 48 if format_type == "audio/pcm" else 8


def pcm16_ms(pcm: bytes, rate: int = PCM_RATE) -> float:
    """Duration in milliseconds of mono PCM16 bytes at ``rate``."""
    return len(pcm) / 2 / rate * 1000


def silence(ms: float, rate: int = PCM_RATE) -> bytes:
    """Digital silence of ``ms`` milliseconds as PCM16 bytes."""
    return bytes(2 * round(ms * rate / 1000))


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (``-inf`` for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return 20 * np.log10(rms / 32768) if rms > 0 else float("-inf")


@functools.lru_cache(maxsize=256)
def synthesize_speech(
    text: str, *, ms_per_char: float = 60.0, rate: int = PCM_RATE, level: float = 0.3
) -> bytes:
    """Deterministic speech-like PCM16 whose length follows ``text``.

    Each character lasts ``ms_per_char``. Letters are voiced (a gliding fundamental between
    100 and 200 Hz with decaying harmonics under a ~4 Hz syllabic envelope); spaces become
    short pauses and sentence punctuation longer ones, all well under a VAD silence window.

    Args:
        text: What the voice "says"; the same text always gives the same samples.
        ms_per_char: Duration of one character in milliseconds.
        rate: Output sample rate.
        level: Peak amplitude as a fraction of full scale (0.3 gives about -20 dBFS RMS).

    Returns:
        Mono PCM16 little-endian bytes, at least 200 ms long (cached: hundreds of sessions
        speaking the same script synthesise each line once).
    """
    seed = zlib.crc32(text.encode())
    rng = np.random.default_rng(seed)
    char_samples = max(1, round(ms_per_char * rate / 1000))
    total = max(len(text) * char_samples, round(0.2 * rate))
    t = np.arange(total) / rate

    # Gate: voiced for letters, quiet for spaces and (doubly long) sentence punctuation.
    gate = np.ones(total)
    for index, char in enumerate(text):
        if char.isspace() or char in ",.;:!?":
            start = index * char_samples
            span = char_samples * (2 if char in ".!?" else 1)
            gate[start : start + span] = 0.0
    # Soften the gate edges with a 12 ms moving average (cumulative sums: linear time).
    ramp = max(1, round(0.012 * rate))
    padded = np.concatenate([np.zeros(ramp // 2), gate, np.zeros(ramp - ramp // 2)])
    sums = np.cumsum(padded)
    gate = (sums[ramp:] - sums[:-ramp])[:total] / ramp

    syllable_hz = 3.5 + rng.random()
    envelope = 0.35 + 0.65 * np.sin(np.pi * syllable_hz * t + rng.random() * np.pi) ** 2
    f0 = 100 + 100 * rng.random() + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k**1.3 for k in range(1, 9))
    signal = voiced / np.max(np.abs(voiced)) * envelope * gate

    fade = min(round(0.01 * rate), total // 2)
    signal[:fade] *= np.linspace(0, 1, fade)
    signal[total - fade :] *= np.linspace(1, 0, fade)
    return (signal * level * 32767).astype("<i2").tobytes()


def load_wav(source: str | Path | bytes, rate: int = PCM_RATE) -> bytes:
    """Read a 16-bit WAV file (path or bytes) as mono PCM16 at ``rate``.

    Stereo is averaged to mono; other sample rates are converted with soxr.

    Raises:
        ValueError: If the file is not 16-bit PCM.
    """
    handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    with handle, wave.open(handle, "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit PCM WAV, got {8 * wav.getsampwidth()}-bit")
        channels, source_rate = wav.getnchannels(), wav.getframerate()
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    samples = frames.reshape(-1, channels).mean(axis=1) if channels > 1 else frames
    if source_rate != rate:
        samples = soxr.resample(samples.astype(np.float32), source_rate, rate)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def to_output_format(pcm24k: bytes, format_type: str) -> bytes:
    """Convert 24 kHz PCM16 to a Realtime output format (resampled to 8 kHz for G.711)."""
    if format_type == "audio/pcm":
        return pcm24k
    samples = np.frombuffer(pcm24k, dtype="<i2")
    narrow = soxr.resample(samples, PCM_RATE, G711_RATE)
    return encode_g711(narrow, law="ulaw" if format_type == "audio/pcmu" else "alaw")


def encode_g711(samples: np.ndarray, *, law: str) -> bytes:
    """Encode int16 samples as G.711 ``"ulaw"`` or ``"alaw"`` bytes (ITU-T G.711)."""
    pcm = samples.astype(np.int32)
    if law == "ulaw":
        sign = np.where(pcm < 0, 0x80, 0)
        magnitude = np.minimum(np.abs(pcm), _MULAW_CLIP) + _MULAW_BIAS
        exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
        mantissa = (magnitude >> (exponent + 3)) & 0x0F
        return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()
    value = pcm >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, value)
    shift = np.where(segment < 2, 1, segment)
    coded = (np.minimum(segment, 7) << 4) | ((value >> shift) & 0x0F)
    coded = np.where(segment >= 8, 0x7F, coded)
    return ((coded ^ mask) & 0xFF).astype(np.uint8).tobytes()


def decode_g711(data: bytes, *, law: str) -> np.ndarray:
    """Decode G.711 ``"ulaw"`` or ``"alaw"`` bytes to int16 samples."""
    table = _ULAW_TABLE if law == "ulaw" else _ALAW_TABLE
    return table[np.frombuffer(data, dtype=np.uint8)]


def _ulaw_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (code >> 4) & 0x07, code & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    value = (code & 0x0F) << 4
    value = np.where(segment == 0, value + 8, (value + 0x108) << np.maximum(segment - 1, 0))
    return np.where(code & 0x80, value, -value).astype(np.int16)


_ULAW_TABLE = _ulaw_table()
_ALAW_TABLE = _alaw_table()
