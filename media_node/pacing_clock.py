"""The node's one pacing clock: a single loop timer every 20 ms sends every call's due frames.

`NodePacing` (``media_node.audio.node_pacing``) decides which frames are due; this module is
the I/O around it. One `PacingClock` belongs to the node (`NodeContext.pacing`) and every
call's `PacedSender` joins it while frames are queued. Each tick is one timer callback that
releases the due frames of all those calls and hands each frame to its sender, which writes it
at once; the timer is armed only while some call has frames queued. A call whose socket cannot
take a frame without waiting leaves the clock until its sender has written what was released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from media_node.audio.node_pacing import NodePacing, TickStats

if TYPE_CHECKING:
    from media_node.paced_sender import PacedSender

log = logging.getLogger(__name__)


class PacingClock:
    """One timer per tick for all the node's calls.

    Args:
        clock: The node's monotonic clock in seconds.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.core: NodePacing[PacedSender] = NodePacing()
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
        for frame in self.core.kick(sender, sender.pacer, now):
            sender.deliver(frame, now)
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
        for sender, frame in released:
            try:
                sender.deliver(frame, now)
            except Exception:
                log.exception("pacing failed")
                sender.fail()
                self.core.remove(sender)
        if self.core.pacers:
            # The tick released what falls due before this grid point (a timer that fired a
            # little early still counts as the tick it was armed for).
            self._due = self.core.next_tick(max(now, self._due))
            assert self._timer_loop is not None
            self._timer = self._timer_loop.call_later(self._due - now, self._tick)


def _ready(sender: PacedSender) -> bool:
    return sender.ready()
