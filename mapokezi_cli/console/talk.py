"""Talk to the receptionist from the browser: a call placed exactly as Sautikit places one.

The browser streams its microphone as 16-bit PCM over the console's WebSocket. :class:`TalkCall`
is the call emulator's :class:`~local.emulator.call.CallRunner` (voice webhook, signing,
``<Stream>`` validation, status callbacks, the ``StreamStopped`` re-POST, ``<Dial>``,
``Completed``, the Sautikit API double's CDR) with the browser as the caller: only the media
leg differs. :class:`BrowserRelay` opens the media socket with the platform's subprotocol, sends
the metadata frame, forwards the caller's audio in 20 ms frames, and passes what comes back
(audio, ``killAudio``) to the browser, whose jitter buffer plays it.

Browser -> console messages: ``{"type": "start", "from": E164, "to": E164}`` first, then
binary PCM at the announced rate, and ``{"type": "hangup"}``. Console -> browser:
``{"type": "stream", "rate", "call_id", …}`` once the media socket is open, binary PCM,
``{"type": "killAudio"}``, ``{"type": "log", "text"}`` and finally ``{"type": "ended", …}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from local.emulator import DRACHTIO, CallOptions, CallRunner, KillEvent, MediaLegResult, StreamSpec
from mapokezi.profiles import E164
from mapokezi_cli.console.call_recording import LineRecorder, upload_to_double

log = logging.getLogger("mapokezi.console.talk")

FRAME_MS = 20
#: Seconds a browser call may last at most (the profile's own limit normally ends it first).
MAX_TALK_SECONDS = 900.0


@dataclass(frozen=True)
class TalkSettings:
    """Where browser calls go.

    Attributes:
        voice_url: The voice webhook (the local gateway's, or the deployed API's ``/voice``).
        webhook_secret: Signs the webhooks when set (``SAUTIKIT_WEBHOOK_SECRET``).
        sautikit_api_url: The Sautikit API double, so the call gets a CDR; None when deployed.
        default_number: The number the page dials unless told otherwise.
    """

    voice_url: str
    webhook_secret: str | None = None
    sautikit_api_url: str | None = None
    default_number: str = "+254700000100"


class BrowserLink:
    """The browser's side of one call: audio it sent, and a way to send it things."""

    def __init__(self, send_json: Callable[[dict[str, Any]], Awaitable[None]], send_bytes: Any):
        self.send_json = send_json
        self.send_bytes: Callable[[bytes], Awaitable[None]] = send_bytes
        self.audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.hung_up = asyncio.Event()

    def caller_audio(self, data: bytes) -> None:
        """PCM from the microphone."""
        self.audio.put_nowait(data)

    def hang_up(self) -> None:
        """The caller pressed hang-up or closed the page."""
        self.hung_up.set()
        self.audio.put_nowait(None)

    async def say(self, text: str) -> None:
        """A line for the page's call log."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send_json({"type": "log", "text": text})


class BrowserRelay:
    """The media leg between the media node and the browser."""

    def __init__(self, link: BrowserLink, spec: StreamSpec, metadata: dict[str, Any]) -> None:
        self.link = link
        self.spec = spec
        self.rate = spec.output_rate or 8000
        self.playback_rate = spec.bidirectional_rate or self.rate
        self.metadata = {"sampleRate": self.rate, "mixType": "mono", **metadata}
        self.frame_bytes = self.rate * FRAME_MS // 1000 * 2
        self.result = MediaLegResult(
            spec.url, [DRACHTIO], self.rate, self.playback_rate, 1, self.frame_bytes
        )
        # The page plays at the caller's rate; audio sent back at another rate is resampled.
        self._resampler = (
            soxr.ResampleStream(self.playback_rate, self.rate, 1, dtype="int16", quality="HQ")
            if self.playback_rate != self.rate
            else None
        )
        self._t0 = 0.0
        self.recorder = LineRecorder(self.rate)

    def _now_ms(self) -> float:
        return round((asyncio.get_running_loop().time() - self._t0) * 1000, 1)

    async def run(self, on_open: Callable[[], Awaitable[None]]) -> MediaLegResult:
        """Connect, relay until either side ends the call, and return what happened."""
        result = self.result
        try:
            ws = await connect(
                self.spec.url,
                subprotocols=[DRACHTIO],  # type: ignore[list-item]
                compression=None,
                open_timeout=10,
                ping_interval=None,
                max_size=None,
                # The local stack is never reached through a proxy; a deployed node may be.
                proxy=None if _loopback(self.spec.url) else True,
            )
        except InvalidStatus as exc:
            return self._fail(f"server refused the upgrade: HTTP {exc.response.status_code}")
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            return self._fail(f"could not connect: {type(exc).__name__}: {exc}")
        result.subprotocol = ws.subprotocol
        if ws.subprotocol != DRACHTIO:
            await ws.close(1002, "subprotocol not accepted")
            return self._fail(f"server did not accept subprotocol {DRACHTIO}")
        result.connected = True
        self._t0 = asyncio.get_running_loop().time()
        result.metadata = self.metadata
        await ws.send(json.dumps(self.metadata))
        await self.link.send_json({"type": "stream", "rate": self.rate, **self._announce()})
        opened = asyncio.create_task(on_open())
        uplink = asyncio.create_task(self._uplink(ws))
        downlink = asyncio.create_task(self._downlink(ws))
        try:
            done, _ = await asyncio.wait(
                {uplink, downlink}, timeout=MAX_TALK_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                result.ended_by = "timeout"
                await ws.close(1000, "call time limit")
            elif uplink in done and uplink.exception() is None:
                result.ended_by = "caller"
                await ws.close(1000, "caller hung up")
            await asyncio.wait({downlink}, timeout=5)
            result.ended_by = result.ended_by or "server"
        finally:
            for task in (uplink, downlink):
                task.cancel()
            await asyncio.gather(uplink, downlink, return_exceptions=True)
            with contextlib.suppress(Exception):
                await opened
        result.close_code, result.close_reason = ws.close_code, ws.close_reason
        result.duration_ms = self._now_ms()
        # The browser plays audio as it arrives: heard is received, give or take its buffer.
        result.first_audio_heard_ms = result.first_audio_received_ms
        return result

    def _announce(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "stream_url": _without_query(spec.url),
            "track": spec.track or "inbound_track",
            "playback_rate": self.playback_rate,
            "subprotocol": DRACHTIO,
        }

    def _fail(self, error: str) -> MediaLegResult:
        self.result.error, self.result.ended_by = error, "error"
        return self.result

    async def _uplink(self, ws: ClientConnection) -> None:
        """Browser audio to the media node, re-cut into exact 20 ms frames."""
        pending = bytearray()
        while True:
            data = await self.link.audio.get()
            if data is None:
                return
            pending += data
            while len(pending) >= self.frame_bytes:
                frame = bytes(pending[: self.frame_bytes])
                del pending[: self.frame_bytes]
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    return
                self.recorder.caller(frame)
                self.result.frames_sent += 1
                self.result.bytes_sent += len(frame)

    async def _downlink(self, ws: ClientConnection) -> None:
        """Media node audio and commands to the browser."""
        result = self.result
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    result.frames_received += 1
                    result.bytes_received += len(message)
                    if message and result.first_audio_received_ms is None:
                        result.first_audio_received_ms = self._now_ms()
                    await self._to_browser(message)
                    continue
                try:
                    command = json.loads(message)
                except ValueError:
                    command = message
                result.text_frames.append(command)
                if isinstance(command, dict) and command.get("type") == "killAudio":
                    result.kills.append(KillEvent(self._now_ms(), 0, None))
                    self.recorder.kill(self._now_ms())
                    await self.link.send_json({"type": "killAudio"})
        except ConnectionClosed:
            pass

    async def _to_browser(self, pcm: bytes) -> None:
        if self._resampler is not None:
            samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2")
            pcm = self._resampler.resample_chunk(samples).astype("<i2").tobytes()
        self.recorder.receptionist(pcm, self._now_ms())
        if pcm:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.link.send_bytes(pcm)


class TalkCall(CallRunner):
    """The emulator's call flow with the browser as the caller's phone."""

    def __init__(self, options: CallOptions, link: BrowserLink) -> None:
        super().__init__(options)
        self.link = link
        self.recorder: LineRecorder | None = None

    async def _run_stream(self, spec: StreamSpec) -> None:
        """Overrides the emulator's scripted media leg with the browser relay."""
        self.result.stream = spec
        if spec.track == "both_tracks":
            self.result.warnings.append(
                "the <Stream> asks for both_tracks; the talk page sends the caller's track only"
            )
        stream_sid = "MZ" + secrets.token_hex(16)
        relay = BrowserRelay(self.link, spec, self._start_metadata(spec, stream_sid))
        self.recorder = relay.recorder
        # The URL's query holds the call's stream token: a credential, never shown.
        await self.link.say(f"media socket {_without_query(spec.url)} ({relay.rate} Hz)")
        media = self.result.media = await relay.run(
            lambda: self._status(spec, "stream-started", stream_sid)
        )
        if media.error:
            self.result.errors.append(f"media stream failed: {media.error}")
            await self._status(spec, "stream-error", stream_sid, media.error)
            return
        await self._status(spec, "stream-stopped", stream_sid)
        await self.link.say(f"media socket closed by the {media.ended_by}")


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def talk_options(settings: TalkSettings, start: dict[str, Any]) -> CallOptions:
    """The call's options from the page's ``start`` message.

    Raises:
        ValueError: a number is not E.164.
    """
    to_number = str(start.get("to") or settings.default_number).strip()
    from_number = str(start.get("from") or "+254712345678").strip()
    for label, value in (("to", to_number), ("from", from_number)):
        if not E164.match(value):
            raise ValueError(f"{label}: {value!r} is not an E.164 number like +254712345678")
    return CallOptions(
        voice_url=settings.voice_url,
        from_number=from_number,
        to_number=to_number,
        webhook_secret=settings.webhook_secret,
        sautikit_api_url=settings.sautikit_api_url,
        call_record_url=None,
        max_call_seconds=MAX_TALK_SECONDS,
    )


async def place_call(options: CallOptions, link: BrowserLink) -> dict[str, Any]:
    """Place the call and return the page's ``ended`` message."""
    runner = TalkCall(options, link)
    await link.say(f"POST {options.voice_url}")
    result = await runner.run()
    double = (result.api_double or {}).get("url")
    if double and runner.recorder is not None and result.media and result.media.connected:
        # The platform records the line; the local double learns the recording from us.
        warning = await upload_to_double(double, result.call.call_id, runner.recorder.wav())
        if warning:
            result.warnings.append(warning)
    media = result.media
    return {
        "type": "ended",
        "call_id": result.call.call_id,
        "ok": result.ok,
        "errors": result.errors,
        "warnings": result.warnings,
        "handoff": result.handoff,
        "verbs": [v.get("verb") for v in result.verbs],
        "frames_sent": media.frames_sent if media else 0,
        "bytes_received": media.bytes_received if media else 0,
        "kills": len(media.kills) if media else 0,
    }
