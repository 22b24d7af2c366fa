"""The emulator's media leg against small real WebSocket servers on 127.0.0.1.

Each server here speaks the media server's side of Sautikit's ``<Stream>`` socket: it selects
the subprotocol, reads the metadata frame and the caller's PCM, plays a tone back and, where the
test needs it, sends ``{"type": "killAudio"}``. Assertions are on counts, sizes, sample values
and the emulator's own schedule, never on elapsed wall time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError

from doubles.sautikit_api import SautikitApiDouble
from local.emulator.answer import parse_voice_answer
from local.emulator.call import run_call
from local.emulator.media_leg import DRACHTIO, JAMBONZ, MediaLeg
from local.emulator.options import CallOptions
from local.emulator.pacing import JitterConfig, SendSchedule
from local.emulator.person import PERSON_AUDIO
from local.emulator.playout import PlayoutBuffer, PlayoutConfig
from local.emulator.report import format_summary
from local.emulator.script import CALLER_AUDIO_DIR, BargeIn, CallerTrack, Say, parse_script
from local.emulator.wav import load_mono
from local.emulator.webhook import CallIdentity, sign, voice_fields

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
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


async def test_audio_after_a_barge_in_kill_is_reported_as_stale() -> None:
    rate = 16000
    wav = CALLER_AUDIO_DIR / "wait_stop.wav"

    async def handler(ws: ServerConnection) -> None:
        recorder = Recorder()
        await recorder.read(ws, frames=2)
        await ws.send(tone(3000, rate))
        while True:  # until the caller talks over the reply (a VAD would notice it too)
            frame = await ws.recv()
            if isinstance(frame, bytes) and np.abs(np.frombuffer(frame, "<i2")).max() > 1000:
                break
        await ws.send(json.dumps({"type": "killAudio"}))
        await ws.send(tone(100, rate))  # leftover of the killed reply: a server bug
        await recorder.read(ws, frames=30)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        caller = CallerTrack([BargeIn(300, wav)], rate)
        result = await MediaLeg(url, rate=rate, caller=caller).run()

    [kill] = result.kills
    [utterance] = result.utterances
    assert utterance["start_ms"] <= kill.at_ms < utterance["end_ms"] + 250  # a barge-in kill
    assert result.stale_audio_bytes == 3200
    assert result.line_changes == 0
    heard = np.frombuffer(result.heard_pcm, dtype="<i2")
    after_kill = heard[int((kill.at_ms + 20) * rate / 1000) :]
    assert np.abs(after_kill).max() > 4000  # the caller heard the stale audio


async def test_a_new_line_after_a_kill_with_the_caller_silent_is_not_stale() -> None:
    rate = 16000

    async def handler(ws: ServerConnection) -> None:
        recorder = Recorder()
        await recorder.read(ws, frames=2)
        await ws.send(tone(600, rate))
        await recorder.read(ws, frames=12)
        # The model failed: the node cuts its reply and plays its apology at once.
        await ws.send(json.dumps({"type": "killAudio"}))
        await ws.send(tone(300, rate, 440))
        await recorder.read(ws, frames=30)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        result = await MediaLeg(url, rate=rate).run()

    assert len(result.kills) == 1 and result.utterances == []
    assert result.stale_audio_bytes == 0
    assert result.line_changes == 1
    heard = np.frombuffer(result.heard_pcm, dtype="<i2")
    after_kill = heard[int((result.kills[0].at_ms + 20) * rate / 1000) :]
    assert np.abs(after_kill).max() > 4000  # the new line was heard


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


async def test_both_tracks_mixed_resamples_playback_into_the_call_rate() -> None:
    recorder = Recorder()

    async def handler(ws: ServerConnection) -> None:
        await recorder.read(ws, frames=2)
        await ws.send(tone(300, 16000))  # playback at 16 kHz on an 8 kHz call
        await recorder.read(ws, frames=30)
        await ws.close()

    async with asyncio.timeout(10), media_server(handler) as url:
        result = await MediaLeg(
            url, rate=8000, playback_rate=16000, track="both_tracks", both_tracks_mix="mixed"
        ).run()
    assert json.loads(recorder.first)["mixType"] == "mixed"
    assert {len(f) for f in recorder.frames} == {320}
    mixed = np.frombuffer(b"".join(recorder.frames), dtype="<i2")
    assert np.abs(mixed).max() > 4000  # the tone, resampled by soxr, is in the mix
    assert result.playback_rate == 16000 and len(result.heard_pcm) % 640 == 0


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


def test_answer_validation() -> None:
    good = parse_voice_answer(
        '<?xml version="1.0"?><Response><Stream url="wss://m.example/audio?token=x"'
        ' connect="true" track="inbound_track" outputSamplingRate="16000"'
        ' bidirectionalSamplingRate="16000" name="receptionist"'
        ' statusCallback="https://a.example/stream-status"'
        ' statusEvents="stream-started stream-stopped stream-error"'
        ' headerMetadata=\'{"tenant":"acme"}\'/></Response>',
        "application/xml",
    )
    assert good.ok and not good.warnings
    assert good.stream is not None and good.stream.output_rate == 16000
    assert good.stream.header_metadata == {"tenant": "acme"}
    for valid in (
        "<Response/>",
        "<Response><Say>Hi</Say><Dial callerId='+254700000100' timeout='20'>"
        "<Number>+254722000111</Number></Dial><Hangup/></Response>",
    ):
        assert parse_voice_answer(valid, "text/xml").ok
    bad = parse_voice_answer(
        '<Response><Stream url="https://m.example/audio" connect="true"/></Response>', "text/xml"
    )
    assert any("ws:// or wss://" in e for e in bad.errors)
    bad = parse_voice_answer(
        '<Response><Stream url="wss://m/a" track="left" statusEvents="stream-paused"'
        ' outputSamplingRate="44100"/><Say/><Dial/></Response>',
        "text/html",
    )
    text = " | ".join(bad.errors + bad.warnings)
    for expected in (
        'connect="true" is required',
        "track='left'",
        "44100",
        "stream-paused",
        "<Say> has no text",
        "<Dial> needs exactly one",
        "never ran on Sautikit",
        "application/xml",
        "bidirectionalSamplingRate",
    ):
        assert expected in text
    assert not parse_voice_answer("<Response></Response><Response/>", "text/xml").ok
    assert "<Reponse>" in parse_voice_answer("<Reponse/>", "text/xml").errors[0]
    assert "JSON" in parse_voice_answer('{"actions": []}', "application/json").errors[0]
    assert "E.164" in " ".join(
        parse_voice_answer("<Response><Dial><Number>0722</Number></Dial></Response>").errors
    )


def test_webhook_fields_and_signatures() -> None:
    call = CallIdentity("+254711000001", "+254700000100")
    assert set(voice_fields(call, "documented")) == {"CallId", "From", "To"}
    assert voice_fields(call, "field", "StreamStopped") == {
        "sessionId": call.session_id,
        "callerNumber": "+254711000001",
        "destinationNumber": "+254700000100",
        "direction": "inbound",
        "callSessionState": "StreamStopped",
    }
    body = b"a=1"
    expected = hmac.new(b"k", b"a=1.1700000000", hashlib.sha256).hexdigest()
    assert sign(body, "k", "v1", timestamp=1700000000) == f"t=1700000000,v1={expected}"
    assert sign(body, "k", "hex") == hmac.new(b"k", body, hashlib.sha256).hexdigest()


# -- a whole call: voice webhook, status callbacks, media, verbs, hangup, CDR ------------------


class FakeApp:
    """A voice webhook on 127.0.0.1 that streams, then hands off with <Say><Dial>."""

    def __init__(self, stream_url: str, api: SautikitApiDouble, answer: str | None = None):
        self.stream_url, self.api, self.answer = stream_url, api, answer
        self.posts: list[tuple[str, dict[str, str], dict[str, str]]] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fields = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                app.posts.append(
                    (self.path, fields, {k.lower(): v for k, v in self.headers.items()})
                )
                self._reply(200, app.respond(self.path, fields).encode(), "application/xml")

            def do_GET(self) -> None:
                call_id = self.path.rsplit("/", 1)[1]
                cdr = app.api.call_view(call_id)
                record = {"call_id": call_id, "transcript": [], "cdr": cdr}
                self._reply(200, json.dumps(record).encode(), "application/json")

            def _reply(self, status: int, raw: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def respond(self, path: str, fields: dict[str, str]) -> str:
        if path == "/stream-status":
            return ""
        state = fields.get("callSessionState")
        if state is None:
            return self.answer or (
                f'<Response><Stream url="{self.stream_url}" connect="true" track="inbound_track"'
                ' outputSamplingRate="16000" bidirectionalSamplingRate="16000" name="reception"'
                f' statusCallback="{self.base}/stream-status"'
                ' statusEvents="stream-started stream-stopped"/></Response>'
            )
        if state == "StreamStopped":
            return (
                "<Response><Say>Connecting you to sales now.</Say>"
                '<Dial callerId="+254700000100" timeout="20"><Number>+254722000111</Number></Dial>'
                "</Response>"
            )
        return "<Response/>"

    def states(self) -> list[str | None]:
        return [f.get("callSessionState") for p, f, _ in self.posts if p == "/voice"]


async def receptionist(ws: ServerConnection) -> None:
    """Greets, waits for the caller to finish a sentence, answers, then hands off (closes).

    It keeps reading while it talks, as a real media server must: a server that stops reading
    never sees the caller's close reply and the close handshake stalls.
    """
    await ws.recv()
    finished_sentence = asyncio.Event()

    async def listen() -> None:
        heard_speech, quiet = False, 0
        async for message in ws:
            loud = np.abs(np.frombuffer(message, dtype="<i2")).max(initial=0) > 1000
            heard_speech = heard_speech or loud
            quiet = 0 if loud else quiet + 1
            if heard_speech and quiet >= 15:
                finished_sentence.set()

    async def play(hz: float) -> None:
        audio = tone(300, 16000, hz=hz, level=6000)
        for i in range(0, len(audio), 640):
            await ws.send(audio[i : i + 640])
            await asyncio.sleep(0.02)

    listener = asyncio.create_task(listen())
    await play(440)
    await finished_sentence.wait()
    await play(660)
    await asyncio.sleep(0.3)
    await ws.close()
    listener.cancel()


@asynccontextmanager
async def call_stack(answer: str | None = None) -> AsyncIterator[tuple[FakeApp, SautikitApiDouble]]:
    with SautikitApiDouble(not_final_reads=0) as api:
        async with media_server(receptionist) as stream_url:
            app = FakeApp(stream_url, api, answer)
            try:
                yield app, api
            finally:
                app.server.shutdown()
                app.server.server_close()


async def test_a_whole_call_hands_off_with_say_and_dial(tmp_path: Path) -> None:
    async with asyncio.timeout(20), call_stack() as (app, api):
        options = CallOptions(
            voice_url=f"{app.base}/voice",
            to_number="+254700000100",
            webhook_secret="whsec_test",
            steps=parse_script("wait-reply 0.3; say wait_stop; wait-reply 0.3 timeout 5"),
            heard_wav=str(tmp_path / "heard.wav"),
            sautikit_api_url=api.url,
            call_record_url=app.base,
            record_wait_seconds=2,
        )
        result = await run_call(options)

    assert result.ok, result.errors
    assert app.states() == [None, "StreamStopped", "DialCompleted", "Completed"]
    path, first, headers = app.posts[0]
    assert UUID_RE.match(first["CallId"]) and first["sessionId"].startswith("HD_")
    assert (first["From"], first["To"], first["direction"]) == (
        "+254712345678",
        "+254700000100",
        "inbound",
    )
    raw = urlencode(first).encode()
    t, v1 = (part.split("=", 1)[1] for part in headers["x-sautikit-signature"].split(","))
    assert v1 == hmac.new(b"whsec_test", raw + b"." + t.encode(), hashlib.sha256).hexdigest()
    status_events = [f["StreamEvent"] for p, f, _ in app.posts if p == "/stream-status"]
    assert status_events == ["stream-started", "stream-stopped"]
    assert all(f["StreamName"] == "reception" for p, f, _ in app.posts if p == "/stream-status")
    completed = app.posts[-1][1]
    assert int(completed["durationInSeconds"]) == result.duration_seconds >= 7  # 5 s dial + Say

    media = result.media
    assert media is not None and media.ended_by == "server"
    assert media.metadata is not None and media.metadata["callSid"] == first["CallId"]
    assert len(media.heard_segments) == 2  # greeting and reply
    assert media.replies[0]["latency_ms"] is not None
    assert [v["verb"] for v in result.verbs] == ["Stream", "Say", "Dial"]
    assert result.handoff == {
        "number": "+254722000111",
        "callerId": "+254700000100",
        "timeout": 20,
        "outcome": "answered",
        "answered_seconds": 5.0,
    }
    cdr = api.call_view(first["CallId"])
    assert cdr is not None and cdr["status"] == "completed"
    assert cdr["cost_minor"] == 300  # 5 s dialled leg: one started minute at KES 3
    assert result.call_record is not None and result.call_record["cdr"]["cost_minor"] == 300
    assert "Handoff: dial +254722000111" in format_summary(result)


async def test_no_restream_post_models_the_field_finding() -> None:
    async with asyncio.timeout(20), call_stack() as (app, api):
        options = CallOptions(
            voice_url=f"{app.base}/voice",
            steps=parse_script("wait-reply 0.3; say wait_stop; wait-reply 0.3 timeout 5"),
            restream_post=False,
            dialect="documented",
            signature_scheme="hex",
            webhook_secret="k",
            sautikit_api_url=None,
        )
        result = await run_call(options)
    assert app.states() == [None, "Completed"]
    assert result.handoff is None
    assert any("dead air" in w for w in result.warnings)
    _, first, headers = app.posts[0]
    assert set(first) == {"CallId", "From", "To"}
    assert (
        headers["x-sautikit-signature"]
        == hmac.new(b"k", urlencode(first).encode(), hashlib.sha256).hexdigest()
    )
    assert api.requests == []


async def test_stream_stopped_copies_then_a_rescue_is_heard_after_the_silence(
    tmp_path: Path,
) -> None:
    """stream-stopped is sent three times at once, and as an event to the events URL; then, as
    the Lambda side's rescue would, a supervision of the call starts here. ``--out`` gets what
    the stream played, the silence the caller sat through since the stream ended, then the
    person's voice."""
    heard_wav = tmp_path / "heard.wav"

    def stopped(app: FakeApp) -> bool:
        return any(f.get("StreamEvent") == "stream-stopped" for _, f, _ in app.posts)

    async with asyncio.timeout(30), call_stack() as (app, api):
        api.events_url = f"{app.base}/events"
        options = CallOptions(
            voice_url=f"{app.base}/voice",
            steps=parse_script("wait-reply 0.3; say wait_stop; wait-reply 0.3 timeout 5"),
            restream_post=False,
            stream_stopped_copies=3,
            stream_stopped_event=True,
            sautikit_api_url=api.url,
            call_record_url=app.base,
            record_wait_seconds=2,
            heard_wav=str(heard_wav),
            rescue_wait_seconds=10,
        )

        async def rescue() -> None:
            for _ in range(400):
                if stopped(app):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a grace period before the rescue
            supervisor = {"type": "phone", "number": "+254722000111"}
            call_id = app.posts[0][1]["CallId"]
            api.supervision.start(call_id, {"mode": "barge", "supervisor": supervisor}, "r-1")

        result, _ = await asyncio.gather(run_call(options), rescue())

    assert result.ok, result.errors
    copies = [(p, f) for p, f, _ in app.posts if f.get("StreamEvent") == "stream-stopped"]
    assert len(copies) == 3 and all(copy == copies[0] for copy in copies)
    labels = [x.label for x in result.exchanges if x.label.startswith("stream-stopped")]
    assert labels == ["stream-stopped", "stream-stopped-copy-1", "stream-stopped-copy-2"]
    assert app.states() == [None, "Completed"]  # never re-POSTed
    (event,) = [d for d in api.event_deliveries if d["kind"] == "call.stream.stopped"]
    assert (event["kind"], event["url"], event["status"]) == (
        "call.stream.stopped",
        f"{app.base}/events",
        200,
    )
    assert event["body"]["data"]["callSessionState"] == "StreamStopped"
    assert event["body"]["data"]["call_id"] == app.posts[0][1]["CallId"]
    assert result.platform_events == [
        {"kind": "call.stream.stopped", "event_id": event["body"]["event_id"]}
    ]
    person = result.person
    assert person is not None and person["final_state"] == "connected", person

    media = result.media
    assert media is not None
    heard, rate = read_wav(heard_wav)
    streamed = np.frombuffer(media.heard_pcm, dtype="<i2")
    voice = np.frombuffer(load_mono(PERSON_AUDIO, rate), dtype="<i2")
    assert heard[: len(streamed)].tolist() == streamed.tolist()
    assert heard[len(heard) - len(voice) :].tolist() == voice.tolist()
    silence = heard[len(streamed) : len(heard) - len(voice)]
    assert not silence.any()
    # At least the grace period and the ring (0.2 s, then 1 s to answer) went by in silence.
    assert len(silence) / rate >= 1.5
    assert person["silent_seconds"] == pytest.approx(len(silence) / rate, abs=0.01)
    summary = format_summary(result)
    assert "the caller heard the person (3.91 s)" in summary
    assert f"after {person['silent_seconds']:g} s of silence since the stream ended" in summary
    assert "stream-stopped-copy-2" in summary


