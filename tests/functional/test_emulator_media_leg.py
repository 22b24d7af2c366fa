"""The emulator's media leg against small real WebSocket servers on 127.0.0.1.

Each server here speaks the media server's side of Sautikit's ``<Stream>`` socket: it selects
the subprotocol, reads the metadata frame and the caller's PCM, plays a tone back and, where the
test needs it, sends ``{"type": "killAudio"}``. Assertions are on counts, sizes, sample values
and the emulator's own schedule, never on elapsed wall time.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError

from local.emulator.media_leg import DRACHTIO, JAMBONZ, MediaLeg
from local.emulator.pacing import JitterConfig, SendSchedule
from local.emulator.playout import PlayoutBuffer, PlayoutConfig
from local.emulator.script import CALLER_AUDIO_DIR, BargeIn, CallerTrack, Say, parse_script
from local.emulator.wav import load_mono

Handler = Callable[[ServerConnection], Awaitable[None]]


def tone(ms: float, rate: int, hz: float = 440.0, level: int = 8000) -> bytes:
    t = np.arange(int(rate * ms / 1000)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


@asynccontextmanager
async def media_server(
    handler: Handler, subprotocols: list[str] | None = None, require: bool = False
) -> AsyncIterator[str]:
    """Serve ``handler`` on 127.0.0.1; yields the ws:// URL."""
    offered = subprotocols if subprotocols is not None else [DRACHTIO, JAMBONZ]

    def select(_conn: ServerConnection, client: list[str]) -> str | None:
        chosen = next((p for p in client if p in offered), None)
        if chosen is None and require:
            raise NegotiationError("audio.drachtio.org required")
        return chosen

    async with serve(handler, "127.0.0.1", 0, select_subprotocol=select) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/audio?token=t"


class Recorder:
    """Server-side record of what the emulator sent."""

    def __init__(self) -> None:
        self.first: Any = None
        self.texts: list[str] = []
        self.frames: list[bytes] = []
        self.subprotocol: str | None = None
        self.close_code: int | None = None

    async def read(self, ws: ServerConnection, frames: int) -> None:
        """Read the metadata frame and then ``frames`` binary frames."""
        self.subprotocol = ws.subprotocol
        while len(self.frames) < frames:
            message = await ws.recv()
            if self.first is None:
                self.first = message
            if isinstance(message, str):
                self.texts.append(message)
            else:
                self.frames.append(message)

    async def drain(self, ws: ServerConnection) -> None:
        """Keep reading until the emulator closes."""
        try:
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    self.frames.append(message)
        except ConnectionClosed:
            self.close_code = ws.close_code


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), wav.getframerate()


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_metadata_first_then_paced_mono_frames(rate: int, tmp_path: Path) -> None:
    recorder = Recorder()
    reply = tone(300, rate)

    async def handler(ws: ServerConnection) -> None:
        await recorder.read(ws, frames=5)
        await ws.send(reply)  # all at once: the emulator's playout paces it
        await recorder.read(ws, frames=30)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        leg = MediaLeg(
            url,
            rate=rate,
            metadata={"callSid": "c-1", "from": "+254711000001", "to": "+254700000100"},
            jitter=JitterConfig(jitter_ms=5, bunch_probability=0.1, seed=7),
            heard_wav=tmp_path / "heard.wav",
        )
        result = await leg.run()

    assert result.connected and result.error is None
    assert (result.subprotocol, recorder.subprotocol) == (DRACHTIO, DRACHTIO)
    assert result.ended_by == "server"
    meta = json.loads(recorder.first)
    assert meta == {
        "sampleRate": rate,
        "mixType": "mono",
        "callSid": "c-1",
        "from": "+254711000001",
        "to": "+254700000100",
    }
    assert recorder.texts == [recorder.first]  # exactly one text frame
    frame_bytes = rate // 50 * 2
    assert {len(f) for f in recorder.frames} == {frame_bytes}
    assert len(recorder.frames) <= result.frames_sent

    # The schedule comes from the frame index on the monotonic clock: each due time stays within
    # the jitter (plus one frame when bunched) of its nominal time, so there is no drift.
    due, sent = result.send_due_ms, result.send_at_ms
    nominal = [(i + 1) * 20.0 for i in range(len(due))]
    assert all(-5.0 - 1e-6 <= d - n <= 25.0 + 1e-6 for d, n in zip(due, nominal, strict=True))
    assert all(b >= a for a, b in zip(due, due[1:], strict=False))
    assert all(s >= d - 1.0 for s, d in zip(sent, due, strict=True))  # never sent early
    bunched = sum(1 for d, n in zip(due, nominal, strict=True) if d - n > 5.0 + 1e-6)
    assert bunched >= 1  # seed 7 with p=0.1 holds some frames back

    heard, heard_rate = read_wav(tmp_path / "heard.wav")
    assert heard_rate == rate
    assert len(heard) * 2 == len(result.heard_pcm)
    assert len(heard) == pytest.approx(result.duration_ms * rate / 1000)
    assert result.played_bytes == len(reply)  # every byte was played, none lost
    assert result.first_audio_heard_ms is not None
    assert result.first_audio_received_ms is not None
    assert result.first_audio_heard_ms >= result.first_audio_received_ms
    start, end = result.heard_segments[0]
    assert end - start == pytest.approx(300, abs=20)


