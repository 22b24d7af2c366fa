"""A call's outbound frames onto the media socket at real time, on the node's pacing clock.

The pacer (`media_node.audio.pacer`) decides which frames are due; this module is the I/O around
it. While the call has frames queued its sender is on the node's one `PacingClock`, whose tick
(one timer callback for all calls every 20 ms) hands it each due frame; the sender writes it at
once (`media_node.socket_send.send_now`): no task wake-up, no future, no coroutine per frame.
Audio queued while the call is off the clock goes out at once (`kick`). Only when the socket
cannot take a frame without waiting (flow control, or the connection is closing) does the call
leave the clock while the frames already released go out through an awaited ``ws.send`` in a
task; pacing resumes when it is done. Nothing is released once the socket is closing. A frame
leaves at most one tick before it falls due (so none waits for a tick), and after it only when
the tick runs late; a late tick releases only what falls due before the next one, so a stall is
never followed by a burst.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from media_node.audio import Released
from media_node.pacing_clock import PacingClock
from media_node.playback import Playback
from media_node.socket_send import send_now

log = logging.getLogger(__name__)


class PacedSender:
    """Releases a call's queued frames onto its media socket when they fall due.

    Args:
        ws: The media socket (websockets asyncio server connection).
        playback: The call's outbound audio path (pacer and start-cushion hold).
        clock: The call's monotonic clock in seconds.
        on_released: Called with each frame's item id and send time once it was sent.
        on_error: Called with a description if pacing stops on an unexpected error.
        pacing: The node's pacing clock, shared by its calls; without one the sender has a
            clock of its own.
    """

    def __init__(
        self,
        ws: Any,
        playback: Playback,
        clock: Callable[[], float],
        on_released: Callable[[str | None, float], None],
        on_error: Callable[[str], None],
        pacing: PacingClock | None = None,
    ) -> None:
        self.ws = ws
        self.playback = playback
        self.pacer = playback.pacer
        self.clock = clock
        self.on_released = on_released
        self.on_error = on_error
        self.pacing = pacing if pacing is not None else PacingClock(clock)
        self._loop = asyncio.get_running_loop()
        self._hold: asyncio.TimerHandle | None = None
        self._unsent: list[Released] = []
        self._sending: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def waiting(self) -> bool:
        """Whether released frames are waiting for the socket to take them (flow control)."""
        return self._sending is not None

    def kick(self) -> None:
        """Audio was queued (or a reply ended): send what is due now and join the clock."""
        if self._stopped or self._sending is not None or self in self.pacing:
            return  # on the clock, its next tick takes the new audio
        if self._hold is not None:
            self._hold.cancel()  # the cushion may be complete now
        self._start()

    def interrupt(self) -> int:
        """Barge-in (after `Playback.interrupt`): frames released but still waiting for the
        socket are not sent, and the next audio is timed afresh. Returns the frames dropped."""
        dropped = len(self._unsent)
        self._unsent.clear()
        self.pacing.remove(self)
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        return dropped

    async def stop(self) -> None:
        """Stops pacing (end of the call)."""
        self._stopped = True
        self.pacing.remove(self)
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if self._sending is not None:
            self._sending.cancel()
            await asyncio.gather(self._sending, return_exceptions=True)

    # --- called by the pacing clock ------------------------------------------------------------

    def ready(self) -> bool:
        """Whether frames may be released for this call now."""
        if self.ws.state is not State.OPEN:
            # The caller hung up or the call is closing: a frame released now would be counted
            # as played (pacer stats, what the caller heard) without reaching anyone.
            self._stopped = True
            return False
        return not self._stopped

    def deliver(self, frame: Released, now: float) -> None:
        """Writes a released frame, or keeps it for the socket if the socket has to wait."""
        if self._sending is None and send_now(self.ws, frame.frame):
            self.on_released(frame.item_id, now)
            return
        if self._stopped:
            return
        self._unsent.append(frame)
        if self._sending is None:
            self.pacing.remove(self)
            self._sending = self._loop.create_task(self._send_unsent())

    def deliver_joined(self, frames: list[Released], now: float) -> None:
        """Writes consecutive released frames as one message (``frames_per_write=2``)."""
        joined = len(frames) > 1 and self._sending is None
        if joined and send_now(self.ws, b"".join(frame.frame for frame in frames)):
            for frame in frames:
                self.on_released(frame.item_id, now)
            return
        for frame in frames:
            self.deliver(frame, now)

    def fail(self) -> None:
        """Pacing hit an unexpected error: the call stops sending and is told why."""
        self._stopped = True
        self.on_error("internal error in pacing")

    # --- internals -------------------------------------------------------------------------------

    def _start(self) -> None:
        self._hold = None
        try:
            if not self.ready():
                return
            now = self.clock()
            hold = self.playback.hold_until(now)
            if hold is not None:
                self._hold = self._loop.call_later(max(0.0, hold - now), self._start)
                return
            self.pacing.kick(self, now)
        except Exception:
            log.exception("pacing failed")
            self.pacing.remove(self)
            self.fail()

    async def _send_unsent(self) -> None:
        unsent = self._unsent
        try:
            while unsent:
                frame = unsent.pop(0)
                await self.ws.send(frame.frame)
                self.on_released(frame.item_id, self.clock())
        except ConnectionClosed:
            self._stopped = True
            return
        finally:
            self._sending = None
        if not self._stopped:
            self._start()