async def test_rate_and_track_overrides_say_they_simulate_a_mismatch() -> None:
    async with asyncio.timeout(20), call_stack() as (app, _api):
        options = CallOptions(
            voice_url=f"{app.base}/voice",
            steps=parse_script("wait-reply 0.3; say wait_stop; wait-reply 0.3 timeout 5"),
            rate=8000,
            track="both_tracks",
            sautikit_api_url=None,
        )
        result = await run_call(options)
    assert result.media is not None and (result.media.rate, result.media.channels) == (8000, 2)
    mismatches = [w for w in result.warnings if "simulates a mismatch" in w]
    assert len(mismatches) == 2
    assert "outputSamplingRate=16000" in mismatches[0] and "audio.sample_rate" in mismatches[0]
    assert "track=inbound_track" in mismatches[1] and "audio.track" in mismatches[1]


async def test_a_broken_answer_fails_the_call_without_streaming() -> None:
    broken = '<Response><Stream url="wss://127.0.0.1:1/audio" track="inbound_track"/></Response>'
    async with asyncio.timeout(20), call_stack(answer=broken) as (app, _api):
        result = await run_call(CallOptions(voice_url=f"{app.base}/voice", sautikit_api_url=None))
    assert not result.ok
    assert any('connect="true" is required' in e for e in result.errors)
    assert result.media is None
    assert app.states() == [None, "Completed"]
    assert "FAILED" in format_summary(result)


