"""A lean load generator speaking Sautikit's side of the media WebSocket, for hundreds of calls.

It speaks the same protocol as ``local.emulator.media_leg.MediaLeg`` (subprotocol
``audio.drachtio.org``, one JSON metadata text frame, then 20 ms frames of 16-bit LE PCM in real
time; ``{"type":"killAudio"}`` honoured) but is built for many legs in one process:
MediaLeg runs a sender and a playout task per leg that each wake every 20 ms and does numpy work
per frame (jitter, peak levels, heard-audio log), which at 300 legs is ~30 000 wake-ups and
array operations a second on the generator's single core. Here one clock task sends every leg's
frame from pre-built shared ``bytes`` (legs are spread over phases of the 20 ms period, like
calls that started at random times), and each leg's receive task only timestamps what arrives.
Everything else (timing errors, playout, barge-in) is computed after the run from timestamps.

Times are ``loop.time()`` (the monotonic clock), so they compare with other processes' monotonic
timestamps on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

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


class Leg:
    """One media leg: its socket and the timestamps of everything sent and received."""

    __slots__ = (
        "arrivals",
        "audio",
        "bytes_in",
        "close_code",
        "connected_at",
        "error",
        "frame_index",
        "kills",
        "odd_frames",
        "onsets",
        "open",
        "receiver",
        "sends",
        "spec",
        "start_frame",
        "texts",
        "ws",
    )

    def __init__(self, spec: LegSpec, audio: CallerAudio, start_frame: int = 0) -> None:
        self.spec = spec
        self.audio = audio
        self.ws: ClientConnection | None = None
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
        self.receiver: asyncio.Task[None] | None = None

    async def send_next(self, now: float) -> None:
        """Sends the next caller frame (called by the generator's clock)."""
        index = self.frame_index
        self.frame_index = index + 1
        frame = self.audio.frame(index)
        self.sends.append(now)
        if self.audio.is_onset(index):
            self.onsets.append(now)
        try:
            await self.ws.send(frame)  # type: ignore[union-attr]
        except ConnectionClosed:
            self.open = False

    async def receive(self) -> None:
        """Timestamps every frame and command from the server until the socket closes."""
        ws = self.ws
        assert ws is not None
        loop = asyncio.get_running_loop()
        arrivals = self.arrivals
        try:
            async for message in ws:
                now = loop.time()
                if isinstance(message, bytes):
                    arrivals.append(now)
                    self.bytes_in += len(message)
                    if len(message) % 2:
                        self.odd_frames += 1
                elif '"killAudio"' in message:
                    self.kills.append(now)
                else:
                    self.texts.append(message[:200])
        except ConnectionClosed:
            pass
        self.open = False
        self.close_code = ws.close_code


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
        try:
            leg.ws = await connect(
                spec.url,
                subprotocols=[DRACHTIO],  # type: ignore[list-item]
                additional_headers=dict(spec.headers) or None,
                compression=None,
                open_timeout=open_timeout,
                ping_interval=None,
                max_size=None,
                proxy=None,
            )
        except InvalidStatus as exc:
            leg.error = f"upgrade refused: HTTP {exc.response.status_code}"
            return leg
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            leg.error = f"connect failed: {type(exc).__name__}: {exc}"
            return leg
        if leg.ws.subprotocol != DRACHTIO:
            leg.error = "server did not select audio.drachtio.org"
            await leg.ws.close()
            return leg
        leg.connected_at = asyncio.get_running_loop().time()
        metadata = {"sampleRate": spec.rate, "mixType": "mono", **spec.metadata}
        await leg.ws.send(json.dumps(metadata))
        leg.open = True
        leg.receiver = asyncio.create_task(leg.receive())
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
                    await leg.send_next(now)
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

        async def close(leg: Leg) -> None:
            if leg.ws is not None:
                try:
                    await asyncio.wait_for(leg.ws.close(1000, "caller hung up"), close_timeout)
                except (TimeoutError, ConnectionClosed, OSError):
                    leg.ws.transport.abort()
            if leg.receiver is not None:
                await asyncio.gather(leg.receiver, return_exceptions=True)

        await asyncio.gather(*(close(leg) for leg in chosen))

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
