"""A WebSocket double of the OpenAI Realtime API (GA interface) for tests and benchmarks.

Usage::

    call = FunctionCall("transfer_to_human", {"reason": "asked"}, follow_up=Reply("One moment."))
    script = Script(
        greeting=Reply("Karibu! How can I help?"),
        turns=[
            Turn("What time do you open?", Reply("We open at eight.")),
            Turn("Can I talk to a person?", Reply("Sure.", function_call=call)),
        ],
    )
    async with RealtimeDouble(script, pacing=Pacing(chunk_ms=120, speed=4.0)) as double:
        url = f"{double.url}?model=gpt-realtime"  # with Authorization: Bearer <any key>
        ...
        session = await double.wait_for_session()
        await session.wait_for(lambda s: s.truncates, timeout=2)

Script: the greeting answers a ``response.create`` before any caller turn (a sentence quoted
in ``response.instructions`` is spoken instead); each :class:`Turn` is one caller turn in
order (``said`` is the transcript the double reports, ``reply`` its answer); replies speak
synthetic speech-like 24 kHz audio whose length follows the text unless PCM or a WAV is given.
Any :class:`Responder`, or a bare ``respond(state, trigger) -> Reply`` function, can replace it.

Faults, per session: :meth:`RealtimeSession.expire`, :meth:`~RealtimeSession.drop`,
:meth:`~RealtimeSession.send_error`, :meth:`~RealtimeSession.rate_limit_next_response`,
:meth:`~RealtimeSession.never_answer`, :meth:`~RealtimeSession.delay_first_audio`; use
``on_session`` to apply them before ``session.created`` goes out.

The upgrade is checked like the service does: path ``/v1/realtime`` with ``?model=``, and an
``Authorization: Bearer`` key (HTTP 401 otherwise, with the API's JSON error body). Sending the
retired ``OpenAI-Beta`` header gets ``error`` ``beta_api_shape_disabled`` and close 4000.
Each connection is a :class:`RealtimeSession` around a sans-I/O
:class:`~doubles.openai_realtime.protocol.RealtimeSessionProtocol` (whose docstring lists what
the double simplifies); pacing runs on event-loop timers, so hundreds of sessions cost little.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from doubles.loopback import LoopbackServer
from doubles.openai_realtime.protocol import RealtimeSessionProtocol
from doubles.openai_realtime.response import Pacing
from doubles.openai_realtime.script import (
    FunctionCall,
    FunctionOutput,
    Reply,
    Responder,
    RespondFunction,
    Script,
    SessionState,
    Trigger,
    Turn,
    as_responder,
)
from doubles.openai_realtime.session import RealtimeSession

__all__ = [
    "FunctionCall",
    "FunctionOutput",
    "Pacing",
    "RealtimeDouble",
    "RealtimeSession",
    "Rejection",
    "Reply",
    "Responder",
    "RespondFunction",
    "Script",
    "SessionState",
    "Trigger",
    "Turn",
]


@dataclass(frozen=True)
class Rejection:
    """An upgrade request refused before the WebSocket opened."""

    path: str
    status: int
    message: str


class RealtimeDouble(LoopbackServer):
    """The Realtime API double: a WebSocket server on 127.0.0.1.

    Args:
        script: A :class:`Script`, any :class:`Responder`, or a bare
            ``respond(state, trigger) -> Reply`` function (``Script()`` by default).
        host: Interface to listen on.
        port: TCP port (0 picks a free one).
        api_key: Accept only this Bearer key (any non-empty key when ``None``).
        pacing: Default response pacing (delta size, speed, first-audio delay).
        max_session_s: Sessions expire after this long (``session_expired``, close 1001).
        record_audio: Keep every input audio byte per session.
        on_session: Called with each new session before ``session.created`` is sent
            (to set per-session faults or pacing).
    """

    NAME = "realtime double"
    MAX_MESSAGE_BYTES = 24 * 2**20

    def __init__(
        self,
        script: Responder | RespondFunction | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        pacing: Pacing | None = None,
        max_session_s: float = 3600.0,
        record_audio: bool = False,
        on_session: Callable[[RealtimeSession], None] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.script: Responder = as_responder(script) if script is not None else Script()
        self.api_key = api_key
        self.pacing = pacing or Pacing()
        self.max_session_s = max_session_s
        self.record_audio = record_audio
        self.on_session = on_session
        self.sessions: list[RealtimeSession] = []
        """Every session, in connection order (closed ones included)."""
        self.rejected: list[Rejection] = []
        """Upgrade requests refused with an HTTP error."""
        self.connections = 0
        """WebSocket connections open right now."""

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/realtime``; clients add ``?model=…``."""
        return f"ws://{self.host}:{self.port}/v1/realtime"

    async def wait_for_session(
        self,
        index: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109 - every wait in a test must be bounded
    ) -> RealtimeSession:
        """The ``index``-th session, once it has connected."""
        await self.wait_for(lambda d: len(d.sessions) > index, timeout)
        return self.sessions[index]

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path != "/v1/realtime":
            return self._refuse(
                connection, request, HTTPStatus.NOT_FOUND, f"Invalid URL (GET {url.path})"
            )
        authorization = request.headers.get("Authorization", "")
        if not authorization:
            return self._refuse(
                connection,
                request,
                HTTPStatus.UNAUTHORIZED,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        scheme, _, key = authorization.partition(" ")
        if scheme != "Bearer" or not key.strip() or (self.api_key and key.strip() != self.api_key):
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else key
            return self._refuse(
                connection,
                request,
                HTTPStatus.UNAUTHORIZED,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        if not parse_qs(url.query).get("model"):
            return self._refuse(
                connection,
                request,
                HTTPStatus.BAD_REQUEST,
                "Missing required parameter: 'model'.",
                code="missing_required_parameter",
                param="model",
            )
        return None

    def _refuse(
        self,
        connection: ServerConnection,
        request: Request,
        status: HTTPStatus,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
    ) -> Response:
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }
        response = connection.respond(status, json.dumps(body, indent=2) + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        self.rejected.append(Rejection(request.path, int(status), message))
        self._changes.notify()
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        model = parse_qs(urlsplit(connection.request.path).query)["model"][0]
        protocol = RealtimeSessionProtocol(
            model=model,
            responder=self.script,
            pacing=self.pacing,
            expires_at=int(time.time() + self.max_session_s),
            record_audio=self.record_audio,
        )
        session = RealtimeSession(protocol, connection, self._changes.notify)
        self.sessions.append(session)
        self.connections += 1
        if self.on_session is not None:
            self.on_session(session)
        minutes = max(1, round(self.max_session_s / 60))
        expiry = asyncio.get_running_loop().call_later(self.max_session_s, session.expire, minutes)
        try:
            await session._serve()
        finally:
            expiry.cancel()
            self.connections -= 1
            self._changes.notify()
