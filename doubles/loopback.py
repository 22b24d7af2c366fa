"""What every WebSocket double shares: a real server on loopback, `async with`, bounded waits.

A double subclasses :class:`LoopbackServer` with its connection handler (``_handle``), its
upgrade check (``_check_request``), its URL and the largest message it accepts; tests wait on
its state with :meth:`LoopbackServer.wait_for`, which re-checks on every change instead of
polling (the double calls ``self._changes.notify()`` when something happens).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response


class Changes:
    """Broadcast "something changed" to any number of waiters, without polling.

    Every client frame notifies, and usually nobody is waiting: then notifying does nothing.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._waiters = 0

    def notify(self) -> None:
        """Wake every waiter to re-check its condition."""
        if self._waiters:
            self._event.set()
            self._event = asyncio.Event()

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float,  # noqa: ASYNC109 - every wait in a test must be bounded
        what: str,
    ) -> Any:
        """Wait until ``predicate()`` is truthy, re-checking it on every notification.

        Raises:
            TimeoutError: Not within ``timeout`` seconds.
        """
        self._waiters += 1
        try:
            async with asyncio.timeout(timeout):
                while not (result := predicate()):
                    await self._event.wait()
                return result
        except TimeoutError:
            raise TimeoutError(f"{what}: condition not met within {timeout} s") from None
        finally:
            self._waiters -= 1


class LoopbackServer:
    """A WebSocket server double listening on ``host:port`` (port 0 picks a free one).

    Subclasses set `NAME` and `MAX_MESSAGE_BYTES` and implement ``_handle``,
    ``_check_request`` and `url`.
    """

    NAME = "double"
    MAX_MESSAGE_BYTES = 16 * 2**20

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: Server | None = None
        self._changes = Changes()

    @property
    def url(self) -> str:
        """The URL clients connect to."""
        raise NotImplementedError

    async def _handle(self, connection: ServerConnection) -> None:
        raise NotImplementedError

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        raise NotImplementedError

    async def start(self) -> None:
        """Start listening (also done by ``async with``)."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_request,
            compression=None,
            max_size=self.MAX_MESSAGE_BYTES,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def wait_for(
        self,
        predicate: Callable[[Self], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - every wait in a test must be bounded
    ) -> Any:
        """Wait until ``predicate(double)`` is truthy; return its value.

        Raises:
            TimeoutError: Not within ``timeout`` seconds.
        """
        return await self._changes.wait_for(lambda: predicate(self), timeout, self.NAME)
