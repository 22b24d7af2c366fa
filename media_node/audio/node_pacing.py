"""One pacing clock for the whole node: every 20 ms tick releases every call's due frames.

A loop timer per call, re-armed for each frame, would cost 50·N timer callbacks a second for N
calls, each a separate wake-up of the event loop (``bench/loop_cost.py`` measures a node-wide
tick at about half the loop cost on uvloop). `NodePacing` is the sans-I/O core of the node's one
clock instead: the I/O shell (`media_node.pacing_clock`) arms one timer per tick and calls
`tick`, which releases the due frames of every call's `Pacer` in one pass; audio that arrives
between ticks calls `kick` for its call alone. Only calls with frames queued are on the clock.

Each call's timeline stays its own: it starts when its first frame is released, as with a timer
per call, so the first frame's slot is when the caller starts hearing it and the playout ledger
is exact. A tick at `now` releases every frame that falls due before the next tick (the pacer's
`release(now, until)`), so no frame waits for a tick: a frame leaves at most one tick before
its due time (between `lead` and `lead + tick` ahead of its slot), and after it only when the
tick itself runs late, by that lateness, which `stats` records. A tick that runs late releases
only what falls due before the next grid point after it, so a stall is never followed by a
burst beyond that.

Frames stay exactly one pacer frame each and a barge-in is unchanged: ``pacer.clear(now)``
empties the call's queue, so the next tick releases nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from media_node.audio.ledger import to_us
from media_node.audio.pacer import Pacer, Released
from media_node.audio.pcm import FRAME_MS

K = TypeVar("K", bound=Hashable)
"""A call's key on the clock."""


@dataclass
class TickStats:
    """How the node's ticks ran."""

    ticks: int = 0
    frames_released: int = 0
    max_lateness_ms: float = 0.0
    late_ticks: int = 0
    """Ticks that ran a whole step or more after their grid time."""


class NodePacing(Generic[K]):
    """The node-wide grid and the calls' pacers on it.

    Args:
        tick_ms: The pacers' frame length (20 ms).
        origin: A monotonic time (seconds) on the grid, e.g. when the node started.
        frames_per_tick: Grid step in frames: 2 ticks every 40 ms, and each tick releases the
            frames due before the next (two per call), which may then leave up to 40 ms early.
    """

    def __init__(
        self, tick_ms: int = FRAME_MS, origin: float = 0.0, frames_per_tick: int = 1
    ) -> None:
        if tick_ms <= 0:
            raise ValueError(f"tick_ms must be positive, got {tick_ms}")
        if frames_per_tick < 1:
            raise ValueError(f"frames_per_tick must be at least 1, got {frames_per_tick}")
        self.frame_us = tick_ms * 1000
        self.tick_us = self.frame_us * frames_per_tick
        self.origin_us = to_us(origin)
        self.pacers: dict[K, Pacer] = {}
        self.stats = TickStats()
        # The latest time given to any pacer: a pacer's time must never go back, even if a
        # test clock or a timer firing early says otherwise.
        self._latest = float("-inf")

    def add(self, key: K, pacer: Pacer) -> None:
        """Puts a call's pacer on the clock (its frames must be `tick_ms` long).

        A pacer is on the clock while it has frames queued: `tick` takes it off once its queue
        is empty, so a tick costs nothing for calls that are silent.
        """
        if pacer.frame_ms * 1000 != self.frame_us:
            raise ValueError(
                f"pacer frames are {pacer.frame_ms} ms, the clock's {self.frame_us} us"
            )
        self.pacers[key] = pacer

    def remove(self, key: K) -> None:
        """Takes a call's pacer off the clock (barge-in, a blocked socket, the call ended)."""
        self.pacers.pop(key, None)

    def grid_at_or_after(self, now: float) -> float:
        """The first grid time not before `now` (seconds)."""
        offset = to_us(now) - self.origin_us
        steps = -(-offset // self.tick_us)  # ceiling division
        return (self.origin_us + steps * self.tick_us) / 1_000_000

    def next_tick(self, now: float) -> float:
        """When the I/O shell should run the next tick: the first grid time after `now`."""
        offset = to_us(now) - self.origin_us
        return (self.origin_us + (offset // self.tick_us + 1) * self.tick_us) / 1_000_000

    def tick(
        self, due: float, now: float, ready: Callable[[K], bool] | None = None
    ) -> list[tuple[K, Released]]:
        """Releases every call's frames due by the grid time `due`; the timer fired at `now`.

        Calls whose queue is empty afterwards leave the clock (`kick` puts them back).

        Args:
            due: The grid time the tick was scheduled for.
            now: When its timer fired.
            ready: Asked per call before releasing; a call it refuses (its socket closed, say)
                leaves the clock with nothing released, so nothing is counted as played.

        Returns:
            ``(call key, frame)`` pairs in call order, each call's frames in playout order.
        """
        lateness_ms = max(0.0, (to_us(now) - to_us(due)) / 1000)
        stats = self.stats
        stats.ticks += 1
        stats.max_lateness_ms = max(stats.max_lateness_ms, lateness_ms)
        if lateness_ms * 1000 >= self.tick_us:
            stats.late_ticks += 1
        at = self._latest = max(now, self._latest)
        until = self.next_tick(max(at, due))
        released: list[tuple[K, Released]] = []
        leaving: list[K] = []
        for key, pacer in self.pacers.items():
            if ready is not None and not ready(key):
                leaving.append(key)
                continue
            for frame in pacer.release(at, until):
                released.append((key, frame))
            if not pacer.queued_frames:
                leaving.append(key)
        for key in leaving:
            del self.pacers[key]
        stats.frames_released += len(released)
        return released

    def kick(self, key: K, pacer: Pacer, now: float) -> list[Released]:
        """Audio for one call arrived between ticks: what it may send at once.

        Puts the call's pacer on the clock while frames remain queued. A new timeline starts
        now; frames due before the next tick go out now too.
        """
        self.add(key, pacer)
        at = self._latest = max(now, self._latest)
        frames = pacer.release(at, self.next_tick(at))
        if not pacer.queued_frames:
            del self.pacers[key]
        self.stats.frames_released += len(frames)
        return frames
