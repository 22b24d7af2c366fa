"""A call's outbound frames onto the media socket at real time, driven by loop timers.

The pacer (`media_node.audio.pacer`) decides which frames are due; this module is the I/O around
it. Each due frame costs one timer callback that releases it and writes it to the socket at
once (`media_node.socket_send.send_now`): no task wake-up, no future, no coroutine per frame,
and the write happens in the loop iteration the timer fires in rather than one later. Only when
the socket cannot take a frame without waiting (flow control, or the connection is closing) do
the frames already released go out through an awaited ``ws.send`` in a task, and pacing resumes
when it is done. Nothing is released once the socket is closing. Frames are never sent ahead of
their due time: a late timer releases only what the pacer allows, so a stall is never followed
by a burst.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from media_node.audio import Released
from media_node.playback import Playback
from media_node.socket_send import send_now

log = logging.getLogger(__name__)


class PacedSender:
    """Releases a call's queued frames onto its media socket when they fall due.

    Args:
        ws: The media socket (websockets asyncio server connection).
        playback: The call's outbound audio path (pacer and start-cushion hold).
        clock: The call's monotonic clock in seconds.
        on_released: Called with each frame's item id and release time once it was sent.
        on_error: Called with a description if pacing stops on an unexpected error.
    """

    def __init__(
        self,
        ws: Any,
        playback: Playback,
        clock: Callable[[], float],
        on_released: Callable[[str | None, float], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.ws = ws
        self.playback = playback
        self.pacer = playback.pacer
        self.clock = clock
        self.on_released = on_released
        self.on_error = on_error
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._holding = False
        self._unsent: list[Released] = []
        self._sending: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def waiting(self) -> bool:
        """Whether released frames are waiting for the socket to take them (flow control)."""
        return self._sending is not None

    def kick(self) -> None:
        """Audio was queued (or a reply ended): send what is due now and time the next frame."""
        if self._stopped or self._sending is not None:
            return
        if self._timer is not None:
            if not self._holding:
                return  # the timer is set for the queue's head; audio added behind it waits
            self._timer.cancel()
        self._run()

    def interrupt(self) -> int:
        """Barge-in (after `Playback.interrupt`): frames released but still waiting for the
        socket are not sent, and the next audio is timed afresh. Returns the frames dropped."""
        dropped = len(self._unsent)
        self._unsent.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return dropped

    async def stop(self) -> None:
        """Stops pacing (end of the call)."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending is not None:
            self._sending.cancel()
            await asyncio.gather(self._sending, return_exceptions=True)

    def _run(self) -> None:
        self._timer = None
        try:
            self._release(self.clock())
        except Exception:
            log.exception("pacing failed")
            self._stopped = True
            self.on_error("internal error in pacing")

    def _release(self, now: float) -> None:
        if self.ws.state is not State.OPEN:
            # The caller hung up or the call is closing: a frame released now would be counted
            # as played (pacer stats, what the caller heard) without reaching anyone.
            self._stopped = True
            return
        hold = self.playback.hold_until(now)
        self._holding = hold is not None
        if hold is not None:
            self._arm(hold, now)
            return
        released = self.pacer.release(now)
        for index, frame in enumerate(released):
            if not send_now(self.ws, frame.frame):
                self._unsent = released[index:]
                self._sending = self._loop.create_task(self._send_unsent())
                return
            self.on_released(frame.item_id, frame.released_at)
        wake = self.pacer.next_wakeup(now)
        if wake is not None:
            self._arm(wake, now)

    def _arm(self, when: float, now: float) -> None:
        self._timer = self._loop.call_later(max(0.0, when - now), self._run)

    async def _send_unsent(self) -> None:
        unsent = self._unsent
        try:
            while unsent:
                frame = unsent.pop(0)
                await self.ws.send(frame.frame)
                self.on_released(frame.item_id, frame.released_at)
        except ConnectionClosed:
            self._stopped = True
            return
        finally:
            self._sending = None
        if not self._stopped:
            self._run()
