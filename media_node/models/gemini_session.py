"""Gemini Live session over WebSockets: the I/O around `GeminiLiveProtocol`, with resumption.

A Live connection lasts about ten minutes; the service announces the end with ``goAway``. The
session lets the reply in progress finish on the old connection (so the caller hears no gap)
and waits for the fresh resumption handle the service gives after it, then opens a second
connection and sends the setup again with that handle; if the reply runs long, it starts at
the latest `RESUME_MARGIN_SECONDS` before the end, with the latest handle. From then on caller
audio is kept rather than sent to the old connection (which would answer it too); once the new
connection answers ``setupComplete`` and the old one has no turn open (or has closed), the
session switches: the kept audio goes to the new connection and the old one is closed. No
handle, or a resumed setup refused (close 1007/1008), is a fatal `ModelError`: the call
apologises and goes to the front desk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from mapokezi.profiles import Profile
from media_node.models import gemini_protocol as wire
from media_node.models import gemini_setup
from media_node.models.base import (
    ModelClosed,
    ModelError,
    ModelEvent,
    ModelSession,
    ModelUnavailableError,
)
from media_node.prompts import tool_specs
from media_node.socket_send import send_now

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
RESUME_MARGIN_SECONDS = 5.0
"""After ``goAway``, resuming starts at the latest this long before the connection ends."""
MAX_HELD_AUDIO_BYTES = 60 * 2 * wire.INPUT_RATE
"""Caller audio kept across a reconnection: 60 s at 16 kHz (older audio is dropped)."""
SYSTEM_NOTE = "(A note from the phone system, not said by the caller: {text})"
CONTINUE = "Please continue."


class ResumptionRefusedError(Exception):
    """The resumed connection could not be opened or its setup was refused."""


class GeminiLiveSession(ModelSession):
    """One Gemini Live session for one call.

    Args:
        url: BidiGenerateContent endpoint (``GEMINI_LIVE_URL``).
        model: Model name, with or without the ``models/`` prefix.
        api_key: Sent in the ``x-goog-api-key`` header.
        profile: The call's receptionist profile.
        instructions: Assembled session instructions (the system instruction).
        voice: Prebuilt voice name.
    """

    input_rate = wire.INPUT_RATE
    output_rate = wire.OUTPUT_RATE
    supports_truncate = False

    def __init__(
        self,
        *,
        url: str,
        model: str,
        api_key: str,
        profile: Profile,
        instructions: str,
        voice: str,
    ) -> None:
        self._url = url
        self._model = model
        self._api_key = api_key
        self._profile = profile
        self._instructions = instructions
        self._voice = voice
        self._tools = tool_specs(profile, take_messages=True)
        self._protocol = wire.GeminiLiveProtocol()
        self._ws: ClientConnection | None = None
        self._closed = False
        self._pending_outputs: list[tuple[str, dict[str, Any]]] = []
        self._held_audio: bytearray | None = None
        self._resume: asyncio.Task[tuple[ClientConnection, str | bytes]] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._going_away = False  # this connection's goAway was acted on
        self._resume_by: float | None = None  # loop time by which resuming must start
        self._resume_timer: asyncio.Future[None] | None = None
        self.resumptions = 0
        """Connections switched to after a ``goAway`` (for logs and tests)."""

    def setup(self, handle: str | None = None) -> dict[str, Any]:
        """The ``setup`` message of this session (``handle`` to resume)."""
        return gemini_setup.setup_message(
            self._profile,
            self._instructions,
            self._tools,
            model=self._model,
            voice=self._voice,
            handle=handle,
        )

    async def _open(self) -> ClientConnection:
        return await connect(
            self._url,
            additional_headers={"x-goog-api-key": self._api_key},
            open_timeout=CONNECT_TIMEOUT_SECONDS,
            max_size=16 * 1024 * 1024,
            ping_interval=20,
            ping_timeout=20,
        )

    async def connect(self) -> None:
        """Opens the socket and sends the setup; `SessionReady` follows ``setupComplete``."""
        try:
            ws = await self._open()
            self._protocol.connection_opened()
            await ws.send(wire.dump(self.setup()))
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed) as exc:
            raise ModelUnavailableError(f"cannot open the Gemini Live session: {exc}") from exc
        self._ws = ws

    # --- events --------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ModelEvent]:
        """Server messages as normalised model events, ending with one `ModelClosed`."""
        if self._ws is None:
            yield ModelClosed(None, "not connected")
            return
        while True:
            ws = self._ws
            async for event in self._read(ws):
                yield event
            if self._resume is None and self._resume_by is not None and not self._closed:
                self._resume_by = None  # the old connection ended before it came to rest
                error = self._start_resumption()
                if error is not None:
                    yield error
            if self._resume is None or self._closed:
                for event in self._protocol.end_connection():
                    yield event
                yield ModelClosed(ws.close_code, ws.close_reason or "connection lost")
                return
            try:
                new_ws, first = await self._resume
            except ResumptionRefusedError as exc:
                log.warning("Gemini session resumption failed: %s", exc)
                for event in self._protocol.end_connection():
                    yield event
                yield ModelError("session_resumption_refused", str(exc), fatal=True)
                yield ModelClosed(ws.close_code, "session resumption refused")
                return
            for event in self._switch_to(ws, new_ws, first):
                yield event
            await self._flush_held_audio()

    async def _read(self, ws: ClientConnection) -> AsyncIterator[ModelEvent]:
        """Events of `ws` until it ends, or until a resumed connection can take over.

        After ``goAway`` the resumption starts once the connection is at rest (the reply in
        progress finished and a fresh handle came), or at the resumption deadline whatever
        the state; the switch happens once the new connection is set up and no turn is open.
        """
        protocol = self._protocol
        while True:
            if self._resumption_due():
                self._resume_by = None
                error = self._start_resumption()
                if error is not None:
                    yield error
            resume = self._resume
            if resume is not None and resume.done():
                failed = resume.cancelled() or resume.exception() is not None
                if failed or not (protocol.turn_open or protocol.awaiting_tools):
                    return
            waiter = resume if resume is not None else self._resume_timer
            try:
                if waiter is None or waiter.done():
                    frame = await ws.recv()
                else:
                    received = await _recv_or(ws, waiter)
                    if received is None:
                        continue
                    frame = received
            except ConnectionClosed:
                return
            for event in protocol.receive(frame):
                yield event
            if protocol.go_away_seconds is not None and not self._going_away:
                self._going_away = True
                seconds = protocol.go_away_seconds
                log.info("Gemini connection ends in %s s: resuming on a new connection", seconds)
                delay = max(0.0, seconds - RESUME_MARGIN_SECONDS)
                self._resume_by = asyncio.get_running_loop().time() + delay
                self._resume_timer = asyncio.ensure_future(asyncio.sleep(delay))

    def _resumption_due(self) -> bool:
        if self._resume_by is None or self._resume is not None:
            return False
        return self._protocol.at_rest or asyncio.get_running_loop().time() >= self._resume_by

    def _start_resumption(self) -> ModelError | None:
        handle = self._protocol.resumption_handle
        seconds = self._protocol.go_away_seconds
        if handle is None:
            return ModelError(
                "session_resumption_unavailable",
                f"the connection ends in {seconds} s and no resumption handle was given",
                fatal=True,
            )
        self._held_audio = bytearray()
        self._resume = asyncio.create_task(self._open_resumed(handle))
        return None

    async def _open_resumed(self, handle: str) -> tuple[ClientConnection, str | bytes]:
        try:
            ws = await self._open()
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ResumptionRefusedError(f"cannot open a new connection: {exc}") from exc
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await ws.send(wire.dump(self.setup(handle)))
                while True:
                    frame = await ws.recv()
                    message = _json_object(frame)
                    if "setupComplete" in message:
                        return ws, frame
                    log.warning("message before setupComplete ignored: %.200r", frame)
        except ConnectionClosed:
            raise ResumptionRefusedError(
                f"resumed setup refused: close {ws.close_code} {ws.close_reason}"
            ) from None
        except TimeoutError:
            ws.transport.abort()
            raise ResumptionRefusedError("resumed setup not answered in time") from None
        except asyncio.CancelledError:
            ws.transport.abort()  # the session closed while resuming
            raise

    def _switch_to(
        self, old: ClientConnection, new: ClientConnection, first: str | bytes
    ) -> list[ModelEvent]:
        events = self._protocol.end_connection()
        self._protocol.connection_opened()
        events += self._protocol.receive(first)
        self._ws, self._resume, self._going_away = new, None, False
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        self.resumptions += 1
        task = asyncio.create_task(_close_quietly(old))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)
        return events

    async def _flush_held_audio(self) -> None:
        held, self._held_audio = self._held_audio, None
        if held:
            for start in range(0, len(held), 2 * self.input_rate):  # one second per message
                await self._send(wire.audio_input(bytes(held[start : start + 2 * self.input_rate])))

    # --- commands ------------------------------------------------------------------------

    async def _send(self, frame: str) -> None:
        ws = self._ws
        if ws is None or self._closed:
            return
        if send_now(ws, frame):
            return
        try:
            await ws.send(frame)
        except ConnectionClosed:
            log.debug("model socket closed; dropped a command")

    async def send_audio(self, pcm: bytes) -> None:
        if not pcm or not self._protocol.setup_complete:
            return
        if self._held_audio is not None:
            # Not to the old connection: it would answer what the new one will answer too.
            self._held_audio += pcm
            if len(self._held_audio) > MAX_HELD_AUDIO_BYTES:
                del self._held_audio[: len(self._held_audio) - MAX_HELD_AUDIO_BYTES]
            return
        await self._send(wire.audio_input(pcm))

    async def create_response(self, instructions: str | None = None) -> None:
        """Makes the model speak: the pending tool answer, or a user turn with `instructions`.

        Gemini starts speaking as soon as a tool's answer arrives, so `send_function_output`
        keeps the answer until this call and sends it with the instructions inside it.
        """
        if self._pending_outputs:
            outputs, self._pending_outputs = self._pending_outputs, []
            for index, (call_id, output) in enumerate(outputs):
                result: dict[str, Any] = dict(output)
                if instructions and index == len(outputs) - 1:
                    result["instructions"] = instructions
                name = self._protocol.tool_name(call_id) or ""
                self._protocol.tool_answered(call_id)
                await self._send(wire.tool_response(call_id, name, result))
            return
        text = instructions or CONTINUE
        if gemini_setup.is_gemini_3(self._model):
            await self._send(wire.realtime_text(text))
        else:
            await self._send(wire.user_turn(text))

    async def cancel_response(self) -> None:
        """No-op: the service stops an interrupted reply by itself."""

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """No-op: Gemini Live has no truncation (see `supports_truncate`)."""

    async def send_function_output(self, call_id: str, output: dict[str, Any]) -> None:
        """Keeps the tool's answer for `create_response` (sending it would start a reply)."""
        self._pending_outputs.append((call_id, output))

    async def add_system_message(self, text: str) -> None:
        await self._send(wire.user_turn(SYSTEM_NOTE.format(text=text), turn_complete=False))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        resume = self._resume
        if resume is not None:
            if resume.done() and not resume.cancelled() and resume.exception() is None:
                await _close_quietly(resume.result()[0])
            elif not resume.done():
                resume.cancel()
                await asyncio.gather(resume, return_exceptions=True)
        if self._ws is not None:
            await _close_quietly(self._ws)
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)


async def _recv_or(ws: ClientConnection, waiter: asyncio.Future[Any]) -> str | bytes | None:
    """The next frame of `ws`, or None once `waiter` is done (canceling recv is safe)."""
    receiving = asyncio.ensure_future(ws.recv())
    await asyncio.wait((receiving, waiter), return_when=asyncio.FIRST_COMPLETED)
    if receiving.done():
        return receiving.result()
    receiving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await receiving
    return None


async def _close_quietly(ws: ClientConnection) -> None:
    try:
        await asyncio.wait_for(ws.close(), timeout=2.0)
    except (TimeoutError, ConnectionClosed, OSError):
        ws.transport.abort()


def _json_object(frame: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(frame)
    except (ValueError, TypeError):
        return {}
    return message if isinstance(message, dict) else {}
