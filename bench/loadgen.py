"""A lean load generator speaking Sautikit's side of the media WebSocket, for hundreds of calls.

It speaks the same protocol as ``local.emulator.media_leg.MediaLeg`` (subprotocol
``audio.drachtio.org``, one JSON metadata text frame, then 20 ms frames of 16-bit LE PCM in real
time; ``{"type":"killAudio"}`` honoured) but is built for many legs in one process:
MediaLeg runs a sender and a playout task per leg that each wake every 20 ms and does numpy work
per frame (jitter, peak levels, heard-audio log), which at 300 legs is ~30 000 wake-ups and
array operations a second on the generator's single core, on top of the websockets
library's task, future and queue per message. Here each leg is an ``asyncio.Protocol`` driving
websockets' sans-I/O ``ClientProtocol`` (a received frame is parsed and timestamped inside
``data_received``; a sent frame is one ``transport.write``), and one clock task sends every
leg's frame from pre-built shared ``bytes`` (legs spread over phases of the 20 ms period, like
calls that started at random times). Everything else (timing errors, playout, barge-in) is
computed after the run from the timestamps.

Times are ``loop.time()`` (the monotonic clock), so they compare with other processes' monotonic
timestamps on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

DRACHTIO = "audio.drachtio.org"
FRAME_MS = 20


@dataclass(frozen=True)
class LegSpec:
    """Where and how to open one media leg.

    Attributes:
        url: The stream URL, with whatever query the server needs (``?token=…``).
        metadata: The first text frame (``sampleRate`` is added when missing).
        rate: Caller audio rate; frames are ``rate / 50`` samples.
        headers: Extra HTTP headers for the upgrade request.
    """

    url: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rate: int = 16000
    headers: Mapping[str, str] = field(default_factory=dict)


class CallerAudio:
    """A loop of caller frames shared by every leg: speech turns separated by line noise.

    Args:
        rate: Sample rate.
        speech_s: Length of each spoken turn.
        pause_s: Line noise after each turn (the model answers during it).
        lead_in_s: Line noise before the first turn (the greeting plays during it).
        seed: Random seed of the speech-like signal.
    """

    def __init__(
        self,
        rate: int = 16000,
        *,
        speech_s: float = 1.2,
        pause_s: float = 5.0,
        lead_in_s: float = 0.0,
        seed: int = 7,
    ) -> None:
        self.rate = rate
        samples = rate * FRAME_MS // 1000
        rng = np.random.default_rng(seed)
        speech_frames = round(speech_s * 1000 / FRAME_MS)
        pause_frames = round(pause_s * 1000 / FRAME_MS)
        lead_frames = round(lead_in_s * 1000 / FRAME_MS)
        # Speech: voice-band noise with a syllable-rate envelope near -18 dBFS RMS.
        t = np.arange(speech_frames * samples) / rate
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t) ** 2
        voice = rng.standard_normal(t.size)
        voice = np.convolve(voice, np.ones(4) / 4, mode="same")
        speech = np.clip(voice / np.std(voice) * 0.12 * envelope, -1, 1)
        # Line noise far below the VAD threshold (about -66 dBFS).
        noise = rng.standard_normal(samples * 50) * 0.0005

        def frames_of(signal: np.ndarray) -> list[bytes]:
            pcm = (signal * 32767).astype("<i2").tobytes()
            size = samples * 2
            return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]

        noise_frames = frames_of(noise)
        self.lead_in = [noise_frames[i % len(noise_frames)] for i in range(lead_frames)]
        self.cycle = frames_of(speech) + [
            noise_frames[i % len(noise_frames)] for i in range(pause_frames)
        ]
        self.speech_frames = speech_frames

    def frame(self, index: int) -> bytes:
        """The `index`-th frame of a leg that started at `index` 0."""
        if index < len(self.lead_in):
            return self.lead_in[index]
        return self.cycle[(index - len(self.lead_in)) % len(self.cycle)]

    def frames_to_next_turn(self, index: int) -> int:
        """How many frames after frame `index` the next spoken turn starts."""
        if index < len(self.lead_in):
            return len(self.lead_in) - index
        position = (index - len(self.lead_in)) % len(self.cycle)
        return len(self.cycle) - position

    def is_onset(self, index: int) -> bool:
        """Whether frame `index` is the first frame of a spoken turn."""
        return index >= len(self.lead_in) and (index - len(self.lead_in)) % len(self.cycle) == 0


class Leg(asyncio.Protocol):
    """One media leg: a WebSocket client on websockets' sans-I/O protocol, and timestamps.

    Driving ``websockets.client.ClientProtocol`` from an ``asyncio.Protocol`` costs no task, no
    future and no queue per message: a received frame is parsed and timestamped inside
    ``data_received``, and a frame is sent with one ``transport.write``.
    """

    def __init__(self, spec: LegSpec, audio: CallerAudio, start_frame: int = 0) -> None:
        self.spec = spec
        self.audio = audio
        self.ws = ClientProtocol(
            parse_uri(spec.url), subprotocols=[Subprotocol(DRACHTIO)], max_size=None
        )
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.start_frame = start_frame
        self.frame_index = start_frame
        self.connected_at: float | None = None
        self.error: str | None = None
        self.close_code: int | None = None
        self.sends: list[float] = []
        self.onsets: list[float] = []
        self.arrivals: list[float] = []
        self.kills: list[float] = []
        self.texts: list[str] = []
        self.bytes_in = 0
        self.odd_frames = 0
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._fragments: list[bytes] = []

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        request = self.ws.connect()
        for name, value in self.spec.headers.items():
            request.headers[name] = value
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = self._clock()
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event, now)
            elif isinstance(event, Response):
                self._on_response(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.ws.close_rcvd is not None:
            self.close_code = self.ws.close_rcvd.code
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- WebSocket events --------------------------------------------------------------------

    def _on_response(self, response: Response) -> None:
        if self.handshake.done():
            return
        if self.ws.handshake_exc is not None:
            status = response.status_code
            self.handshake.set_exception(
                ConnectionError(f"upgrade refused: HTTP {status}")
                if status != 101
                else self.ws.handshake_exc
            )
        else:
            self.handshake.set_result(None)

    def _on_frame(self, frame: Frame, now: float) -> None:
        opcode = frame.opcode
        if opcode is Opcode.CONT or not frame.fin:
            self._fragments.append(frame.data)
            if not frame.fin:
                return
            data = b"".join(self._fragments)
            self._fragments.clear()
        else:
            data = frame.data
        if opcode is Opcode.BINARY or (opcode is Opcode.CONT and data):
            # One arrival per 20 ms frame: a node writing two frames per message
            # (FRAMES_PER_WRITE=2) delivers both at once.
            frame_bytes = self.audio.rate * FRAME_MS // 1000 * 2
            self.arrivals.extend([now] * max(1, len(data) // frame_bytes))
            self.bytes_in += len(data)
            if len(data) % 2:
                self.odd_frames += 1
        elif opcode is Opcode.TEXT:
            text = data.decode(errors="replace")
            if '"killAudio"' in text:
                self.kills.append(now)
            else:
                self.texts.append(text[:200])
        elif opcode is Opcode.CLOSE:
            self.open = False

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.ws.close_expected() and self.ws.state is State.CLOSED:
            transport.close()

    # -- driven by the generator -------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Sends one text frame."""
        self.ws.send_text(text.encode())
        self._flush()

    def send_next(self, now: float) -> None:
        """Sends the next caller frame (called by the generator's clock)."""
        index = self.frame_index
        self.frame_index = index + 1
        self.sends.append(now)
        if self.audio.is_onset(index):
            self.onsets.append(now)
        if self.ws.state is not State.OPEN:
            self.open = False
            return
        self.ws.send_binary(self.audio.frame(index))
        self._flush()

    async def close(
        self, code: int = 1000, reason: str = "caller hung up", limit_s: float = 5.0
    ) -> None:
        """Closes like a caller hanging up and waits for the server to close the TCP connection."""
        self.open = False
        if self.transport is None:
            return
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
            self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), limit_s)
        except TimeoutError:
            self.transport.abort()


