"""Sautikit's side of the ``<Stream>`` media WebSocket, for one call.

``MediaLeg`` needs only a stream URL, a rate and a track, so tests and benchmarks can point it at
any server that speaks the platform's side of the protocol (Sautikit's ``<Stream>`` verb, which
behaves like FreeSWITCH ``mod_audio_fork``):

- offers subprotocol ``audio.drachtio.org`` and refuses the socket when the server selects none;
- sends one JSON text frame of metadata first (mod_audio_fork/jambonz style), then binary
  16-bit LE PCM in 20 ms frames on a drift-free monotonic schedule with jitter and bunching;
- ``both_tracks`` sends stereo interleaved frames (caller left, playback right) or a mono mix;
- plays what comes back through a mod_audio_fork-like playout buffer drained at real time,
  empties it on ``{"type": "killAudio"}``, and records exactly what the caller heard;
- once a supervised transfer connects, mixes the person's voice into that playout as the
  platform's conference bridge would (``play_person``; see :mod:`local.emulator.mixer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from local.emulator.mixer import VoiceOverlay, mix
from local.emulator.pacing import JitterConfig, SendSchedule
from local.emulator.playout import PlayoutBuffer, PlayoutConfig
from local.emulator.script import CallerTrack
from local.emulator.timeline import (
    HeardLog,
    KillEvent,
    barge_in_kill,
    barge_in_stats,
    merge_runs,
    reply_latencies,
    stale_audio_after_kills,
)
from local.emulator.wav import write_wav

log = logging.getLogger(__name__)

DRACHTIO = "audio.drachtio.org"
JAMBONZ = "audio.jambonz.org"
MIXES = ("stereo", "mixed")


@dataclass
class MediaLegResult:
    """Everything observed on one media leg; times are ms after the socket opened."""

    url: str
    offered_subprotocols: list[str]
    rate: int
    playback_rate: int
    channels: int
    frame_bytes: int
    subprotocol: str | None = None
    connected: bool = False
    error: str | None = None
    ended_by: str | None = None  # server | caller | timeout | error | dropped
    close_code: int | None = None
    close_reason: str | None = None
    metadata: dict[str, Any] | None = None
    duration_ms: float = 0.0
    frames_sent: int = 0
    bytes_sent: int = 0
    send_due_ms: list[float] = field(default_factory=list)
    send_at_ms: list[float] = field(default_factory=list)
    frames_received: int = 0
    bytes_received: int = 0
    odd_length_frames: int = 0
    text_frames: list[Any] = field(default_factory=list)
    first_audio_received_ms: float | None = None
    first_audio_heard_ms: float | None = None
    heard_segments: list[list[float]] = field(default_factory=list)
    stutters: int = 0
    underruns: int = 0
    utterances: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    barge_ins: list[dict[str, Any]] = field(default_factory=list)
    kills: list[KillEvent] = field(default_factory=list)
    played_bytes: int = 0
    stale_audio_bytes: int = 0
    #: Kills with the caller silent: the node cut its reply to play another line.
    line_changes: int = 0
    peak_buffered_ms: float = 0.0
    unheard_at_close_bytes: int = 0
    heard_wav: str | None = None
    notes: list[str] = field(default_factory=list)
    #: When the person a supervision reached first spoke, and every stretch they were heard.
    person_joined_ms: float | None = None
    person_segments: list[list[float]] = field(default_factory=list)
    heard_pcm: bytes = b""

    def cadence(self) -> dict[str, float]:
        """Send-lateness statistics (actual minus scheduled send time)."""
        late = [a - d for a, d in zip(self.send_at_ms, self.send_due_ms, strict=True)]
        if not late:
            return {}
        return {
            "mean_late_ms": round(statistics.fmean(late), 2),
            "p95_late_ms": round(sorted(late)[int(0.95 * (len(late) - 1))], 2),
            "max_late_ms": round(max(late), 2),
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no PCM, no per-frame lists)."""
        skip = {"heard_pcm", "send_due_ms", "send_at_ms", "kills"}
        data = {k: v for k, v in self.__dict__.items() if k not in skip}
        data["kills"] = [k.as_dict() for k in self.kills]
        data["cadence"] = self.cadence()
        return data


