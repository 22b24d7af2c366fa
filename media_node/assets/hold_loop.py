"""The hold loop: a soft chime phrase every four seconds, synthesised reproducibly.

Played while a caller waits for a person (``handoff.strategy: supervise``), so they never hear
silence. ``python -m media_node.assets.hold_loop`` rewrites ``hold_16k.wav`` and
``hold_8k.wav``; the test suite renders it again and compares it with the committed files.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

LOOP_SECONDS = 4.0
#: (start in seconds, frequency in Hz): C5 E5 G5 rising, then E5 C5 falling back.
NOTES = ((0.0, 523.25), (0.45, 659.25), (0.9, 783.99), (2.0, 659.25), (2.45, 523.25))
DECAY_PER_SECOND = 1.5
ATTACK_SECONDS = 0.02
PEAK = 0.2  # about -14 dBFS: well under speech, soft on a phone line
_DIR = Path(__file__).resolve().parent


def render(sample_rate: int) -> bytes:
    """One loop as 16-bit little-endian mono PCM at ``sample_rate``; it ends in near silence
    and starts at zero, so it repeats without a click."""
    t = np.arange(round(LOOP_SECONDS * sample_rate), dtype=np.float64) / sample_rate
    signal = np.zeros_like(t)
    for start, frequency in NOTES:
        local = np.clip(t - start, 0.0, None)
        envelope = np.where(
            t >= start,
            np.minimum(1.0, local / ATTACK_SECONDS) * np.exp(-DECAY_PER_SECOND * local),
            0.0,
        )
        tone = np.sin(2 * np.pi * frequency * local) + 0.25 * np.sin(4 * np.pi * frequency * local)
        signal += envelope * tone
    # Fade the tail to exact zero so the seam is clean whatever the decay leaves.
    fade = round(0.25 * sample_rate)
    signal[-fade:] *= np.linspace(1.0, 0.0, fade)
    signal *= PEAK / np.max(np.abs(signal))
    return np.round(signal * 32767).astype("<i2").tobytes()


def write(directory: Path = _DIR) -> list[Path]:
    """Write ``hold_16k.wav`` and ``hold_8k.wav`` into ``directory``."""
    paths = []
    for rate in (16000, 8000):
        path = directory / f"hold_{rate // 1000}k.wav"
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(render(rate))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write():
        print(written)
