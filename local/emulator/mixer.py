"""The conference bridge of a supervised transfer: the person's voice summed into the playout.

When a supervision connects on the open media stream, the platform joins the person's leg to the
call, so the caller hears the node's audio (the introduction, whatever else it still sends) and
the person at the same time. ``VoiceOverlay`` holds the person's recordings, each placed at a
playout tick of the caller's real-time clock; ``mix`` adds one tick of them to the node's frame
with int16 saturation, as a bridge's mixer clips rather than wraps.
Sans-I/O: the media leg calls ``add`` when the person speaks and ``frame`` on every tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT16_MIN, INT16_MAX = -32768, 32767


def mix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Sum two int16 signals sample by sample, saturating at the int16 limits.

    The shorter one counts as silence past its end; the result is as long as the longer one.
    """
    length = max(len(first), len(second))
    total = np.zeros(length, dtype=np.int32)
    total[: len(first)] += first.astype(np.int32)
    total[: len(second)] += second.astype(np.int32)
    return np.clip(total, INT16_MIN, INT16_MAX).astype(np.int16)


@dataclass(frozen=True)
class PlacedVoice:
    """One recording, starting at playout tick ``start_tick``."""

    start_tick: int
    samples: np.ndarray

    def end_tick(self, frame_samples: int) -> int:
        """The first tick after the recording (it ends inside the tick before)."""
        return self.start_tick + -(-len(self.samples) // frame_samples)


class VoiceOverlay:
    """Recordings that join the caller's playout at given ticks, overlapping if they must.

    Args:
        frame_samples: Samples in one playout tick.
    """

    def __init__(self, frame_samples: int) -> None:
        if frame_samples <= 0:
            raise ValueError("frame_samples must be positive")
        self.frame_samples = frame_samples
        self._voices: list[PlacedVoice] = []

    def add(self, pcm: bytes, start_tick: int) -> PlacedVoice:
        """Place s16le ``pcm`` so that its first sample plays at the start of ``start_tick``."""
        if len(pcm) % 2:
            raise ValueError("PCM must be whole 16-bit samples")
        voice = PlacedVoice(start_tick, np.frombuffer(pcm, dtype="<i2").astype(np.int16))
        self._voices.append(voice)
        return voice

    def frame(self, tick: int) -> np.ndarray | None:
        """The overlay's samples for ``tick`` (all its voices mixed), or None when none speaks."""
        n = self.frame_samples
        out: np.ndarray | None = None
        for voice in self._voices:
            offset = (tick - voice.start_tick) * n
            if offset < 0 or offset >= len(voice.samples):
                continue
            chunk = voice.samples[offset : offset + n]
            out = chunk if out is None else mix(out, chunk)
        if out is not None and len(out) < n:
            out = np.pad(out, (0, n - len(out)))
        # Voices that have finished before this tick are no longer needed.
        self._voices = [v for v in self._voices if v.end_tick(n) > tick]
        return out