class MediaLeg:
    """One media WebSocket leg, driven like Sautikit drives it.

    Args:
        url: ``ws://`` or ``wss://`` stream URL.
        rate: Caller audio rate (``outputSamplingRate``).
        playback_rate: Rate of audio sent back (``bidirectionalSamplingRate``); ``rate`` if None.
        track: ``inbound_track`` (mono caller) or ``both_tracks``.
        both_tracks_mix: ``stereo`` (interleaved, caller left) or ``mixed`` (summed mono).
        subprotocols: Offered subprotocols; empty offers none.
        metadata: Extra fields for the first text frame (``sampleRate``/``mixType`` are added).
        send_metadata: Send the metadata frame at all.
        caller: The caller's script track; silence throughout when None.
        jitter: Network jitter on the caller's frames.
        playout: Playout buffer thresholds.
        max_seconds: Hang up after this long.
        heard_wav: Write what the caller heard here (mono, ``playback_rate``).
        audible_threshold: Peak sample level above which a playout tick counts as heard audio.
        stale_window_ms: See ``timeline.stale_audio_after_kills``.
        gap_merge_ms: Quiet stretches shorter than this inside a reply are merged into it
            (``stutters`` counts them; they may be pauses in the speech itself, so only
            ``underruns``, a playout buffer that ran dry, is warned about).
        on_open: Awaited in the background once the socket is open (status callbacks).
        drop_after_seconds: Drop the connection this long after it opened, without a close
            frame (``ended_by="dropped"``), as a broken network path does.
    """

    def __init__(
        self,
        url: str,
        *,
        rate: int = 16000,
        playback_rate: int | None = None,
        track: str = "inbound_track",
        both_tracks_mix: str = "stereo",
        subprotocols: Sequence[str] = (DRACHTIO,),
        metadata: Mapping[str, Any] | None = None,
        send_metadata: bool = True,
        caller: CallerTrack | None = None,
        jitter: JitterConfig | None = None,
        playout: PlayoutConfig | None = None,
        max_seconds: float = 120.0,
        heard_wav: str | Path | None = None,
        audible_threshold: int = 64,
        stale_window_ms: float = 250.0,
        gap_merge_ms: float = 200.0,
        open_timeout: float = 5.0,
        on_open: Callable[[], Awaitable[None]] | None = None,
        frame_ms: float = 20.0,
        drop_after_seconds: float | None = None,
    ) -> None:
        if both_tracks_mix not in MIXES:
            raise ValueError(f"both_tracks_mix must be one of {MIXES}")
        self.url = url
        self.rate = rate
        self.playback_rate = playback_rate or rate
        self.track = track
        self.stereo = track == "both_tracks" and both_tracks_mix == "stereo"
        self.mix_type = "mono" if track != "both_tracks" else both_tracks_mix
        self.subprotocols = list(subprotocols)
        self.extra_metadata = dict(metadata or {})
        self.send_metadata = send_metadata
        self.caller = caller or CallerTrack([], rate, frame_ms)
        self.schedule = SendSchedule(frame_ms, jitter)
        self.playout = PlayoutBuffer(self.playback_rate, frame_ms, playout)
        self.max_seconds = max_seconds
        self.heard_wav = heard_wav
        self.audible_threshold = audible_threshold
        self.stale_window_ms = stale_window_ms
        self.gap_merge_ms = gap_merge_ms
        self.open_timeout = open_timeout
        self.on_open = on_open
        self.frame_ms = frame_ms
        self.drop_after_ms = None if drop_after_seconds is None else drop_after_seconds * 1000
        self.heard = HeardLog()
        self.person_heard = HeardLog()
        self._samples = int(rate * frame_ms / 1000)
        self._person = VoiceOverlay(int(self.playback_rate * frame_ms / 1000))
        self._heard_frames: list[bytes] = []
        self._arrivals: list[tuple[float, int, int]] = []
        # What the server sent, in order, waiting for the playout tick at or after its arrival:
        # (at_ms, PCM bytes, or None for killAudio).
        self._inbox: deque[tuple[float, bytes | None]] = deque()
        self._kills_received = 0
        self._hangup = asyncio.Event()
        self._streaming_done = asyncio.Event()
        self._ticked = asyncio.Event()  # set after each playout tick and when streaming ends
        self._t0 = 0.0
        channels = 2 if self.stereo else 1
        self.result = MediaLegResult(
            url, self.subprotocols, rate, self.playback_rate, channels, self._samples * 2 * channels
        )

    def hang_up(self) -> None:
        """Make the caller hang up at the next frame."""
        self._hangup.set()

    async def play_person(self, pcm: bytes) -> float:
        """The person a supervised transfer reached speaks ``pcm`` (s16le at ``playback_rate``).

        Their voice is summed into what the caller hears from the next playout tick on, over
        whatever the node is still sending, as the platform's bridge mixes the legs of a call;
        returns once it has played out, with its length in seconds.
        """
        now = self._now_ms()
        start = max(len(self._heard_frames), -int(-now // self.frame_ms))
        voice = self._person.add(pcm, start)
        if self.result.person_joined_ms is None:
            self.result.person_joined_ms = round(start * self.frame_ms, 1)
            self.caller.person_joined_ms = self.result.person_joined_ms
        end_tick = voice.end_tick(self._person.frame_samples)
        await asyncio.sleep(max(0.0, (end_tick * self.frame_ms - now) / 1000))
        while len(self._heard_frames) < end_tick and not self._streaming_done.is_set():
            self._ticked.clear()  # a late tick has not played it yet
            await self._ticked.wait()
        return round(len(pcm) / (2 * self.playback_rate), 2)

    def _now_ms(self) -> float:
        return (asyncio.get_running_loop().time() - self._t0) * 1000

    async def run(self) -> MediaLegResult:
        """Connect, stream until either side ends the call, and return what happened."""
        result = self.result
        try:
            ws = await connect(
                self.url,
                subprotocols=self.subprotocols or None,
                compression=None,
                open_timeout=self.open_timeout,
                ping_interval=None,
                proxy=None,
                max_size=None,
            )
        except InvalidStatus as exc:
            return self._fail(f"server refused the upgrade: HTTP {exc.response.status_code}")
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            return self._fail(f"could not connect: {type(exc).__name__}: {exc}")
        result.subprotocol = ws.subprotocol
        if self.subprotocols and ws.subprotocol not in self.subprotocols:
            await ws.close(1002, "subprotocol not accepted")
            return self._fail(f"server did not accept subprotocol {' or '.join(self.subprotocols)}")
        result.connected = True
        self._t0 = asyncio.get_running_loop().time()
        on_open = asyncio.create_task(self.on_open()) if self.on_open else None
        try:
            await self._stream(ws)
        finally:
            if on_open:
                with contextlib.suppress(Exception):
                    await on_open
        return self._finish(ws)

    def _fail(self, error: str) -> MediaLegResult:
        self._streaming_done.set()
        self._ticked.set()
        self.result.error, self.result.ended_by = error, "error"
        return self.result

    async def _stream(self, ws: ClientConnection) -> None:
        if self.send_metadata:
            meta = {"sampleRate": self.rate, "mixType": self.mix_type, **self.extra_metadata}
            self.result.metadata = meta
            await ws.send(json.dumps(meta))
        receiver = asyncio.create_task(self._receive(ws))
        sender = asyncio.create_task(self._send(ws))
        ticker = asyncio.create_task(self._tick())
        try:
            done, _ = await asyncio.wait(
                {receiver, sender}, timeout=self.max_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                self.result.ended_by = "timeout"
                await ws.close(1000, "call time limit")
            failed = next((t.exception() for t in done if t.exception()), None)
            if failed is not None:  # a bug in the emulator must not pass for a quiet call
                self.result.error = f"emulator fault: {failed!r}"
                self.result.ended_by = "error"
                await ws.close(1011, "emulator fault")
            await asyncio.wait({receiver}, timeout=5)
            self.result.ended_by = self.result.ended_by or "server"
            queued = self.playout.buffered + sum(len(d) for _, d in self._inbox if d)
            if self.playout.config.drain_on_close and queued:
                drain_s = queued / (self.playback_rate * 2) + 0.2
                await asyncio.sleep(drain_s)
        finally:
            self._streaming_done.set()
            self._ticked.set()
            for task in (receiver, sender, ticker):
                task.cancel()
            await asyncio.gather(receiver, sender, ticker, return_exceptions=True)

    async def _send(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        resampler = (
            soxr.ResampleStream(self.playback_rate, self.rate, 1, dtype="int16", quality="HQ")
            if self.track == "both_tracks" and self.playback_rate != self.rate
            else None
        )
        pending = np.zeros(0, dtype=np.int16)
        while True:
            index, due = self.schedule.next_due()
            delay = self._t0 + due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._hangup.is_set() or self.caller.hangup_requested:
                self.result.ended_by = "caller"
                await ws.close(1000, "caller hung up")
                return
            if self.drop_after_ms is not None and due * 1000 >= self.drop_after_ms:
                # A broken network path: the TCP connection goes, no close frame is sent.
                self.result.ended_by = "dropped"
                ws.transport.abort()
                return
            self._play_until(index)  # the heard log and playback channel are current
            caller = np.frombuffer(self.caller.frame(index, self.heard), dtype="<i2")
            if self.track == "both_tracks":
                played = np.frombuffer(self._heard_frames[index], dtype="<i2")
                if resampler is not None:
                    pending = np.concatenate([pending, resampler.resample_chunk(played)])
                    played, pending = pending[: self._samples], pending[self._samples :]
                played = np.pad(played, (0, self._samples - len(played)))
                if self.stereo:
                    frame = np.column_stack([caller, played]).astype("<i2").tobytes()
                else:
                    mixed = caller.astype(np.int32) + played.astype(np.int32)
                    frame = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()
            else:
                frame = caller.tobytes()
            sent_at = self._now_ms()
            try:
                await ws.send(frame)
            except ConnectionClosed:
                return
            self.result.send_due_ms.append(due * 1000)
            self.result.send_at_ms.append(sent_at)
            self.result.frames_sent += 1
            self.result.bytes_sent += len(frame)

    async def _receive(self, ws: ClientConnection) -> None:
        result = self.result
        try:
            async for message in ws:
                now = self._now_ms()
                if isinstance(message, bytes):
                    result.frames_received += 1
                    result.bytes_received += len(message)
                    result.odd_length_frames += len(message) % 2
                    if message and result.first_audio_received_ms is None:
                        result.first_audio_received_ms = round(now, 1)
                    self._arrivals.append((now, len(message), self._kills_received))
                    self._inbox.append((now, message))
                else:
                    self._on_text(message, now)
        except ConnectionClosed:
            pass

    def _on_text(self, message: str, now: float) -> None:
        try:
            command = json.loads(message)
        except ValueError:
            command = None
        if isinstance(command, dict) and command.get("type") == "killAudio":
            self._kills_received += 1
            self._inbox.append((now, None))
        else:
            log.info("text frame from the media server: %s", message[:200])
        self.result.text_frames.append(command if command is not None else message)

    async def _tick(self) -> None:
        """Drive playout at real time, for when no caller frame is due to do it."""
        loop = asyncio.get_running_loop()
        k = 0
        while True:
            delay = self._t0 + k * self.frame_ms / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._play_until(k)
            k = len(self._heard_frames)

    def _play_until(self, last_tick: int) -> None:
        """Play every tick up to ``last_tick``, each from what had arrived by its start.

        Ticks are labelled with their scheduled time and consume only messages that arrived
        by then, so the heard timeline does not depend on which task ran first or how late.
        """
        while len(self._heard_frames) <= last_tick:
            k = len(self._heard_frames)
            tick_ms = k * self.frame_ms
            while self._inbox and self._inbox[0][0] <= tick_ms:
                at, data = self._inbox.popleft()
                if data is None:
                    dropped = self.playout.kill()
                    self.result.kills.append(
                        KillEvent(round(at, 1), dropped, self.heard.last_audio_end_ms)
                    )
                else:
                    self.playout.push(data)
            frame, real = self.playout.pull()
            self.result.played_bytes += real  # the node's audio only
            person = self._person.frame(k)
            if person is not None:
                frame = mix(np.frombuffer(frame, dtype="<i2"), person).astype("<i2").tobytes()
            self._heard_frames.append(frame)
            # The heard log is what the caller heard, whoever spoke.
            self.heard.add_tick(tick_ms, tick_ms + self.frame_ms, self._audible(frame))
            person_audible = person is not None and self._audible(person.tobytes())
            self.person_heard.add_tick(tick_ms, tick_ms + self.frame_ms, person_audible)
            self._ticked.set()

    def _audible(self, pcm: bytes) -> bool:
        level = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
        return int(level.max(initial=0)) > self.audible_threshold

    def _finish(self, ws: ClientConnection) -> MediaLegResult:
        result = self.result
        result.duration_ms = round(len(self._heard_frames) * self.frame_ms, 1)
        result.close_code, result.close_reason = ws.close_code, ws.close_reason
        waiting = sum(len(data) for _, data in self._inbox if data is not None)
        result.unheard_at_close_bytes = self.playout.buffered + waiting
        result.peak_buffered_ms = round(
            self.playout.peak_buffered / (self.playback_rate * 2) * 1000, 1
        )
        segments, result.stutters = merge_runs(self.heard.runs, self.gap_merge_ms)
        result.underruns = self.playout.underruns
        result.heard_segments = [[round(s, 1), round(e, 1)] for s, e in segments]
        result.first_audio_heard_ms = self.heard.first_audio_ms
        utterances = self.caller.utterances
        result.utterances = [u.__dict__.copy() for u in utterances]
        result.replies = reply_latencies(utterances, segments)
        result.barge_ins = barge_in_stats(utterances, segments, result.kills)
        result.stale_audio_bytes = stale_audio_after_kills(
            result.kills, self._arrivals, utterances, self.stale_window_ms
        )
        result.line_changes = sum(
            not barge_in_kill(k, utterances, self.stale_window_ms) for k in result.kills
        )
        result.notes = list(self.caller.notes)
        result.person_segments = [[round(s, 1), round(e, 1)] for s, e in self.person_heard.runs]
        result.heard_pcm = b"".join(self._heard_frames)
        if self.heard_wav:
            write_wav(self.heard_wav, result.heard_pcm, self.playback_rate)
            result.heard_wav = str(self.heard_wav)
        return result
