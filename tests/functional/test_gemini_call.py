"""Whole calls through CallSession against the Gemini Live double, on real sockets.

Same set-up as ``test_call_session`` (a Sautikit-side client, the media socket served by
`CallSession`, moto for the call record, espeak-ng caller audio through real soxr), with the
profile choosing Gemini: 16 kHz caller audio goes to the model as is, 8 kHz is upsampled, and
the model's 24 kHz audio is downsampled to the call's rate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from doubles.gemini_live import GeminiLiveDouble
from doubles.openai_realtime import FunctionCall, Pacing, Reply, Script, Turn
from doubles.sautikit_api import SautikitApiDouble
from local.emulator.wav import load_mono
from mapokezi.profiles import Limits, ModelChoice, Profile
from media_node.context import gemini_factory, provider_factory
from media_node.models.base import ModelFactory
from tests.functional.test_call_session import (
    CALL_ID,
    CALLER,
    LONG_REPLY,
    TRANSFER_CASE,
    Caller,
    Harness,
    add_call,
    apology_heard,
    close_all,
    make_profile,
)
from tests.functional.test_supervised_call import (  # noqa: F401
    api,
    asks_for_a_person,
    supervised_harness,
)

pytestmark = pytest.mark.asyncio

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
API_KEY = "gemini-test-key"


def gemini_profile(**changes: Any) -> Profile:
    return make_profile(model=ModelChoice("gemini", voice="Puck"), **changes)


@pytest.fixture
async def make_harness(calls_table: Any) -> AsyncIterator[Any]:
    add_call(calls_table)
    stack: list[tuple[Any, GeminiLiveDouble]] = []

    async def build(
        script: Script | None = None, factory: ModelFactory | None = None, **kwargs: Any
    ) -> Harness:
        kwargs.setdefault("pacing", Pacing(chunk_ms=120, speed=4.0))
        double = GeminiLiveDouble(script or Script(), api_key=API_KEY, **kwargs)
        await double.start()
        factory = factory or gemini_factory(double.url, MODEL, API_KEY)
        harness = Harness(calls_table, double, factory, gemini_profile(), outcome_limit=20.0)
        stack.append((await harness.listen(), double))
        return harness

    yield build
    await close_all(stack)


def audio_ms(caller: Caller, start: int = 0) -> float:
    return (len(caller.audio) - start) / (2 * caller.rate) * 1000


# --- greeting and turns ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 8000])
async def test_greeting_and_a_turn(make_harness: Any, rate: int) -> None:
    reply = "We open at nine on Saturday."
    h = await make_harness(
        Script(turns=[Turn("What time do you open on Saturday?", Reply(reply))]),
        record_audio=True,
    )
    h.profile = gemini_profile(audio=dataclasses.replace(h.profile.audio, sample_rate=rate))
    caller = await h.call()
    await caller.quiet_after_audio()
    live = await h.double.wait_for_connection()
    setup = live.setup
    assert setup["model"] == f"models/{MODEL}"
    voice = setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]
    assert voice == {"voiceName": "Puck"}
    assert live.connection.request.headers["x-goog-api-key"] == API_KEY
    assert live.kinds()[:2] == ["setup", "clientContent"]  # the greeting, after setupComplete
    greeting_bytes = len(caller.audio)
    assert audio_ms(caller) >= live.turns[0].audio_ms * 0.95
    await caller.say("hello_saturday")
    await live.wait_for(lambda c: len(c.turns) >= 2 and c.turns[1].status, timeout=10)
    await caller.quiet_after_audio()
    assert audio_ms(caller, greeting_bytes) >= live.turns[1].audio_ms * 0.95
    assert set(caller.frame_sizes) == {rate * 2 // 50}
    # Every audio message is 16 kHz PCM (the double closes the socket on anything else), and
    # the model heard about as much audio as the caller sent after the setup.
    assert live.violation is None and live.input_audio_ms > 1000
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    record = h.record()
    roles = [(t["role"], t["text"]) for t in record["transcript"]]
    assert ("caller", "What time do you open on Saturday?") in roles
    assert ("agent", reply) in roles
    assert record["metrics"]["usage"]["output_tokens"] > 0
    assert record["media"]["sample_rate"] == rate
    await live.wait_for(lambda c: c.closed)
    if rate == 16000:
        # 16 kHz is the model's own rate: the caller's samples reach it exactly as sent (all
        # of them: the last partial block is sent when the call ends).
        sent = load_mono(CALLER / "hello_saturday.wav", rate) + bytes(rate * 2 * 900 // 1000)
        assert bytes(live.input_audio) == sent


async def test_barge_in_flushes_on_interrupted_without_truncate(make_harness: Any) -> None:
    h = await make_harness(
        Script(greeting=Reply(LONG_REPLY), turns=[Turn("Wait, stop.", Reply("Sorry, go on."))]),
        pacing=Pacing(chunk_ms=120, speed=1.5),  # still generating when the caller cuts in
    )
    h.profile = gemini_profile(greeting=LONG_REPLY)
    caller = await h.call()
    live = await h.double.wait_for_connection()
    stale: list[int] = []

    def check_stale(c: Caller) -> None:
        # A frame after killAudio is stale unless the double has started a newer turn.
        if c.kill_at_bytes and len(live.turns) < 2:
            stale.append(len(c.audio))

    caller.on_frame = check_stale
    await caller.wait(lambda: caller.received_ms > 1500)
    await caller.say("wait_stop", speed=1.0, tail_ms=700)
    await caller.wait(lambda: bool(caller.kill_at_bytes))
    await live.wait_for(lambda c: len(c.turns) >= 2 and c.turns[1].status, timeout=10)
    await caller.quiet_after_audio()
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    assert not stale
    assert live.turns[0].status == "interrupted" and live.sent("interrupted")
    # Gemini has no truncation or cancel: nothing but setup, audio and the greeting turn went out.
    assert set(live.kinds()) == {"setup", "realtimeInput", "clientContent"}
    record = h.record()
    assert record["metrics"]["barge_ins"] == 1 and record["metrics"]["truncations"] == 0
    greeting = next(t for t in record["transcript"] if t["role"] == "agent")
    assert greeting["interrupted"] and greeting["heard_ms"] < greeting["generated_ms"]
    assert ("agent", "Sorry, go on.") in [(t["role"], t["text"]) for t in record["transcript"]]


async def test_after_a_barge_in_a_silent_caller_is_prompted_then_said_goodbye_to(
    make_harness: Any,
) -> None:
    # Gemini reports the caller's speech only as an interruption; the caller's turn must still
    # end (SpeechStopped) when the model answers, or the call would wait on them forever.
    h = await make_harness(
        Script(greeting=Reply(LONG_REPLY), turns=[Turn("Wait, stop.", Reply("Sorry, go on."))]),
        pacing=Pacing(chunk_ms=120, speed=1.5),
    )
    limits = Limits(max_call_seconds=600, idle_prompt_seconds=2, idle_end_seconds=2)
    h.profile = gemini_profile(greeting=LONG_REPLY, limits=limits)
    caller = await h.call()
    live = await h.double.wait_for_connection()
    await caller.wait(lambda: caller.received_ms > 1500)
    await caller.say("wait_stop", speed=1.0, tail_ms=700)
    async with asyncio.timeout(30):
        await caller.closed.wait()
    assert await h.outcome() == "idle"
    assert live.turns[0].status == "interrupted"
    texts = [
        " ".join(p["text"] for t in m["clientContent"]["turns"] for p in t["parts"])
        for m in live.client_messages
        if "clientContent" in m
    ]
    assert any("still there" in t for t in texts) and any("goodbye" in t for t in texts)
    assert h.record()["handoff"]["reason"] == "idle"


# --- tools --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "kind", "target"),
    [
        TRANSFER_CASE,
        ("end_call", {"reason": "caller said goodbye"}, "hangup", None),
    ],
)
async def test_tools_write_the_handoff_and_answer_the_call(
    make_harness: Any, tool: str, arguments: dict[str, Any], kind: str, target: str | None
) -> None:
    call = FunctionCall(tool, arguments, follow_up=Reply("Connecting you now."))
    h = await make_harness(
        Script(turns=[Turn("Can I book a cleaning?", Reply("", function_call=call))])
    )
    caller = await h.call()
    await caller.quiet_after_audio()
    before_line = len(caller.audio)
    await caller.say("transfer_yes")
    async with asyncio.timeout(20):
        await caller.closed.wait()
    assert caller.close_code == 1000
    assert await h.outcome() == ("transfer" if kind == "transfer" else "hangup")
    live = h.double.connections[0]
    (response,) = live.tool_responses
    call_id = live.turns[1].function_calls[0]["id"]
    assert response["id"] == call_id and response["name"] == tool
    result = response["response"]["result"]
    assert result["ok"] is True and result["instructions"]
    line = live.turns[1]
    assert line.transcript == "Connecting you now." and line.status == "completed"
    # The line's audio (after the tool answer) was played before the close.
    assert audio_ms(caller, before_line) >= line.audio_ms * 0.9
    record = h.record()
    assert record["handoff"]["kind"] == kind and record["handoff"].get("target") == target
    assert record["handoff"]["reason"] == arguments["reason"]


# --- resumption ---------------------------------------------------------------------------


async def test_go_away_mid_reply_resumes_with_no_gap(make_harness: Any) -> None:
    reply = "We open at nine on Saturday."
    h = await make_harness(
        Script(greeting=Reply(LONG_REPLY), turns=[Turn("Saturday?", Reply(reply))]),
        pacing=Pacing(chunk_ms=120, speed=2.0),
    )
    h.profile = gemini_profile(greeting=LONG_REPLY)
    caller = await h.call()
    sender = asyncio.create_task(caller.silence(20000, speed=1.0))  # the caller's line is open
    first = await h.double.wait_for_connection()
    await caller.wait(lambda: caller.received_ms > 600)
    assert not first.turns[0].status  # mid-reply
    first.go_away(20)
    second = await h.double.wait_for_connection(1, timeout=20)
    # Resumed after the reply, from the handle that covers it (not one from before it).
    handles = [
        m["sessionResumptionUpdate"]["newHandle"]
        for m in first.sent("sessionResumptionUpdate")
        if m["sessionResumptionUpdate"]["resumable"]
    ]
    assert first.turns[0].status == "completed"
    assert second.resumed_handle == handles[-1] and len(handles) >= 2
    assert second.setup["sessionResumption"]["handle"] == second.resumed_handle
    await caller.quiet_after_audio(limit=20)
    greeting_bytes = len(caller.audio)
    # The whole greeting reached the caller: the old connection finished it before the switch.
    assert first.turns[0].status == "completed"
    assert audio_ms(caller) >= first.turns[0].audio_ms * 0.95
    assert first.closed and first.close_code == 1000  # closed by the client, before the abort
    # Caller audio from the switch onwards reached the new connection.
    await second.wait_for(lambda c: c.input_audio_ms > 0)
    sender.cancel()
    await caller.say("hello_saturday")
    await second.wait_for(lambda c: c.turns and c.turns[0].status, timeout=10)
    await caller.quiet_after_audio()
    assert audio_ms(caller, greeting_bytes) >= second.turns[0].audio_ms * 0.95
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    record = h.record()
    greeting = next(t for t in record["transcript"] if t["role"] == "agent")
    assert greeting["text"] == LONG_REPLY and not greeting["interrupted"]
    assert record["metrics"]["underruns"] == 0
    assert ("agent", reply) in [(t["role"], t["text"]) for t in record["transcript"]]


async def test_resumption_refused_apologises_and_transfers(make_harness: Any) -> None:
    h = await make_harness()
    caller = await h.call()
    sender = asyncio.create_task(caller.silence(20000, speed=1.0))
    await caller.quiet_after_audio()
    live = await h.double.wait_for_connection()
    h.double.refuse_resumption = True
    since = len(caller.audio)
    live.go_away(10)
    async with asyncio.timeout(20):
        await caller.closed.wait()
    sender.cancel()
    assert apology_heard(caller, since)
    assert await h.outcome() == "failed"
    assert h.double.connections[1].close_code == 1008
    record = h.record()
    assert record["handoff"]["reason"] == "model_unavailable"
    assert record["handoff"]["target"] == h.profile.front_desk


@pytest.mark.parametrize("fault", ["drop", "close_1011"])
async def test_connection_lost_mid_call_apologises_and_transfers(
    make_harness: Any, fault: str
) -> None:
    h = await make_harness()
    caller = await h.call()
    await caller.quiet_after_audio()
    live = await h.double.wait_for_connection()
    since = len(caller.audio)
    if fault == "drop":
        live.drop()
    else:
        live.close(1011, "Internal error encountered.")
    async with asyncio.timeout(20):
        await caller.closed.wait()
    assert caller.close_code == 1000
    assert apology_heard(caller, since)
    assert await h.outcome() == "failed"
    record = h.record()
    assert record["handoff"]["reason"] == "model_unavailable"
    assert record["handoff"]["target"] == h.profile.front_desk
    assert len(h.double.connections) == 1  # no goAway: nothing to resume


async def test_provider_without_a_key_gets_the_apology(
    make_harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reason = "GEMINI_API_KEY is not configured (set GEMINI_API_KEY or GEMINI_API_KEY_ARN)"
    h = await make_harness(factory=provider_factory({"gemini": reason}))
    caplog.set_level(logging.WARNING, logger="media_node.call")
    caller = await h.call()
    async with asyncio.timeout(20):
        await caller.closed.wait()
    assert apology_heard(caller, 0)
    assert await h.outcome() == "failed"
    assert h.record()["handoff"]["reason"] == "model_unavailable"
    assert any(reason in r.getMessage() for r in caplog.records)
    assert not h.double.connections


# --- a supervised transfer --------------------------------------------------------------------


async def test_the_session_after_the_person_left_knows_the_conversation(
    make_harness: Any,
    api: SautikitApiDouble,  # noqa: F811
) -> None:
    api.supervision.set_person(ring_after=0.2, answer_after=0.5, ring_timeout=30)
    h = await supervised_harness(make_harness)
    caller = await asks_for_a_person(h)
    first = await h.double.wait_for_connection(0)
    async with asyncio.timeout(25):
        await first.wait_for(lambda c: c.closed, timeout=20)  # bridged: the model is closed
    api.supervision.person_acts(CALL_ID, "hangup")
    second = await h.double.wait_for_connection(1, timeout=15)
    assert second.setup is not None and first.setup is not None
    system = second.setup["systemInstruction"]["parts"][0]["text"]
    assert "The colleague was told: Wants to book a cleaning." in system
    assert "Caller: Can I book a cleaning?" in system
    assert "The colleague was told" not in first.setup["systemInstruction"]["parts"][0]["text"]
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