async def test_kill_audio_empties_the_buffer_and_nothing_stale_follows(tmp_path: Path) -> None:
    rate = 16000
    reply = tone(1000, rate)
    killed = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        recorder = Recorder()
        await recorder.read(ws, frames=2)
        await ws.send(reply)
        await recorder.read(ws, frames=20)  # ~400 ms into the reply
        await ws.send(json.dumps({"type": "killAudio"}))
        killed.set()
        await recorder.read(ws, frames=35)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        result = await MediaLeg(url, rate=rate, heard_wav=tmp_path / "heard.wav").run()

    assert killed.is_set()
    assert len(result.kills) == 1
    kill = result.kills[0]
    assert kill.dropped_bytes > 0
    # Every byte of the reply was either played or dropped by the kill.
    assert result.played_bytes + kill.dropped_bytes + result.unheard_at_close_bytes == len(reply)
    assert result.stale_audio_bytes == 0
    heard, _ = read_wav(tmp_path / "heard.wav")
    kill_sample = int(kill.at_ms * rate / 1000)
    frame = rate // 50
    assert np.abs(heard[:kill_sample]).max() > 4000  # the tone played before the kill
    silent_from = (kill_sample // frame + 1) * frame  # the frame already playing may finish
    assert np.abs(heard[silent_from:]).max() == 0
    assert kill.last_heard_end_ms is not None
    assert kill.last_heard_end_ms <= kill.at_ms + 20


async def test_audio_after_kill_is_reported_as_stale() -> None:
    rate = 16000

    async def handler(ws: ServerConnection) -> None:
        recorder = Recorder()
        await recorder.read(ws, frames=2)
        await ws.send(tone(600, rate))
        await recorder.read(ws, frames=12)
        await ws.send(json.dumps({"type": "killAudio"}))
        await ws.send(tone(100, rate))  # leftover of the killed reply: a server bug
        await recorder.read(ws, frames=30)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        result = await MediaLeg(url, rate=rate).run()

    assert result.stale_audio_bytes == 3200
    heard = np.frombuffer(result.heard_pcm, dtype="<i2")
    after_kill = heard[int((result.kills[0].at_ms + 20) * rate / 1000) :]
    assert np.abs(after_kill).max() > 4000  # the caller heard the stale audio


async def test_both_tracks_sends_stereo_caller_left_playback_right() -> None:
    rate = 16000
    wav = CALLER_AUDIO_DIR / "wait_stop.wav"
    caller_audio = np.frombuffer(load_mono(wav, rate), dtype="<i2")
    recorder = Recorder()

    async def handler(ws: ServerConnection) -> None:
        await recorder.read(ws, frames=3)
        await ws.send(tone(400, rate))
        await recorder.read(ws, frames=70)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        track = CallerTrack([Say(wav)], rate)
        result = await MediaLeg(url, rate=rate, track="both_tracks", caller=track).run()

    assert json.loads(recorder.first)["mixType"] == "stereo"
    assert {len(f) for f in recorder.frames} == {1280}
    stereo = np.frombuffer(b"".join(recorder.frames), dtype="<i2").reshape(-1, 2)
    left, right = stereo[:, 0], stereo[:, 1]
    n = min(len(caller_audio), len(left))
    assert np.array_equal(left[:n], caller_audio[:n])  # caller channel, sample for sample
    heard = np.frombuffer(result.heard_pcm, dtype="<i2")
    m = min(len(right), len(heard))
    assert np.array_equal(right[:m], heard[:m])  # playback channel is exactly what was heard
    assert np.abs(right).max() > 4000
    assert result.utterances[0]["label"] == "wait_stop"


async def test_both_tracks_mixed_is_mono() -> None:
    recorder = Recorder()

    async def handler(ws: ServerConnection) -> None:
        await recorder.read(ws, frames=4)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        await MediaLeg(url, rate=8000, track="both_tracks", both_tracks_mix="mixed").run()
    assert json.loads(recorder.first)["mixType"] == "mixed"
    assert {len(f) for f in recorder.frames} == {320}


async def test_barge_in_on_a_paced_reply() -> None:
    """The server paces a long reply, detects the caller talking over it and kills playback."""
    rate = 16000
    frame = tone(20, rate, level=6000)

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # metadata

        async def play() -> None:
            for _ in range(150):  # 3 s reply, 60 ms ahead of real time
                await ws.send(frame)
                await asyncio.sleep(0.02)

        player = asyncio.create_task(play())
        async for message in ws:
            level = np.abs(np.frombuffer(message, dtype="<i2")).max() if message else 0
            if isinstance(message, bytes) and level > 1000 and not player.done():
                player.cancel()
                await ws.send(json.dumps({"type": "killAudio"}))
                await asyncio.sleep(0.3)
                await ws.close()
                return

    steps = parse_script("barge-in 300 wait_stop")
    async with asyncio.timeout(15), media_server(handler) as url:
        result = await MediaLeg(url, rate=rate, caller=CallerTrack(steps, rate)).run()

    assert len(result.kills) == 1
    [barge] = result.barge_ins
    assert barge["agent_was_playing"] is True
    assert barge["kill_audio_ms"] is not None and barge["kill_audio_ms"] >= 0
    assert barge["audio_stop_ms"] <= barge["kill_audio_ms"] + 20  # stopped at the kill
    assert result.stale_audio_bytes == 0
    assert result.utterances[0]["barge_in"] is True
    first = result.first_audio_heard_ms
    assert result.utterances[0]["start_ms"] >= first + 300


async def test_refuses_a_server_that_selects_no_subprotocol() -> None:
    closed: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except ConnectionClosed:
            closed.append(ws.close_code)

    async with asyncio.timeout(10), media_server(handler, subprotocols=["other.example"]) as url:
        result = await MediaLeg(url).run()
        await asyncio.sleep(0.05)
    assert not result.connected
    assert result.ended_by == "error"
    assert "audio.drachtio.org" in (result.error or "")
    assert closed == [1002]
    assert result.frames_sent == 0


async def test_offering_no_subprotocol_is_refused_by_a_strict_server() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with asyncio.timeout(10), media_server(handler, require=True) as url:
        result = await MediaLeg(url, subprotocols=[]).run()
    assert not result.connected
    assert result.error == "server refused the upgrade: HTTP 400"


async def test_jambonz_subprotocol_offer() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        result = await MediaLeg(url, subprotocols=[JAMBONZ]).run()
    assert result.subprotocol == JAMBONZ and result.connected


async def test_caller_hangup_and_text_frames_are_logged() -> None:
    recorder = Recorder()

    async def handler(ws: ServerConnection) -> None:
        await ws.send('{"type":"mark","name":"x"}')
        await ws.send("not json")
        await ws.send(b"\x01" * 641)  # odd-length frames: a sample split across frames
        await ws.send(b"\x01" * 639)
        await recorder.drain(ws)

    async with asyncio.timeout(10), media_server(handler) as url:
        result = await MediaLeg(url, caller=CallerTrack(parse_script("hangup 0.2"), 16000)).run()
    assert result.ended_by == "caller"
    assert recorder.close_code == 1000
    assert result.text_frames == [{"type": "mark", "name": "x"}, "not json"]
    assert result.odd_length_frames == 2
    assert result.played_bytes == 1280
    assert result.frames_sent == 11  # frames 0..10: the hangup step fires at 200 ms


async def test_connection_refused_is_an_error_not_a_crash() -> None:
    async with asyncio.timeout(10):
        result = await MediaLeg("ws://127.0.0.1:9/audio", open_timeout=2).run()
    assert not result.connected and result.error and result.error.startswith("could not connect")


# -- sans-I/O parts ---------------------------------------------------------------------------


def test_playout_prebuffers_then_rebuffers_and_kill_drops_everything() -> None:
    buffer = PlayoutBuffer(16000, config=PlayoutConfig(prebuffer_ms=80, rebuffer_ms=40))
    buffer.push(bytes(range(256)) * 5)  # 1280 B = 40 ms: below the 80 ms prebuffer
    assert buffer.pull() == (bytes(640), 0)
    buffer.push(b"\x01\x00" * 640)  # now 80 ms queued
    frame, real = buffer.pull()
    assert real == 640 and frame == (bytes(range(256)) * 5)[:640]
    assert buffer.pull()[1] == 640
    assert buffer.kill() == 1280
    assert buffer.pull() == (bytes(640), 0)
    buffer.push(b"\x02\x00" * 320)  # 20 ms: not enough to restart
    assert buffer.pull()[1] == 0
    buffer.push(b"\x02\x00" * 320)  # 40 ms restarts after the first start
    assert buffer.pull()[1] == 640


def test_playout_starts_a_short_tail_after_idle_and_carries_odd_bytes() -> None:
    buffer = PlayoutBuffer(16000, config=PlayoutConfig(start_after_idle_ms=60))
    buffer.push(b"\x05")
    buffer.push(b"\x00" + b"\x07\x00" * 99)  # 200 B total, split mid-sample
    assert [buffer.pull()[1] for _ in range(5)] == [0, 0, 0, 200, 0]  # starts after 60 ms idle


def test_send_schedule_is_derived_from_the_frame_index() -> None:
    schedule = SendSchedule(20.0, JitterConfig(jitter_ms=0.0, bunch_probability=0.0))
    assert [schedule.next_due() for _ in range(3)] == [(0, 0.02), (1, 0.04), (2, 0.06)]
    jittery = SendSchedule(20.0, JitterConfig(jitter_ms=5.0, bunch_probability=0.05, seed=1))
    dues = [jittery.next_due()[1] for _ in range(5000)]
    assert abs(dues[-1] - 5000 * 0.02) <= 0.025  # frame 5000 is where it should be: no drift
    with pytest.raises(ValueError, match="jitter_ms"):
        SendSchedule(20.0, JitterConfig(jitter_ms=20.0))


def test_script_parsing() -> None:
    steps = parse_script(
        "silence 0.5; say sales at 2; wait-reply 1 timeout 5\nbarge-in 250 wait_stop"
    )
    assert [type(s).__name__ for s in steps] == ["Silence", "Say", "WaitReply", "BargeIn"]
    assert steps[1] == Say(CALLER_AUDIO_DIR / "sales.wav", 2.0)
    assert steps[3] == BargeIn(250.0, CALLER_AUDIO_DIR / "wait_stop.wav")
    with pytest.raises(ValueError, match="unknown step"):
        parse_script("dance 3")
    with pytest.raises(ValueError, match="not found"):
        parse_script("say nosuchfile")
