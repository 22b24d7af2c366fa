"""The node's one pacing clock: a single loop timer every 20 ms sends every call's due frames.

`NodePacing` (``media_node.audio.node_pacing``) decides which frames are due; this module is
the I/O around it. One `PacingClock` belongs to the node (`NodeContext.pacing`) and every
call's `PacedSender` joins it while frames are queued. Each tick is one timer callback that
releases the due frames of all those calls and hands each frame to its sender, which writes it
at once; the timer is armed only while some call has frames queued. A call whose socket cannot
take a frame without waiting leaves the clock until its sender has written what was released.

With ``frames_per_write=2`` (``FRAMES_PER_WRITE``, default 1) the clock ticks every 40 ms and
each call's frames of a tick go out two to a WebSocket message: half the socket writes, at the
price of frames leaving up to 40 ms before they fall due. Sautikit documents neither the
outbound message size it accepts nor a playout buffer, so this stays off until a real call
has shown 1280-byte messages play without gaps or clipping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from media_node.audio.node_pacing import NodePacing, TickStats
from media_node.audio.pacer import Released

if TYPE_CHECKING:
    from media_node.paced_sender import PacedSender

log = logging.getLogger(__name__)


class PacingClock:
    """One timer per tick for all the node's calls.

    Args:
        clock: The node's monotonic clock in seconds.
        frames_per_write: Frames joined into one WebSocket message (1 or 2).
    """

    def __init__(self, clock: Callable[[], float], frames_per_write: int = 1) -> None:
        if frames_per_write not in (1, 2):
            raise ValueError(f"frames_per_write must be 1 or 2, got {frames_per_write}")
        self.clock = clock
        self.frames_per_write = frames_per_write
        self.core: NodePacing[PacedSender] = NodePacing(frames_per_tick=frames_per_write)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0

    @property
    def stats(self) -> TickStats:
        """How the ticks ran (lateness, frames released)."""
        return self.core.stats

    def __contains__(self, sender: PacedSender) -> bool:
        return sender in self.core.pacers

    def kick(self, sender: PacedSender, now: float) -> None:
        """Sends what `sender`'s call may send now; keeps it on the clock while frames remain."""
        frames = self.core.kick(sender, sender.pacer, now)
        if self.frames_per_write == 1:
            for frame in frames:
                sender.deliver(frame, now)
        else:
            for index in range(0, len(frames), 2):
                sender.deliver_joined(frames[index : index + 2], now)
        self._arm(now)

    def remove(self, sender: PacedSender) -> None:
        """Takes `sender`'s call off the clock (barge-in, a blocked socket, the end of the call)."""
        self.core.remove(sender)

    def _arm(self, now: float) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._timer_loop is loop:
            return
        if not self.core.pacers:
            return
        self._due = self.core.next_tick(now)
        self._timer_loop = loop
        self._timer = loop.call_later(self._due - now, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self.clock()
        try:
            released = self.core.tick(self._due, now, _ready)
        except Exception:
            log.exception("pacing failed")
            for sender in list(self.core.pacers):
                sender.fail()
            self.core.pacers.clear()
            return
        if self.frames_per_write == 1:
            for sender, frame in released:
                try:
                    sender.deliver(frame, now)
                except Exception:
                    self._failed(sender)
        else:
            self._deliver_pairs(released, now)
        if self.core.pacers:
            # The tick released what falls due before this grid point (a timer that fired a
            # little early still counts as the tick it was armed for).
            self._due = self.core.next_tick(max(now, self._due))
            assert self._timer_loop is not None
            self._timer = self._timer_loop.call_later(self._due - now, self._tick)

    def _deliver_pairs(self, released: list[tuple[PacedSender, Released]], now: float) -> None:
        # Each call's frames are consecutive in `released`: join them two by two.
        index, count = 0, len(released)
        while index < count:
            sender = released[index][0]
            end = index + 1
            if end < count and released[end][0] is sender:
                end += 1
            try:
                sender.deliver_joined([frame for _, frame in released[index:end]], now)
            except Exception:
                self._failed(sender)
            index = end

    def _failed(self, sender: PacedSender) -> None:
        log.exception("pacing failed")
        sender.fail()
        self.core.remove(sender)


def _ready(sender: PacedSender) -> bool:
    return sender.ready()
