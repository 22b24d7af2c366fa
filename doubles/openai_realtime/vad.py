"""Energy-based voice activity detection standing in for the Realtime API's server VAD.

Sans-I/O: feed samples, get speech start/stop events stamped in milliseconds of audio
received, never of wall-clock time. Audio is judged in 32 ms frames, the granularity visible
in real ``speech_started``/``speech_stopped`` timestamps (multiples of 32 ms before the prefix
padding is subtracted). A frame is speech when its RMS level exceeds a threshold mapped from
the API's 0..1 ``threshold`` onto -60..-20 dBFS (0.5 -> -40 dBFS: telephone speech sits near
-20 dBFS, line noise below -50). Speech starts after ``min_speech_ms`` of consecutive loud
frames and stops after ``silence_duration_ms`` of quiet ones (the hangover).

The detector runs once per ``input_audio_buffer.append`` of every session, so it is built to
be cheap on small appends: a frame's energy (its sum of squared samples) is accumulated across
appends, and the dBFS threshold is turned once into the smallest loud energy. Sums of squared
int16 samples over a frame are integers far below 2**53, so they are exact in float64 whatever
the order of summation, and comparing them with that integer gives the same decision as
comparing the frame's RMS level in dBFS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["EnergyVad", "VadEvent", "frame_level_dbfs", "loud_energy", "threshold_dbfs"]

FRAME_MS = 32
_FULL_SCALE = 32768


def threshold_dbfs(threshold: float) -> float:
    """Map the API's 0..1 VAD ``threshold`` to a frame RMS level in dBFS."""
    return -60.0 + 40.0 * min(max(threshold, 0.0), 1.0)


def frame_level_dbfs(energies: np.ndarray, frame_samples: int) -> np.ndarray:
    """RMS level in dBFS of frames of ``frame_samples`` samples, from their sums of squares.

    This is the level the detector's threshold is defined on (``-inf`` for digital silence).
    """
    rms = np.sqrt(np.asarray(energies, dtype=np.float64) / frame_samples)
    with np.errstate(divide="ignore"):
        return 20 * np.log10(rms / _FULL_SCALE)


def loud_energy(frame_samples: int, level_dbfs: float) -> int:
    """The smallest sum of squared samples over a frame whose level exceeds ``level_dbfs``.

    Starts from the closed form and settles on the exact integer with :func:`frame_level_dbfs`
    itself, so float rounding near the threshold cannot make the two tests disagree.
    """

    def is_loud(energy: int) -> bool:
        return bool(frame_level_dbfs(np.array([energy]), frame_samples)[0] > level_dbfs)

    energy = max(0, math.floor(frame_samples * (_FULL_SCALE * 10 ** (level_dbfs / 20)) ** 2))
    while energy > 0 and is_loud(energy):
        energy -= 1
    while not is_loud(energy + 1):
        energy += 1
    return energy + 1


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
        # The frame in progress: how many samples it has and the sum of their squares.
        self._partial_samples = 0
        self._partial_energy = 0.0
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
        self._loud_energy = loud_energy(self._frame, self.level_dbfs)
        self._silence_frames = max(1, math.ceil(silence_duration_ms / FRAME_MS))

    def reset(self) -> None:
        """Forget any speech in progress, keeping the audio position (buffer commit or clear)."""
        self._loud_run = self._quiet_run = 0
        self.speaking = False

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Judge more int16 samples; return the starts and stops they complete, in order."""
        # float64 holds every square and every frame sum exactly (below 2**53).
        values = samples.astype(np.float64)
        size = values.size
        frame = self._frame
        missing = frame - self._partial_samples
        if size < missing:
            self._partial_energy += float(values.dot(values))
            self._partial_samples += size
            return []
        head = values[:missing]
        energies = [self._partial_energy + float(head.dot(head))]
        whole = missing + (size - missing) // frame * frame
        if whole > missing:
            body = values[missing:whole].reshape(-1, frame)
            energies += np.einsum("ij,ij->i", body, body).tolist()
        tail = values[whole:]
        self._partial_energy = float(tail.dot(tail))
        self._partial_samples = tail.size
        events: list[VadEvent] = []
        threshold = self._loud_energy
        for energy in energies:
            self._frames_seen += 1
            event = self._step(energy >= threshold)
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
