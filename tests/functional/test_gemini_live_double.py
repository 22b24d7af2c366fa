"""The Gemini Live double is as strict as the service, and the session copes with its faults.

A raw websockets client speaks to the double on 127.0.0.1: what the service refuses closes the
connection with its code and reason, server messages arrive as binary frames. Then
`GeminiLiveSession` against it: a ``goAway`` with no resumption handle is one fatal error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from doubles.gemini_live import GeminiLiveDouble, LiveConnection
from doubles.openai_realtime import Pacing, Reply, Script
from mapokezi.profiles import load_profile_file, parse_profile
from media_node.models import base as m
from media_node.models import gemini_protocol as wire
from media_node.models import gemini_setup
from media_node.models.gemini_session import GeminiLiveSession
from media_node.prompts import session_instructions, tool_specs

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]
KEY = "double-key"
MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


def profile() -> Any:
    data = load_profile_file(ROOT / "profiles" / "example.yaml")
    data["model"] = {"provider": "gemini"}
    return parse_profile(data, number="+254700000100")


def setup(**changes: Any) -> dict[str, Any]:
    p = profile()
    message = gemini_setup.setup_message(
        p, session_instructions(p), tool_specs(p), model=MODEL, voice="Kore"
    )
    message["setup"].update(changes)
    return message


async def connected_session(double: GeminiLiveDouble, model: str = MODEL) -> GeminiLiveSession:
    """Our Gemini Live adapter, connected to `double` with the example profile."""
    p = profile()
    session = GeminiLiveSession(
        url=double.url,
        model=model,
        api_key=KEY,
        profile=p,
        instructions=session_instructions(p),
        voice="Kore",
    )
    await session.connect()
    return session


@pytest.fixture
async def double() -> AsyncIterator[GeminiLiveDouble]:
    async with GeminiLiveDouble(
        Script(greeting=Reply("Hello.")), api_key=KEY, pacing=Pacing(chunk_ms=100, speed=50.0)
    ) as running:
        yield running


async def open_ws(double: GeminiLiveDouble, *, query_key: bool = False) -> ClientConnection:
    if query_key:
        return await connect(f"{double.url}?key={KEY}")
    return await connect(double.url, additional_headers={"x-goog-api-key": KEY})


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


async def test_setup_complete_comes_as_a_binary_frame_with_key_in_query(
    double: GeminiLiveDouble,
) -> None:
    ws = await open_ws(double, query_key=True)
    await ws.send(json.dumps(setup()))
    first = await ws.recv()
    assert isinstance(first, bytes) and json.loads(first) == {"setupComplete": {}}
    update = json.loads(await ws.recv())
    assert update["sessionResumptionUpdate"]["resumable"] is True
    await ws.close()


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        ({"realtimeInput": {"text": "hi"}}, 1007, "Request contains an invalid argument."),
        (
            {"setup": {"model": f"models/{MODEL}", "temperature": 1}},
            1007,
            'Unknown name "temperature"',
        ),
        ({"setup": {"model": MODEL}}, 1008, "is not found"),
        ({"setup": {"model": f"models/{MODEL}"}, "toolResponse": {}}, 1007, "invalid argument"),
    ],
)
async def test_bad_first_messages_close_the_connection(
    double: GeminiLiveDouble, message: dict[str, Any], code: int, reason: str
) -> None:
    ws = await open_ws(double)
    await ws.send(json.dumps(message))
    got_code, got_reason = await closed_with(ws)
    assert got_code == code and reason in (got_reason or "")


async def test_snake_case_setup_is_accepted_like_the_service(double: GeminiLiveDouble) -> None:
    ws = await open_ws(double)
    body = {
        "model": f"models/{MODEL}",
        "generation_config": {"response_modalities": ["AUDIO"]},
        "input_audio_transcription": {},
    }
    await ws.send(json.dumps({"setup": body}))
    assert json.loads(await ws.recv()) == {"setupComplete": {}}
    live = await double.wait_for_connection()
    assert live.setup["generationConfig"] == {"responseModalities": ["AUDIO"]}
    await ws.close()


@pytest.mark.parametrize(
    "mime", ["audio/pcm;rate=24000", "audio/pcm;rate=8000", "audio/pcm", "audio/wav"]
)
async def test_audio_other_than_16k_pcm_is_refused(double: GeminiLiveDouble, mime: str) -> None:
    ws = await open_ws(double)
    await ws.send(json.dumps(setup()))
    await ws.recv()
    data = base64.b64encode(bytes(640)).decode()
    await ws.send(json.dumps({"realtimeInput": {"audio": {"mimeType": mime, "data": data}}}))
    code, reason = await closed_with(ws)
    assert code == 1007 and "mime type" in (reason or "")


async def test_compact_audio_is_heard_exactly_and_bad_compact_audio_is_refused() -> None:
    async with GeminiLiveDouble(Script(), api_key=KEY, record_audio=True) as double:
        ws = await open_ws(double)
        await ws.send(json.dumps(setup()))
        await ws.recv()
        pcm = bytes(range(256)) * 5
        await ws.send(wire.audio_input(pcm))  # the node's compact message
        live = await double.wait_for_connection()
        await live.wait_for(lambda c: c.input_audio_ms > 0)
        assert bytes(live.input_audio or b"") == pcm
        assert live.kinds() == ["setup", "realtimeInput"]
        await ws.send(wire.audio_input(pcm[:-1]))  # compact, but not whole samples
        code, reason = await closed_with(ws)
        assert code == 1007 and "whole 16-bit samples" in (reason or "")

        ws = await open_ws(double)
        await ws.send(json.dumps(setup()))
        await ws.recv()
        await ws.send(wire.audio_input(pcm).replace('"data":"', '"data":"!!!!'))
        code, reason = await closed_with(ws)
        assert code == 1007 and "realtime_input.audio.data" in (reason or "")


def loud(ms: int) -> bytes:
    """16 kHz speech to the double's energy VAD: a loud 300 Hz tone."""
    t = np.arange(16 * ms) / 16000
    return (9000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


async def played_out_while_busy(ws: ClientConnection, double: GeminiLiveDouble) -> LiveConnection:
    """Greet, wait until the whole turn has been sent, then block the loop past the time its
    audio has played out, as a busy machine can: the turn's own completion timer is due but
    has not run. What the client does next reaches the double in the same loop iteration."""
    await ws.send(json.dumps(setup()))
    await ws.send(wire.user_turn("Greet the caller."))
    live = await double.wait_for_connection()
    turn = await live.wait_for(lambda c: c.turns and c.turns[0].generated and c.turns[0])
    remaining = turn.play_until - asyncio.get_running_loop().time()
    time.sleep(max(0.0, remaining) + 0.05)  # noqa: ASYNC251 - the stall is the point
    return live


async def test_speech_after_a_turn_played_out_does_not_interrupt_it_on_a_busy_loop() -> None:
    script = Script(greeting=Reply("Hello."), fallback=Reply("Sorry?"))
    async with GeminiLiveDouble(script, api_key=KEY, pacing=Pacing(speed=50.0)) as double:
        # Caller speech that comes after the greeting played out does not interrupt it.
        ws = await open_ws(double)
        live = await played_out_while_busy(ws, double)
        await ws.send(wire.audio_input(loud(300)))
        await live.wait_for(lambda c: c.turns[0].status)
        assert live.turns[0].status == "completed"
        assert not live.sent("interrupted")
        # The speech is the caller's next turn, which the model answers once they stop.
        await ws.send(wire.audio_input(bytes(32 * 700)))
        await live.wait_for(lambda c: len(c.turns) == 2)
        assert live.turns[1].trigger.kind == "user_audio"
        await ws.close()


async def test_missing_or_wrong_key_and_wrong_path(double: GeminiLiveDouble) -> None:
    for headers in ({}, {"x-goog-api-key": "wrong"}):
        ws = await connect(double.url, additional_headers=headers)
        code, reason = await closed_with(ws)
        assert code == 1007 and "API key not valid" in (reason or "")
    with pytest.raises(InvalidStatus) as refused:
        await connect(double.url.replace("BidiGenerateContent", "Other"))
    assert refused.value.response.status_code == 404


async def test_unknown_handle_is_refused_and_a_known_one_resumes(double: GeminiLiveDouble) -> None:
    ws = await open_ws(double)
    await ws.send(json.dumps(setup(sessionResumption={"handle": "no-such-handle"})))
    code, reason = await closed_with(ws)
    assert code == 1008 and "not found" in (reason or "")
    ws = await open_ws(double)
    await ws.send(json.dumps(setup()))
    await ws.recv()
    handle = json.loads(await ws.recv())["sessionResumptionUpdate"]["newHandle"]
    await ws.close()
    ws = await open_ws(double)
    await ws.send(json.dumps(setup(sessionResumption={"handle": handle})))
    assert json.loads(await ws.recv()) == {"setupComplete": {}}
    assert double.connections[-1].resumed_handle == handle
    await ws.close()


async def test_tool_response_for_an_unknown_call_is_refused(double: GeminiLiveDouble) -> None:
    ws = await open_ws(double)
    await ws.send(json.dumps(setup()))
    await ws.recv()
    await ws.send(wire.tool_response("fc-unknown", "end_call", {"ok": True}))
    code, _ = await closed_with(ws)
    assert code == 1007


async def test_go_away_without_a_handle_is_one_fatal_error(double: GeminiLiveDouble) -> None:
    double.on_connection = lambda live: setattr(live, "resumable", False)
    session = await connected_session(double)
    events: list[m.ModelEvent] = []
    async with asyncio.timeout(10):
        async for event in session.events():
            events.append(event)
            if isinstance(event, m.SessionReady):
                live = await double.wait_for_connection()
                live.go_away(0.5)
    errors = [e for e in events if isinstance(e, m.ModelError)]
    assert [(e.code, e.fatal) for e in errors] == [("session_resumption_unavailable", True)]
    assert isinstance(events[-1], m.ModelClosed)
    assert len(double.connections) == 1  # no resumption was attempted
    await session.aclose()


async def test_gemini_3_models_are_prompted_through_realtime_text(
    double: GeminiLiveDouble,
) -> None:
    session = await connected_session(double, "gemini-3.1-flash-live-preview")
    events: list[m.ModelEvent] = []
    async with asyncio.timeout(10):
        async for event in session.events():
            events.append(event)
            if isinstance(event, m.SessionReady):
                await session.create_response('Greet the caller now by saying exactly: "Hi."')
            if isinstance(event, m.ResponseDone):
                await session.aclose()
    live = double.connections[0]
    assert live.setup["model"] == "models/gemini-3.1-flash-live-preview"
    assert live.client_messages[1] == {
        "realtimeInput": {"text": 'Greet the caller now by saying exactly: "Hi."'}
    }
    assert live.turns[0].transcript == "Hi."
    assert any(isinstance(e, m.AudioDelta) for e in events)
