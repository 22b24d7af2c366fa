"""Energy-based voice activity detection standing in for the Realtime API's server VAD.

Sans-I/O: feed samples, get speech start/stop events stamped in milliseconds of audio
received, never of wall-clock time. Audio is judged in 32 ms frames, the granularity visible
in real ``speech_started``/``speech_stopped`` timestamps (multiples of 32 ms before the prefix
padding is subtracted). A frame is speech when its RMS level exceeds a threshold mapped from
the API's 0..1 ``threshold`` onto -60..-20 dBFS (0.5 -> -40 dBFS: telephone speech sits near
-20 dBFS, line noise below -50). Speech starts after ``min_speech_ms`` of consecutive loud
frames and stops after ``silence_duration_ms`` of quiet ones (the hangover).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["EnergyVad", "VadEvent", "threshold_dbfs"]

FRAME_MS = 32


def threshold_dbfs(threshold: float) -> float:
    """Map the API's 0..1 VAD ``threshold`` to a frame RMS level in dBFS."""
    return -60.0 + 40.0 * min(max(threshold, 0.0), 1.0)


@dataclass(frozen=True)
class VadEvent:
    """Speech started or stopped.

    ``at_ms`` is, for ``"start"``, where the first loud frame begins and, for ``"stop"``,
    where the silence window closed (end of speech plus the hangover), both in milliseconds
    of audio fed since the detector was created.
    """

    kind: Literal["start", "stop"]
    at_ms: int


class EnergyVad:
    """Frame RMS detector with onset debounce and a silence hangover.

    Args:
        rate: Sample rate of the samples fed.
        threshold: The API's 0..1 activation threshold.
        silence_duration_ms: Quiet time that ends speech.
        min_speech_ms: Loud time needed to declare speech (rejects clicks).
        start_ms: Audio position of the first sample fed (when replacing a detector).
    """

    def __init__(
        self,
        rate: int,
        *,
        threshold: float = 0.5,
        silence_duration_ms: int = 500,
        min_speech_ms: int = 64,
        start_ms: int = 0,
    ) -> None:
        self.rate = rate
        self._frame = rate * FRAME_MS // 1000
        self._onset_frames = max(1, math.ceil(min_speech_ms / FRAME_MS))
        self.configure(threshold=threshold, silence_duration_ms=silence_duration_ms)
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_seen = start_ms // FRAME_MS
        self._loud_run = 0
        self._quiet_run = 0
        self.speaking = False
        """Whether speech is in progress (started and not yet stopped)."""

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio judged so far (whole frames only)."""
        return self._frames_seen * FRAME_MS

    def configure(self, *, threshold: float, silence_duration_ms: int) -> None:
        """Change the threshold and hangover without losing the audio position."""
        self.level_dbfs = threshold_dbfs(threshold)
        self._silence_frames = max(1, math.ceil(silence_duration_ms / FRAME_MS))

    def reset(self) -> None:
        """Forget any speech in progress, keeping the audio position (buffer commit or clear)."""
        self._loud_run = self._quiet_run = 0
        self.speaking = False

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Judge more int16 samples; return the starts and stops they complete, in order."""
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        whole = samples.size // self._frame * self._frame
        self._pending = samples[whole:].copy()
        if whole == 0:
            return []
        frames = samples[:whole].astype(np.float64).reshape(-1, self._frame)
        rms = np.sqrt(np.mean(np.square(frames), axis=1))
        with np.errstate(divide="ignore"):
            levels = 20 * np.log10(rms / 32768)
        events: list[VadEvent] = []
        for loud in levels > self.level_dbfs:
            self._frames_seen += 1
            event = self._step(bool(loud))
            if event is not None:
                events.append(event)
        return events

    def _step(self, loud: bool) -> VadEvent | None:
        if loud:
            self._loud_run += 1
            self._quiet_run = 0
            if not self.speaking and self._loud_run >= self._onset_frames:
                self.speaking = True
                onset_frame = self._frames_seen - self._loud_run
                return VadEvent("start", onset_frame * FRAME_MS)
            return None
        self._loud_run = 0
        if self.speaking:
            self._quiet_run += 1
            if self._quiet_run >= self._silence_frames:
                self.speaking = False
                self._quiet_run = 0
                return VadEvent("stop", self.position_ms)
        return None
