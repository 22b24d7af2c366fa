"""When each caller frame leaves the phone network: a drift-free send schedule with jitter.

Frame ``i`` holds the audio captured during ``[i·F, (i+1)·F)`` after the socket opened, so its
nominal send time is ``(i+1)·F``. Each frame gets independent network jitter (uniform within
±``jitter_ms``) and, with ``bunch_probability``, is held back and sent together with the next
one (the 40 ms bunching seen on real media paths). Every due time is computed from the frame
index, never from the previous send, so lateness never accumulates into drift.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class JitterConfig:
    """Network jitter applied to the caller's frames.

    Attributes:
        jitter_ms: Half-width of the uniform jitter; must stay below one frame.
        bunch_probability: Chance that a frame is held and sent with the next one.
        seed: Seed for a reproducible schedule (``None``: random).
    """

    jitter_ms: float = 5.0
    bunch_probability: float = 0.02
    seed: int | None = None


class SendSchedule:
    """Due times (seconds after the socket opened) of successive caller frames."""

    def __init__(self, frame_ms: float = 20.0, jitter: JitterConfig | None = None) -> None:
        self.jitter = jitter or JitterConfig()
        if not 0 <= self.jitter.jitter_ms < frame_ms:
            raise ValueError(f"jitter_ms must be in [0, {frame_ms})")
        if not 0 <= self.jitter.bunch_probability < 1:
            raise ValueError("bunch_probability must be in [0, 1)")
        self.frame_s = frame_ms / 1000
        self._rng = random.Random(self.jitter.seed)
        self._next_index = 0
        self._last_due = 0.0

    def nominal(self, index: int) -> float:
        """When frame ``index`` would leave with no jitter: the end of its capture interval."""
        return (index + 1) * self.frame_s

    def next_due(self) -> tuple[int, float]:
        """The next frame's index and due time; due times never decrease."""
        index = self._next_index
        self._next_index += 1
        spread = self.jitter.jitter_ms / 1000
        held = self._rng.random() < self.jitter.bunch_probability
        base = self.nominal(index + 1) if held else self.nominal(index)
        due = max(base + self._rng.uniform(-spread, spread), self._last_due)
        self._last_due = due
        return index, due
