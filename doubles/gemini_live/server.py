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
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from doubles.gemini_live.session import LiveConnection, LiveConversation
from doubles.loopback import LoopbackServer
from doubles.openai_realtime.response import Pacing
from doubles.openai_realtime.script import Responder, RespondFunction, Script, as_responder

__all__ = ["LIVE_PATH", "GeminiLiveDouble"]

LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


class GeminiLiveDouble(LoopbackServer):
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

    NAME = "gemini double"
    MAX_MESSAGE_BYTES = 16 * 2**20

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
        super().__init__(host, port)
        self.script: Responder = as_responder(script) if script is not None else Script()
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

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/ws/…BidiGenerateContent``."""
        return f"ws://{self.host}:{self.port}{LIVE_PATH}"

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

    def forget(self) -> None:
        """Forget the connections and resumption handles so far (a long-running double, such
        as the benchmarks', would otherwise keep every one)."""
        self.connections.clear()
        self._handles.clear()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
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
