"""One connection to the Realtime double: I/O around the sans-I/O session protocol.

:class:`RealtimeSession` feeds client frames to a
:class:`~doubles.openai_realtime.protocol.RealtimeSessionProtocol`, sends what it emits through
a single writer task (so events leave in the order they were produced, whoever produced
them), runs its timers on the event loop, and exposes the session for assertions and fault
injection.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed

from doubles.loopback import Changes
from doubles.openai_realtime.events import (
    AbortConnection,
    Action,
    ClientEvent,
    CloseConnection,
    Outgoing,
    StartTimer,
    Timer,
    Truncate,
)
from doubles.openai_realtime.protocol import RealtimeSessionProtocol
from doubles.openai_realtime.response import ResponseStream
from doubles.openai_realtime.script import FunctionOutput

__all__ = ["Changes", "RealtimeSession"]

_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


class RealtimeSession:
    """One client connection: what it sent, what it got, and faults to inject.

    Observability (read-only): :attr:`id`, :attr:`model`, :attr:`headers`, :attr:`config`
    (effective session), :attr:`client_events`, :attr:`server_events`,
    :attr:`input_audio_ms`, :attr:`input_audio` (only with ``record_audio``),
    :attr:`truncates`, :attr:`function_outputs`, :attr:`responses`, :attr:`conversation`,
    :attr:`closed`, :attr:`close_code`, :attr:`close_reason`.
    """

    def __init__(
        self,
        protocol: RealtimeSessionProtocol,
        connection: ServerConnection,
        on_change: Callable[[], None],
    ) -> None:
        self.protocol = protocol
        self.headers = connection.request.headers if connection.request else Headers()
        self.model: str = protocol.config["model"]
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._connection = connection
        self._on_change = on_change
        self._queue: asyncio.Queue[Action | None] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._changes = Changes()

    # -- Observability -------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The ``sess_…`` id."""
        return self.protocol.id

    @property
    def config(self) -> dict[str, Any]:
        """The effective session configuration (as ``session.updated`` reports it)."""
        return self.protocol.config

    @property
    def client_events(self) -> list[ClientEvent]:
        """Client events received, in order (runs of audio appends summarised)."""
        return self.protocol.client_events

    @property
    def server_events(self) -> list[dict[str, Any]]:
        """Server events sent, in order (audio deltas summarised by size)."""
        return self.protocol.server_events

    @property
    def input_audio_ms(self) -> float:
        """Input audio received this session, in milliseconds."""
        return self.protocol.input_audio_ms

    @property
    def input_audio(self) -> bytes | None:
        """Every input audio byte received, when the double records audio."""
        audio = self.protocol.buffer.audio
        return None if audio is None else bytes(audio)

    @property
    def truncates(self) -> list[Truncate]:
        """Every ``conversation.item.truncate`` and its outcome."""
        return self.protocol.truncates

    @property
    def function_outputs(self) -> list[FunctionOutput]:
        """``function_call_output`` items the client created."""
        return self.protocol.function_outputs

    @property
    def responses(self) -> list[ResponseStream]:
        """Responses started (``id``, ``trigger``, ``status``, ``audio_ms``, ``transcript``…)."""
        return self.protocol.responses

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """Conversation items as the API shows them."""
        return list(self.protocol.conversation)

    def client_event_types(self) -> list[str]:
        """Types of the client events received."""
        return [event.type for event in self.protocol.client_events]

    def server_event_types(self) -> list[str]:
        """Types of the server events sent."""
        return [event["type"] for event in self.protocol.server_events]

    async def wait_for(
        self,
        predicate: Callable[[RealtimeSession], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - every wait in a test must be bounded
    ) -> Any:
        """Wait until ``predicate(session)`` is truthy; return its value.

        Raises:
            TimeoutError: Not within ``timeout`` seconds.
        """
        return await self._changes.wait_for(lambda: predicate(self), timeout, f"session {self.id}")

    # -- Faults ----------------------------------------------------------------------------

    def expire(self, minutes: int = 60) -> None:
        """``error`` ``session_expired`` ("…maximum duration of N minutes."), then close 1001."""
        self.protocol.expire(minutes)
        self._flush()

    def drop(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.protocol.drop()
        self._flush()

    def send_error(
        self,
        code: str | None = "server_error",
        message: str = _SERVER_ERROR,
        *,
        error_type: str = "server_error",
    ) -> None:
        """Send an unsolicited ``error`` event mid-call (the session stays open)."""
        self.protocol.inject_error(error_type, code, message)
        self._flush()

    def rate_limit_next_response(self) -> None:
        """Fail the next response with ``rate_limit_exceeded`` (``response.done`` ``failed``)."""
        self.protocol.fail_next_response(
            "tokens",
            "rate_limit_exceeded",
            f"Rate limit reached for {self.model} on tokens per min (TPM): Limit 40000, "
            "Used 40000, Requested 1024. Please try again in 1.536s.",
        )

    def never_answer(self, enabled: bool = True) -> None:
        """Keep accepting audio but send no VAD events and start no responses."""
        self.protocol.never_answers = enabled

    def delay_first_audio(self, seconds: float) -> None:
        """Wait ``seconds`` between ``response.created`` and the first audio of later responses."""
        self.protocol.pacing = dataclasses.replace(
            self.protocol.pacing, first_audio_delay_s=seconds
        )

    # -- I/O ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        for action in self.protocol.actions_to_perform():
            if isinstance(action, StartTimer):
                # Only here: get_running_loop() makes a getpid() system call, and most
                # frames start no timer.
                loop = asyncio.get_running_loop()
                handle = loop.call_later(action.delay_s, self._fire, action.timer)
                self._timers.add(handle)
            else:
                self._queue.put_nowait(action)
        self._changes.notify()
        self._on_change()

    def _fire(self, timer: Timer) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {handle for handle in self._timers if handle.when() > now}
        self.protocol.timer_fired(timer)
        self._flush()

    async def _write(self) -> None:
        connection = self._connection
        try:
            while (action := await self._queue.get()) is not None:
                if isinstance(action, Outgoing):
                    await connection.send(action.text)
                elif isinstance(action, CloseConnection):
                    await connection.close(action.code, action.reason)
                    return
                elif isinstance(action, AbortConnection):
                    connection.transport.abort()
                    return
        except ConnectionClosed:
            return

    async def _serve(self) -> None:
        connection = self._connection
        writer = asyncio.create_task(self._write())
        beta = connection.request is not None and "OpenAI-Beta" in connection.request.headers
        self.protocol.open(beta_header=beta)
        self._flush()
        try:
            async for message in connection:
                if isinstance(message, str):
                    self.protocol.receive_text(message)
                else:
                    self.protocol.receive_bytes(message)
                self._flush()
        except ConnectionClosed:
            pass
        finally:
            for handle in self._timers:
                handle.cancel()
            self._queue.put_nowait(None)
            try:
                async with asyncio.timeout(5):
                    await writer
            except TimeoutError:
                writer.cancel()
            self.closed = True
            self.close_code = connection.close_code
            self.close_reason = connection.close_reason
            self._changes.notify()