class LoadGenerator:
    """Opens legs and drives all of them from one real-time clock.

    Args:
        audio: The caller frames every leg sends.
        phases: How many evenly spaced send instants share the 20 ms frame period.
        seed: Seed for the phase each leg is given.
    """

    def __init__(self, audio: CallerAudio, *, phases: int = 10, seed: int = 1) -> None:
        self.audio = audio
        self.phases = phases
        self.legs: list[Leg] = []
        self.tick_lag: list[float] = []
        """Seconds each clock tick ran after it was due (the generator's own lateness)."""
        self.record_lag = False
        self._buckets: list[list[Leg]] = [[] for _ in range(phases)]
        self._random = random.Random(seed)
        self._clock: asyncio.Task[None] | None = None
        self._stopping = False

    async def open_leg(
        self, spec: LegSpec, *, start_frame: int | None = None, open_timeout: float = 10.0
    ) -> Leg:
        """Connects one leg, sends its metadata and starts streaming on the next tick.

        Args:
            spec: Where to connect.
            start_frame: Position in the caller audio loop to start at; random when None.
            open_timeout: Upgrade timeout in seconds.

        Returns:
            The leg; ``leg.error`` says why when it could not connect.
        """
        if start_frame is None:
            start_frame = self._random.randrange(len(self.audio.cycle)) + len(self.audio.lead_in)
        leg = Leg(spec, self.audio, start_frame)
        self.legs.append(leg)
        uri = leg.ws.uri
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(open_timeout):
                await loop.create_connection(
                    lambda: leg,
                    uri.host,
                    uri.port,
                    ssl=ssl.create_default_context() if uri.secure else None,
                    server_hostname=uri.host if uri.secure else None,
                )
                await leg.handshake
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            leg.error = f"connect failed: {type(exc).__name__}: {exc}"
            if leg.transport is not None:
                leg.transport.abort()
            return leg
        if leg.ws.subprotocol != DRACHTIO:
            leg.error = "server did not select audio.drachtio.org"
            await leg.close(1002, "subprotocol not accepted")
            return leg
        leg.connected_at = asyncio.get_running_loop().time()
        metadata = {"sampleRate": spec.rate, "mixType": "mono", **spec.metadata}
        leg.send_text(json.dumps(metadata))
        leg.open = True
        self._buckets[len(self.legs) % self.phases].append(leg)
        if self._clock is None:
            self._clock = asyncio.create_task(self._run_clock())
        return leg

    async def _run_clock(self) -> None:
        loop = asyncio.get_running_loop()
        step = FRAME_MS / 1000 / self.phases
        start = loop.time()
        tick = 0
        while not self._stopping:
            due = start + tick * step
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            if self.record_lag:
                self.tick_lag.append(now - due)
            bucket = self._buckets[tick % self.phases]
            for leg in bucket:
                if leg.open:
                    leg.send_next(now)
            tick += 1

    def open_legs(self) -> int:
        """Legs whose socket is open right now."""
        return sum(1 for leg in self.legs if leg.open)

    async def hang_up(self, legs: Sequence[Leg] | None = None, close_timeout: float = 5.0) -> None:
        """Closes legs like a caller hanging up (close code 1000) and waits for the sockets."""
        chosen = list(self.legs if legs is None else legs)
        for leg in chosen:
            leg.open = False
        for bucket in self._buckets:
            bucket[:] = [leg for leg in bucket if leg.open]

        await asyncio.gather(*(leg.close(limit_s=close_timeout) for leg in chosen))

    async def hang_up_in_pauses(
        self, *, quiet_s: float = 0.4, before_turn_s: float = 1.0, limit_s: float = 8.0
    ) -> None:
        """Hangs up each leg during a pause, so no frame is in flight when its socket closes.

        A leg hangs up once nothing has arrived for `quiet_s` and its next turn is at least
        `before_turn_s` away (so no reply is pending); legs still talking after `limit_s` hang
        up anyway.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        margin = round(before_turn_s * 1000 / FRAME_MS)
        closing: list[asyncio.Task[None]] = []
        pending = [leg for leg in self.legs if leg.open]
        while pending and loop.time() < deadline:
            now = loop.time()
            ready = [
                leg
                for leg in pending
                if (not leg.arrivals or now - leg.arrivals[-1] > quiet_s)
                and self.audio.frames_to_next_turn(leg.frame_index) > margin
            ]
            if ready:
                closing.append(asyncio.create_task(self.hang_up(ready)))
                chosen = set(map(id, ready))
                pending = [leg for leg in pending if id(leg) not in chosen]
            await asyncio.sleep(FRAME_MS / 1000)
        await self.hang_up(pending)
        await asyncio.gather(*closing)

    async def stop(self) -> None:
        """Hangs up every leg and stops the clock."""
        await self.hang_up()
        self._stopping = True
        if self._clock is not None:
            self._clock.cancel()
            await asyncio.gather(self._clock, return_exceptions=True)
            self._clock = None
