"""CallSession on real sockets: a Sautikit-side client, the media socket, the OpenAI double.

Each test serves `CallSession` from a minimal websockets server (subprotocol
``audio.drachtio.org``) on 127.0.0.1, points it at the GA Realtime double, keeps the call record
in moto, and plays the caller with real PCM (espeak-ng WAVs) through real soxr. These check the
wiring (audio both ways, records, closes); the call's decisions (every ending, deadline and
barge-in case) are unit tests of the core on an explicit clock in tests/unit/call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from doubles.openai_realtime import (
    FunctionCall,
    Pacing,
    RealtimeDouble,
    Reply,
    Script,
    Turn,
)
from local.emulator.media_leg import MediaLeg
from local.emulator.script import BargeIn, CallerTrack, Say, WaitReply
from local.emulator.wav import load_mono
from mapokezi import store
from mapokezi.config import Settings
from mapokezi.profiles import Profile, load_profile_file, parse_profile
from media_node.assets import APOLOGY, DRAIN, load_line
from media_node.call import CallSession
from media_node.context import CallTimeouts, NodeContext, openai_factory
from media_node.models import base as m
from media_node.models.base import ModelFactory
from media_node.models.openai_session import OpenAIRealtimeSession

ROOT = Path(__file__).resolve().parents[2]
CALLER = ROOT / "local" / "audio" / "caller"
CALL_ID = "CA-test-1"
GREETING_TEXT = "Karibu, how can I help?"
LONG_REPLY = (
    "We are open Monday to Friday from eight in the morning to half past five in the evening, "
    "and on Saturday from nine until one in the afternoon."
)
#: A tool test case (tool, arguments, handoff kind, target): a transfer to appointments.
TRANSFER_CASE = (
    "transfer_to_human",
    {"reason": "Wants to book a cleaning", "department": "appointments"},
    "transfer",
    "+254711000002",
)
TIMEOUTS = CallTimeouts(greeting=3.0, reply=3.0, handoff_line=4.0, playout=8.0)

pytestmark = pytest.mark.asyncio


def make_profile(**changes: Any) -> Profile:
    data = load_profile_file(ROOT / "profiles" / "example.yaml")
    data["greeting"] = GREETING_TEXT
    profile = parse_profile(data, number="+254700000100")
    return dataclasses.replace(profile, **changes)


class Caller:
    """Sautikit's side of the media socket: sends PCM frames, records what comes back."""

    def __init__(self, ws: ClientConnection, rate: int) -> None:
        self.ws = ws
        self.rate = rate
        self.audio = bytearray()
        self.frame_sizes: list[int] = []
        self.texts: list[str] = []
        self.kill_at_bytes: list[int] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.changed = asyncio.Event()
        self.on_frame: Any = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    if self.on_frame is not None:
                        self.on_frame(self)
                    self.audio += message
                    self.frame_sizes.append(len(message))
                else:
                    self.texts.append(message)
                    if json.loads(message).get("type") == "killAudio":
                        self.kill_at_bytes.append(len(self.audio))
                self.changed.set()
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code
        self.closed.set()
        self.changed.set()

    @property
    def received_ms(self) -> float:
        return len(self.audio) / (2 * self.rate) * 1000

    async def wait(self, predicate: Any, limit: float = 10.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def send_pcm(self, pcm: bytes, chunk: int | None = None, speed: float = 4.0) -> None:
        """Sends `pcm` in `chunk`-byte frames (20 ms by default) at `speed` x real time."""
        chunk = chunk or self.rate * 2 // 50
        interval = chunk / (2 * self.rate) / speed
        for start in range(0, len(pcm), chunk):
            try:
                await self.ws.send(pcm[start : start + chunk])
            except ConnectionClosed:
                return
            await asyncio.sleep(interval)

    async def silence(self, ms: int, speed: float = 4.0) -> None:
        await self.send_pcm(bytes(self.rate * 2 * ms // 1000), speed=speed)

    async def say(self, name: str, speed: float = 4.0, tail_ms: int = 900) -> None:
        await self.send_pcm(load_mono(CALLER / f"{name}.wav", self.rate), speed=speed)
        await self.silence(tail_ms, speed=speed)

    async def quiet_after_audio(self, quiet_s: float = 0.5, limit: float = 15.0) -> None:
        """Waits until audio arrived and then nothing more for `quiet_s`."""
        async with asyncio.timeout(limit):
            while True:
                before = len(self.audio)
                await asyncio.sleep(quiet_s)
                if self.audio and len(self.audio) == before:
                    return

    async def stop(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self._reader, 5)


class Harness:
    """A media server on 127.0.0.1 running one `CallSession` per socket against a model double
    (the OpenAI one unless another factory and profile are given)."""

    def __init__(
        self,
        table: Any,
        double: Any,
        model_factory: ModelFactory | None = None,
        profile: Profile | None = None,
        outcome_limit: float = 15.0,
    ) -> None:
        self.table = table
        self.double = double
        self.sessions: list[CallSession] = []
        self.outcomes: list[str] = []
        self.done = asyncio.Event()
        self.profile = profile or make_profile()
        self.timeouts = TIMEOUTS
        self.url = ""
        self.outcome_limit = outcome_limit
        self.node = NodeContext(
            node_id="node-test",
            settings=Settings.from_env(),
            table=table,
            model_factory=model_factory or openai_factory(double.url, "gpt-realtime", "sk-test"),
            pacer_lead_ms=60,
        )

    async def handler(self, ws: ServerConnection) -> None:
        node = dataclasses.replace(self.node, timeouts=self.timeouts)
        session = CallSession(ws, call_id=CALL_ID, profile=self.profile, node=node)
        self.sessions.append(session)
        self.outcomes.append(await session.run())
        self.done.set()

    async def call(
        self, metadata: dict[str, Any] | str | None = "default", rate: int | None = None
    ) -> Caller:
        rate = rate or self.profile.audio.sample_rate
        ws = await connect(self.url, subprotocols=["audio.drachtio.org"], max_size=None)
        if metadata == "default":
            metadata = {"callSid": CALL_ID, "sampleRate": rate, "mixType": "mono"}
        if metadata is not None:
            await ws.send(metadata if isinstance(metadata, str) else json.dumps(metadata))
        return Caller(ws, rate)

    async def outcome(self, limit: float | None = None) -> str:
        async with asyncio.timeout(limit or self.outcome_limit):
            await self.done.wait()
        return self.outcomes[-1]

    def record(self) -> dict[str, Any]:
        record = store.call_record(self.table, CALL_ID)
        assert record is not None
        return record

    async def listen(self) -> Server:
        """Starts the media server on a free port and points `url` at its ``/audio``."""
        server = await serve(
            self.handler, "127.0.0.1", 0, subprotocols=["audio.drachtio.org"], max_size=None
        )
        self.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/audio"
        return server


def add_call(table: Any) -> None:
    """The call record every harness serves (``CALL_ID``)."""
    store.create_call(
        table, call_id=CALL_ID, caller="+254722000111", to="+254700000100", retention_days=1
    )


async def close_all(stack: list[tuple[Server, Any]]) -> None:
    """Closes each media server, then its model double."""
    for server, double in stack:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)
        await double.close()


@pytest.fixture
async def make_harness(calls_table: Any) -> AsyncIterator[Any]:
    add_call(calls_table)
    stack: list[tuple[Any, RealtimeDouble]] = []

    async def build(script: Script | None = None, **double_kwargs: Any) -> Harness:
        double_kwargs.setdefault("pacing", Pacing(chunk_ms=120, speed=4.0))
        double = RealtimeDouble(script or Script(), **double_kwargs)
        await double.start()
        harness = Harness(calls_table, double)
        stack.append((await harness.listen(), double))
        return harness

    yield build
    await close_all(stack)
    leftovers = [t for t in asyncio.all_tasks() if not t.done() and _from_media_node(t)]
    assert not leftovers, f"tasks left behind: {leftovers}"


def _from_media_node(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "media_node" in code.co_filename


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def turn_script(*turns: Turn, **kwargs: Any) -> Script:
    return Script(turns=turns, **kwargs)


# --- greeting, turns, audio formats -------------------------------------------------------


async def test_greeting_is_heard_first_with_ga_session(make_harness: Any) -> None:
    h = await make_harness()
    caller = await h.call()
    sender = asyncio.create_task(caller.silence(3000, speed=1.0))
    await caller.quiet_after_audio()
    session = await h.double.wait_for_session()
    config = session.config
    assert config["type"] == "realtime"
    assert config["audio"]["output"]["voice"] == "marin"
    assert config["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert config["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert config["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert {t["name"] for t in config["tools"]} == {"transfer_to_human", "end_call", "take_message"}
    transfer = next(t for t in config["tools"] if t["name"] == "transfer_to_human")
    assert transfer["parameters"]["properties"]["department"]["enum"] == ["appointments", "billing"]
    assert "OpenAI-Beta" not in session.headers
    assert session.responses[0].transcript == GREETING_TEXT
    # Exactly 20 ms frames at 16 kHz, and the greeting is speech, not silence.
    assert set(caller.frame_sizes) == {640}
    assert rms(bytes(caller.audio[:32000])) > 300
    sender.cancel()
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    record = h.record()
    assert record["media"]["outcome"] == "caller_hangup"
    assert record["metrics"]["time_to_first_audio_ms"] > 0
    assert record["metrics"]["frames_released"] == len(caller.frame_sizes)
    agent = [t for t in record["transcript"] if t["role"] == "agent"]
    assert agent and agent[0]["generated_text"] == GREETING_TEXT
    assert agent[0]["heard_text"] == GREETING_TEXT and not agent[0]["interrupted"]
    assert session.closed


@pytest.mark.parametrize("rate", [16000, 8000])
async def test_full_turn_reply_heard_and_latency_recorded(make_harness: Any, rate: int) -> None:
    reply = "We open at nine on Saturday."
    h = await make_harness(turn_script(Turn("What time do you open on Saturday?", Reply(reply))))
    h.profile = make_profile(audio=dataclasses.replace(h.profile.audio, sample_rate=rate))
    caller = await h.call()
    await caller.quiet_after_audio()
    greeting_bytes = len(caller.audio)
    await caller.say("hello_saturday")
    session = await h.double.wait_for_session()
    await session.wait_for(lambda s: len(s.responses) >= 2 and s.responses[1].status, timeout=10)
    await caller.quiet_after_audio()
    assert len(caller.audio) > greeting_bytes + rate  # well over 0.5 s of reply
    assert set(caller.frame_sizes) == {rate * 2 // 50}
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    record = h.record()
    metrics = record["metrics"]
    assert len(metrics["reply_latency_ms"]) == 1 and metrics["reply_latency_ms"][0] > 0
    assert metrics["usage"]
    roles = [(t["role"], t["text"]) for t in record["transcript"]]
    assert ("caller", "What time do you open on Saturday?") in roles
    assert ("agent", reply) in roles
    assert record["media"]["sample_rate"] == rate


async def test_stereo_both_tracks_and_odd_length_frames(make_harness: Any) -> None:
    h = await make_harness(turn_script(Turn("What time do you open?", Reply("At nine."))))
    h.profile = make_profile(audio=dataclasses.replace(h.profile.audio, track="both_tracks"))
    caller = await h.call({"callSid": CALL_ID, "sampleRate": 16000, "mixType": "stereo"})
    await caller.quiet_after_audio()
    speech = np.frombuffer(load_mono(CALLER / "hello_saturday.wav", 16000), dtype="<i2")
    quiet = np.zeros_like(speech)
    # First the playback channel carries speech (the model must not hear it), then the caller.
    stereo = np.concatenate(
        [np.column_stack([quiet, speech]), np.column_stack([speech, quiet])]
    ).astype("<i2")
    pcm = stereo.tobytes() + bytes(4 * 16000)
    await caller.send_pcm(pcm, chunk=1279)  # odd sizes: samples split across frames
    session = await h.double.wait_for_session()
    await session.wait_for(lambda s: len(s.responses) >= 2, timeout=10)
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    starts = [
        e["audio_start_ms"]
        for e in session.server_events
        if e["type"] == "input_audio_buffer.speech_started"
    ]
    segment_ms = speech.size / 16
    assert len(starts) == 1 and starts[0] >= segment_ms - 400  # prefix padding: 300 ms
    sent_ms = len(pcm) / 64
    assert abs(session.input_audio_ms - sent_ms) < 120  # every whole sample arrived, mono


@pytest.mark.parametrize(
    ("metadata", "warnings"),
    [
        (None, 0),  # binary first: the profile's format
        ("not json at all", 0),
        ({"callSid": CALL_ID, "sampleRate": "16000", "mixType": "mono"}, 0),
        ({"start": {"callSid": CALL_ID}, "sampleRate": 8000}, 1),  # chipmunk guard
        ({"sampleRate": 44100}, 1),  # stated but untrusted for decoding
    ],
)
async def test_metadata_variants(make_harness: Any, metadata: Any, warnings: int) -> None:
    h = await make_harness(turn_script(Turn("Hello?", Reply("Hello there."))), record_audio=True)
    caller = await h.call(metadata)
    decode_rate = 8000 if isinstance(metadata, dict) and metadata.get("sampleRate") == 8000 else 0
    caller.rate = decode_rate or 16000
    await caller.quiet_after_audio()
    await caller.ws.send('{"event":"mark","name":"later text frames are only logged"}')
    await caller.say("hello_saturday")
    session = await h.double.wait_for_session()
    await session.wait_for(lambda s: len(s.responses) >= 2, timeout=10)
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    record = h.record()
    assert record["metrics"]["chipmunk_warnings"] == warnings
    sent_ms = record["metrics"]["frames_in"] * 20
    assert abs(session.input_audio_ms - sent_ms) < 120  # decoded at the stated, trusted rate
    if isinstance(metadata, dict):
        assert record["media"]["metadata"] == metadata


# --- barge-in ----------------------------------------------------------------------------


async def test_barge_in_kills_audio_and_truncates_at_heard_ms(make_harness: Any) -> None:
    h = await make_harness(
        Script(greeting=Reply(LONG_REPLY), turns=[Turn("Wait, stop.", Reply("Sorry, go on."))]),
        pacing=Pacing(chunk_ms=120, speed=1.5),  # still generating when the caller cuts in
    )
    h.profile = make_profile(greeting=LONG_REPLY)
    caller = await h.call()
    stale: list[int] = []
    session_box: list[Any] = []

    def check_stale(c: Caller) -> None:
        # A frame after killAudio is stale unless the double has started a newer response.
        if c.kill_at_bytes and session_box and len(session_box[0].responses) < 2:
            stale.append(len(c.audio))

    caller.on_frame = check_stale
    session = await h.double.wait_for_session()
    session_box.append(session)
    await caller.wait(lambda: caller.received_ms > 1500)
    await caller.say("wait_stop", speed=1.0, tail_ms=700)
    await caller.wait(lambda: bool(caller.kill_at_bytes))
    await session.wait_for(lambda s: s.truncates, timeout=5)
    await session.wait_for(lambda s: len(s.responses) >= 2, timeout=10)
    await caller.quiet_after_audio()
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    assert not stale
    (truncate,) = session.truncates
    assert truncate.error is None
    received_ms = caller.kill_at_bytes[0] / 32  # bytes at 16 kHz mono → ms
    # Heard = released minus what was still ahead of real time (the 60 ms lead), a frame or two.
    assert truncate.audio_end_ms <= received_ms
    assert received_ms - truncate.audio_end_ms <= 60 + 2 * 20
    assert truncate.audio_end_ms <= session.responses[0].audio_ms
    assert "response.cancel" in session.client_event_types()
    record = h.record()
    metrics = record["metrics"]
    assert metrics["barge_ins"] == 1 and metrics["truncations"] == 1
    assert len(metrics["barge_in_stop_ms"]) == 1
    greeting = next(t for t in record["transcript"] if t["role"] == "agent")
    assert greeting["interrupted"] and LONG_REPLY.startswith(greeting["generated_text"])
    assert greeting["heard_ms"] == truncate.audio_end_ms
    assert 0 < len(greeting["heard_text"]) < len(greeting["generated_text"])
    assert greeting["generated_text"].startswith(greeting["heard_text"])


# --- tools and handoff -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "kind", "target"),
    [
        TRANSFER_CASE,
    ],
)
async def test_tool_writes_handoff_before_the_socket_closes(
    make_harness: Any, tool: str, arguments: dict[str, Any], kind: str, target: str | None
) -> None:
    call = FunctionCall(tool, arguments, follow_up=Reply("Connecting you now."))
    h = await make_harness(
        turn_script(Turn("Can I book a cleaning?", Reply("", function_call=call)))
    )
    caller = await h.call()
    handoff_at_close: list[Any] = []

    async def watch_close() -> None:
        await caller.closed.wait()
        record = await asyncio.to_thread(store.get_call, h.table, CALL_ID)
        handoff_at_close.append(record.get("handoff"))

    watcher = asyncio.create_task(watch_close())
    await caller.quiet_after_audio()
    before_line = len(caller.audio)
    await caller.say("transfer_yes")
    async with asyncio.timeout(15):
        await caller.closed.wait()
    await watcher
    assert caller.close_code == 1000
    expected = "transfer" if kind == "transfer" else "hangup"
    assert await h.outcome() == expected
    (handoff,) = handoff_at_close
    assert handoff is not None and handoff["kind"] == kind and handoff["state"] == "pending"
    assert handoff.get("target") == target
    assert handoff["reason"] == arguments["reason"]
    assert arguments["reason"] in handoff["summary"]
    session = h.double.sessions[0]
    (output,) = session.function_outputs
    assert output.json()["ok"] is True
    # The short handoff line was spoken and played out before the close.
    line = session.responses[-1]
    assert line.transcript == "Connecting you now." and line.status == "completed"
    assert len(caller.audio) - before_line >= line.audio_ms * 32 * 0.9
    assert session.closed
    record = h.record()
    assert record["media"]["outcome"] == expected
    if kind == "transfer":
        assert record["handoff"]["department"] == "appointments"


# --- hang-up and failures --------------------------------------------------------------------


async def test_caller_hangup_mid_reply_closes_the_model_session(make_harness: Any) -> None:
    h = await make_harness(Script(greeting=Reply(LONG_REPLY)))
    caller = await h.call()
    await caller.wait(lambda: caller.received_ms > 800)
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    session = h.double.sessions[0]
    await session.wait_for(lambda s: s.closed, timeout=5)
    record = h.record()
    assert record.get("handoff") is None
    greeting = next(t for t in record["transcript"] if t["role"] == "agent")
    assert greeting["interrupted"] and greeting["heard_ms"] < greeting["generated_ms"]


async def test_broken_media_socket_is_stream_lost_and_closes_the_model(make_harness: Any) -> None:
    h = await make_harness(Script(greeting=Reply(LONG_REPLY)))
    caller = await h.call()
    await caller.wait(lambda: caller.received_ms > 500)
    caller.ws.transport.abort()  # no close frame: a reset, as when the platform's side dies
    assert await h.outcome() == "stream_lost"
    session = h.double.sessions[0]
    await session.wait_for(lambda s: s.closed, timeout=5)
    media = h.record()["media"]
    assert media["outcome"] == "stream_lost"
    assert media["close"] == {"code": 1006, "by": "network", "reason": "no close frame"}


async def test_caller_close_frame_is_recorded_as_a_hang_up(make_harness: Any) -> None:
    h = await make_harness()
    caller = await h.call()
    await caller.quiet_after_audio()
    await caller.ws.close(1001, "caller left")
    assert await h.outcome() == "caller_hangup"
    media = h.record()["media"]
    assert media["close"] == {"code": 1001, "by": "peer", "reason": "caller left"}


def apology_heard(caller: Caller, since: int) -> bool:
    apology = load_line(APOLOGY, caller.rate)
    tail = bytes(caller.audio[since:])
    return len(tail) >= len(apology) and tail.find(apology[: caller.rate]) >= 0


@pytest.mark.parametrize("fault", ["drop", "fatal_error"])
async def test_model_failure_mid_call_apologises_and_transfers(
    make_harness: Any, fault: str
) -> None:
    h = await make_harness(turn_script(Turn("Hello?", Reply("Hello there."))))
    caller = await h.call()
    await caller.quiet_after_audio()
    session = h.double.sessions[0]
    since = len(caller.audio)
    if fault == "drop":
        session.drop()
    elif fault == "expire":
        session.expire(60)
    elif fault == "rate_limit":
        session.rate_limit_next_response()
        await caller.say("hello_saturday")
    else:
        session.send_error("server_error", "The server had an error.", error_type="server_error")
    async with asyncio.timeout(20):
        await caller.closed.wait()
    assert caller.close_code == 1000
    assert apology_heard(caller, since)
    assert await h.outcome() == "failed"
    record = h.record()
    assert record["handoff"]["kind"] == "transfer"
    assert record["handoff"]["reason"] == "model_unavailable"
    assert record["handoff"]["target"] == h.profile.front_desk
    assert record["media"]["outcome"] == "failed"


async def test_model_unreachable_gets_the_apology(make_harness: Any) -> None:
    h = await make_harness()
    h.node = dataclasses.replace(
        h.node, model_factory=openai_factory("ws://127.0.0.1:9/v1/realtime", "gpt-realtime", "k")
    )
    caller = await h.call()
    async with asyncio.timeout(20):
        await caller.closed.wait()
    assert apology_heard(caller, 0)
    assert await h.outcome() == "failed"


class StalledWrites(OpenAIRealtimeSession):
    """The Realtime session whose socket stops taking commands (a send that never completes,
    as when the model's side stops reading and the write buffer stays full)."""

    async def create_response(self, instructions: str | None = None) -> None:
        await asyncio.Event().wait()


async def test_a_model_that_stops_taking_commands_does_not_hold_up_the_apology(
    make_harness: Any,
) -> None:
    h = await make_harness()
    h.timeouts = dataclasses.replace(TIMEOUTS, greeting=1.0)

    def stalled(profile: Profile, instructions: str) -> m.ModelSession:
        return StalledWrites(
            url=h.double.url, model="gpt-realtime", api_key="sk-test", profile=profile,
            instructions=instructions,
        )  # fmt: skip

    h.node = dataclasses.replace(h.node, model_factory=stalled)
    caller = await h.call()
    async with asyncio.timeout(20):
        await caller.closed.wait()
    assert apology_heard(caller, 0)  # the greeting's request is stuck; the apology is not
    assert await h.outcome() == "failed"
    assert h.record()["handoff"]["reason"] == "model_unavailable"


# --- limits and drain -------------------------------------------------------------------------


async def test_drain_plays_the_drain_line_and_transfers(make_harness: Any) -> None:
    h = await make_harness()
    caller = await h.call()
    await caller.quiet_after_audio()
    since = len(caller.audio)
    session = h.sessions[0]
    await session.drain(session.clock() + 5.0)
    async with asyncio.timeout(10):
        await caller.closed.wait()
    drain = load_line(DRAIN, 16000)
    assert bytes(caller.audio[since:]).find(drain[:16000]) >= 0
    assert await h.outcome() == "drained"
    handoff = h.record()["handoff"]
    assert handoff["reason"] == "node_draining" and handoff["target"] == h.profile.front_desk


async def test_drain_waits_for_a_call_that_ends_by_itself(make_harness: Any) -> None:
    h = await make_harness()
    caller = await h.call()
    await caller.quiet_after_audio()
    session = h.sessions[0]
    drain = asyncio.create_task(session.drain(session.clock() + 30.0))
    await caller.stop()
    async with asyncio.timeout(10):
        await drain
    assert await h.outcome() == "caller_hangup"
    assert h.record().get("handoff") is None


# --- the call emulator's media leg ---------------------------------------------------------


async def test_emulated_call_with_barge_in_and_goodbye(make_harness: Any) -> None:
    goodbye = FunctionCall("end_call", {"reason": "caller said goodbye"})
    h = await make_harness(
        Script(
            turns=[
                Turn("What time do you open on Saturday?", Reply(LONG_REPLY)),
                Turn("Wait, stop.", Reply("Sure, what else can I help with?")),
                Turn("Thank you, goodbye.", Reply("Goodbye!", function_call=goodbye)),
            ]
        ),
        pacing=Pacing(chunk_ms=120, speed=1.5),
    )
    steps = [
        WaitReply(),
        Say(CALLER / "hello_saturday.wav"),
        BargeIn(1200, CALLER / "wait_stop.wav"),
        WaitReply(),
        Say(CALLER / "goodbye.wav"),
    ]
    leg = MediaLeg(h.url, rate=16000, caller=CallerTrack(steps, 16000), max_seconds=40)
    result = await asyncio.wait_for(leg.run(), 45)
    assert result.error is None and result.ended_by == "server" and result.close_code == 1000
    assert await h.outcome() == "hangup"
    assert len(result.kills) == 1 and result.stale_audio_bytes == 0
    assert result.odd_length_frames == 0
    record = h.record()
    assert record["handoff"]["kind"] == "hangup"
    metrics = record["metrics"]
    assert metrics["barge_ins"] == 1 and metrics["truncations"] == 1
    assert len(metrics["reply_latency_ms"]) >= 2 and metrics["underruns"] == 0
    interrupted = [t for t in record["transcript"] if t["role"] == "agent" and t["interrupted"]]
    assert len(interrupted) == 1 and LONG_REPLY.startswith(interrupted[0]["generated_text"])


# --- the OpenAI session runner on its own ----------------------------------------------------


async def test_openai_session_events_and_expiry(make_harness: Any) -> None:
    h = await make_harness()
    model = OpenAIRealtimeSession(
        url=h.double.url, model="gpt-realtime", api_key="sk-test", profile=h.profile,
        instructions="You are a receptionist.",
    )  # fmt: skip
    await model.connect()
    events: list[m.ModelEvent] = []
    seen = asyncio.Event()

    async def read() -> None:
        async for event in model.events():
            events.append(event)
            seen.set()

    reader = asyncio.create_task(read())

    async def until(kind: type) -> None:
        async with asyncio.timeout(10):
            while not any(isinstance(e, kind) for e in events):
                seen.clear()
                await seen.wait()

    await until(m.SessionReady)
    await model.create_response('Say "Hi there."')
    await until(m.ResponseDone)
    audio = b"".join(e.pcm for e in events if isinstance(e, m.AudioDelta))
    assert len(audio) > 24000  # over half a second at 24 kHz
    assert any(isinstance(e, m.TranscriptDone) and e.text == "Hi there." for e in events)
    session = h.double.sessions[0]
    assert session.headers["Authorization"] == "Bearer sk-test"
    session.expire(60)
    async with asyncio.timeout(10):
        await reader
    errors = [e for e in events if isinstance(e, m.ModelError)]
    assert errors and errors[0].code == "session_expired" and errors[0].fatal
    assert events[-1] == m.ModelClosed(1001, events[-1].reason) and events[-1].reason
    await model.send_audio(b"\x00\x00")  # after the end: dropped, no error
    await model.aclose()


async def test_openai_session_refused_upgrade_is_model_unavailable(calls_table: Any) -> None:
    async with RealtimeDouble(api_key="sk-right") as double:
        model = OpenAIRealtimeSession(
            url=double.url, model="gpt-realtime", api_key="sk-wrong", profile=make_profile(),
            instructions="x",
        )  # fmt: skip
        with pytest.raises(m.ModelUnavailableError):
            await model.connect()
        await model.aclose()
