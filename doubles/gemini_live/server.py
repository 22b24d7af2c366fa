"""The Gemini Live double's server: a real WebSocket server on 127.0.0.1.

Only the BidiGenerateContent path is served (HTTP 404 otherwise, before the upgrade). The API
key may come in the ``x-goog-api-key`` header (the SDK's way) or the ``key`` query parameter
(the docs' way); a missing or wrong key closes the connection with 1007, like the service.
Resumption handles issued by any connection resume on any later one, unless the double is
told to refuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from doubles.gemini_live.session import LiveConnection, LiveConversation
from doubles.openai_realtime.response import Pacing
from doubles.openai_realtime.script import Responder, RespondFunction, Script, as_responder
from doubles.openai_realtime.session import Changes

__all__ = ["LIVE_PATH", "GeminiLiveDouble"]

LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


class GeminiLiveDouble:
    """The Gemini Live API double.

    Args:
        script: A :class:`~doubles.openai_realtime.script.Script`, any responder, or a bare
            ``respond(state, trigger) -> Reply`` function.
        host: Interface to listen on.
        port: TCP port (0 picks a free one).
        api_key: Accept only this key (any non-empty key when None).
        pacing: Audio chunk size and speed (faster than real time, like the service).
        record_audio: Keep every input audio byte per connection.
        on_connection: Called with each new connection before it reads anything.
    """

    def __init__(
        self,
        script: Responder | RespondFunction | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        pacing: Pacing | None = None,
        record_audio: bool = False,
        on_connection: Callable[[LiveConnection], None] | None = None,
    ) -> None:
        self.script: Responder = as_responder(script) if script is not None else Script()
        self.host = host
        self.port = port
        self.api_key = api_key
        self.pacing = pacing or Pacing()
        self.record_audio = record_audio
        self.on_connection = on_connection
        self.connections: list[LiveConnection] = []
        """Every connection, in order (closed ones included)."""
        self.refuse_resumption = False
        """Close resumed setups with 1008, as for an expired or unknown handle."""
        self.rejected_paths: list[str] = []
        self._handles: dict[str, LiveConversation] = {}
        self._server: Server | None = None
        self._changes = Changes()

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/ws/…BidiGenerateContent``."""
        return f"ws://{self.host}:{self.port}{LIVE_PATH}"

    async def start(self) -> None:
        """Start listening (also done by ``async with``)."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_path,
            compression=None,
            max_size=16 * 2**20,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> GeminiLiveDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def wait_for(
        self,
        predicate: Callable[[GeminiLiveDouble], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - every wait in a test must be bounded
    ) -> Any:
        """Wait until ``predicate(double)`` is truthy; return its value."""
        return await self._changes.wait_for(lambda: predicate(self), timeout, "gemini double")

    async def wait_for_connection(
        self,
        index: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109 - every wait in a test must be bounded
    ) -> LiveConnection:
        """The ``index``-th connection, once it has answered its setup."""
        await self.wait_for(
            lambda d: len(d.connections) > index and d.connections[index].setup is not None,
            timeout,
        )
        return self.connections[index]

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path == LIVE_PATH:
            return None
        self.rejected_paths.append(request.path)
        self._changes.notify()
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")

    def _resume(self, handle: str) -> LiveConversation | None:
        return None if self.refuse_resumption else self._handles.get(handle)

    def _register(self, handle: str, conversation: LiveConversation) -> None:
        self._handles[handle] = conversation

    async def _handle(self, connection: ServerConnection) -> None:
        live = LiveConnection(
            connection,
            responder=self.script,
            pacing=self.pacing,
            resume=self._resume,
            register=self._register,
            api_key=self.api_key,
            record_audio=self.record_audio,
            on_change=self._changes.notify,
        )
        self.connections.append(live)
        if self.on_connection is not None:
            self.on_connection(live)
        self._changes.notify()
        await live.serve()
