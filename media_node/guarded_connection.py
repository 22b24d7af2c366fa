"""The media socket's connection class: every message passes a :class:`SocketLimiter` first.

websockets builds one ``ServerConnection`` per socket and lets the server choose the class
(``serve(create_connection=...)``). This subclass overrides only :meth:`recv`, which
``async for message in websocket`` also uses, so call sessions read through it unchanged:
messages within limits come out as before, oversized audio frames are dropped (logged once,
counted), and a socket that breaks a rate limit is closed with 1008 and a reason, after which
``recv`` raises ``ConnectionClosed`` as for any other close (``protocol.close_exc``, part of
websockets' sans-I/O API). Silence (no frames at all while the
reader waits) and a peer that stopped reading (the write buffer stays full) are judged from
outside by :meth:`check`, which the server calls periodically for every live socket: one timer
for the node instead of one per frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

from media_node.socket_limits import Action, SocketLimiter, SocketLimits, Verdict

log = logging.getLogger(__name__)


class GuardedConnection(ServerConnection):
    """A server connection whose incoming messages are held to :class:`SocketLimits`.

    Args:
        *args: As for ``ServerConnection``.
        limits: The bounds for this socket.
        clock: Monotonic clock in seconds.
        **kwargs: As for ``ServerConnection``.
    """

    def __init__(
        self,
        *args: Any,
        limits: SocketLimits,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.limiter = SocketLimiter(limits, clock())
        #: The call id once admitted, for log lines.
        self.call_id: str | None = None
        self._closing: asyncio.Task[None] | None = None

    async def recv(self, decode: bool | None = None) -> Any:
        """The next message within limits; raises ``ConnectionClosed`` once the socket closed."""
        limiter = self.limiter
        clock = self.clock
        while True:
            limiter.waiting_since = clock()
            try:
                message = await super().recv(decode)
            finally:
                limiter.waiting_since = None
            verdict = limiter.on_message(isinstance(message, str), len(message), clock())
            if verdict.action is Action.DELIVER:
                return message
            if verdict.action is Action.CLOSE:
                # Nothing more is read: frames still in flight queue up until websockets stops
                # reading the TCP socket (max_queue), so a flood costs nothing while closing.
                await self.enforce(verdict)
                raise self.protocol.close_exc
            if verdict.log is not None:
                log.warning("call %s: %s", self.call_id, verdict.log)

    def check(self) -> bool:
        """Act on limits that need no message to break: silence and a peer that stopped reading.

        Returns:
            True if the socket is being closed or aborted now.
        """
        now = self.clock()
        verdict = self.limiter.check_writes(self.transport.get_write_buffer_size(), now)
        if verdict is None:
            verdict = self.limiter.check_idle(now)
        if verdict is None:
            return False
        self._closing = asyncio.create_task(self.enforce(verdict))
        return True

    async def enforce(self, verdict: Verdict) -> None:
        """Close the socket for a broken limit (1008 with the limit as the reason), or abort it."""
        log.warning("call %s: %s", self.call_id, verdict.log)
        if verdict.action is Action.ABORT:
            self.transport.abort()  # every pending send and recv raises ConnectionClosed
            return
        await self.close(verdict.code, verdict.reason)

    @staticmethod
    def held_to(limits: SocketLimits) -> type[GuardedConnection]:
        """A subclass whose sockets all get ``limits``: what ``serve(create_connection=)`` takes."""

        class Limited(GuardedConnection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, limits=limits, **kwargs)

        return Limited

    def log_summary(self) -> None:
        """Log repeated events (dropped frames, ...) once, with their counts."""
        summary = self.limiter.summary()
        if summary is not None:
            log.warning("call %s: %s", self.call_id, summary)