def test_playout_counts_an_underrun_only_when_the_buffer_ran_dry_mid_reply() -> None:
    frame = 640  # 20 ms at 16 kHz
    speech, pause = b"\x00\x10" * (frame // 2), bytes(frame)
    buffer = PlayoutBuffer(16000)
    # A reply with a quiet passage inside the audio itself: bytes keep coming, nothing starves.
    buffer.push(speech * 4 + pause * 10 + speech * 4)
    assert all(buffer.pull()[1] == frame for _ in range(18))
    assert buffer.underruns == 0
    # The reply ends; the next one comes a second later: a new reply, not a starved one.
    for _ in range(50):
        buffer.pull()
    buffer.push(speech * 4)
    for _ in range(4):
        buffer.pull()
    assert buffer.underruns == 0
    # Mid-reply the queue runs dry and audio arrives 60 ms later: the caller heard a gap.
    for _ in range(50):
        buffer.pull()
    buffer.push(speech * 4)
    for _ in range(4 + 3):
        buffer.pull()
    buffer.push(speech * 4)
    assert buffer.underruns == 1
    # After killAudio the next audio is a new reply.
    buffer.pull()
    buffer.kill()
    buffer.push(speech * 4)
    assert buffer.underruns == 1


async def test_dropped_leg_closes_without_a_close_frame() -> None:
    rate = 16000
    recorder = Recorder()

    async def handler(ws: ServerConnection) -> None:
        await recorder.read(ws, frames=2)
        await ws.send(tone(2000, rate))
        await recorder.drain(ws)

    async with asyncio.timeout(10), media_server(handler) as url:
        result = await MediaLeg(url, rate=rate, drop_after_seconds=0.5).run()
        for _ in range(100):
            if recorder.close_code is not None:
                break
            await asyncio.sleep(0.01)

    assert result.ended_by == "dropped" and result.error is None
    assert recorder.close_code == 1006  # the server saw the connection go, no close frame
    assert 20 <= len(recorder.frames) <= 30  # about half a second of caller frames
    assert result.first_audio_heard_ms is not None
