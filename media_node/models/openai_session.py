"""OpenAI Realtime (GA) session over a WebSocket: the thin I/O around `OpenAIRealtimeProtocol`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from mapokezi.profiles import Profile
from media_node.models import openai_protocol as wire
from media_node.models.base import ModelClosed, ModelEvent, ModelSession, ModelUnavailableError
from media_node.prompts import tool_specs
from media_node.socket_send import send_now

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0


def realtime_url(base_url: str, model: str) -> str:
    """``<base>?model=<model>``, keeping any query the base already has."""
    parts = urlsplit(base_url)
    query = "&".join(q for q in (parts.query, urlencode({"model": model})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class OpenAIRealtimeSession(ModelSession):
    """One Realtime session for one call.

    Args:
        url: Realtime endpoint, e.g. ``wss://api.openai.com/v1/realtime``.
        model: Model name, sent as the ``model`` query parameter.
        api_key: Sent as ``Authorization: Bearer`` (the only header; no ``OpenAI-Beta``).
        profile: The call's receptionist profile.
        instructions: Assembled session instructions.
    """

    input_rate = wire.MODEL_RATE
    output_rate = wire.MODEL_RATE

    def __init__(
        self, *, url: str, model: str, api_key: str, profile: Profile, instructions: str
    ) -> None:
        self._url = realtime_url(url, model)
        self._api_key = api_key
        self._protocol = wire.OpenAIRealtimeProtocol(
            wire.session_config(profile, instructions, tool_specs(profile, take_messages=True))
        )
        self._ws: ClientConnection | None = None
        self._closed = False

    async def connect(self) -> None:
        """Opens the socket; the session is configured once ``session.created`` arrives."""
        try:
            self._ws = await connect(
                self._url,
                additional_headers={"Authorization": f"Bearer {self._api_key}"},
                open_timeout=CONNECT_TIMEOUT_SECONDS,
                max_size=16 * 1024 * 1024,
                ping_interval=20,
                ping_timeout=20,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ModelUnavailableError(f"cannot open the Realtime session: {exc}") from exc

    async def events(self) -> AsyncIterator[ModelEvent]:
        """Server events as normalised model events, ending with one `ModelClosed`."""
        ws = self._ws
        if ws is None:
            yield ModelClosed(None, "not connected")
            return
        try:
            async for frame in ws:
                for event in self._protocol.receive(frame):
                    yield event
                await self._flush()
        except ConnectionClosed:
            pass
        yield ModelClosed(ws.close_code, ws.close_reason or "connection lost")

    async def _send(self, frame: str) -> None:
        if self._ws is None or self._closed:
            return
        if send_now(self._ws, frame):
            return
        try:
            await self._ws.send(frame)
        except ConnectionClosed:
            log.debug("model socket closed; dropped a command")

    async def _flush(self) -> None:
        for frame in self._protocol.data_to_send():
            await self._send(frame)

    async def send_audio(self, pcm: bytes) -> None:
        if pcm and self._protocol.created:
            await self._send(wire.append_audio(pcm))

    async def create_response(self, instructions: str | None = None) -> None:
        await self._send(wire.response_create(instructions))

    async def cancel_response(self) -> None:
        await self._send(wire.response_cancel())

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        await self._send(wire.truncate(item_id, audio_end_ms))

    async def send_function_output(self, call_id: str, output: dict[str, Any]) -> None:
        await self._send(wire.function_output(call_id, output))

    async def add_system_message(self, text: str) -> None:
        await self._send(wire.system_message(text))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), timeout=2.0)
            except (TimeoutError, ConnectionClosed, OSError):
                self._ws.transport.abort()
