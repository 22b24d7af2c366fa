"""The OpenAI Realtime (GA) double on real sockets, driven by a plain ``websockets`` client.

Every exchange goes over a real WebSocket on 127.0.0.1 and is checked against the GA wire
protocol: event names and order, field names, error codes and close codes. Caller audio is a
real signal (silence and speech-like sound) so turn detection is exercised for real.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from doubles.openai_realtime import (
    FunctionCall,
    Pacing,
    RealtimeDouble,
    Reply,
    Script,
    SessionState,
    Trigger,
    Turn,
)
from doubles.openai_realtime.audio import (
    decode_g711,
    encode_g711,
    rms_dbfs,
    silence,
    synthesize_speech,
)
from doubles.openai_realtime.vad import EnergyVad

WAIT = 5.0
AUTH = {"Authorization": "Bearer sk-test-0123456789"}
FAST = Pacing(speed=math.inf, transcription_delay_s=0.0)
GREETING = "Karibu Dental Clinic, how can I help you?"
QUESTION = "What time do you open on Saturday?"
ANSWER = "On Saturday we open at nine."


class Client:
    """A Realtime API client reduced to what the tests need: JSON events in and out."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            return json.loads(await self.ws.recv())

    async def until(
        self, kind: str, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Events received up to and including the first ``kind`` (matching ``where``)."""
        events = []
        async with asyncio.timeout(WAIT):
            while True:
                event = json.loads(await self.ws.recv())
                events.append(event)
                if event["type"] == kind and (where is None or where(event)):
                    return events

    async def send_audio(self, pcm: bytes, chunk_ms: int = 20) -> None:
        step = chunk_ms * 48
        for start in range(0, len(pcm), step):
            audio = base64.b64encode(pcm[start : start + step]).decode()
            await self.send("input_audio_buffer.append", audio=audio)

    async def configure(self, **session: Any) -> dict[str, Any]:
        await self.send("session.update", session={"type": "realtime", **session})
        events = await self.until("session.updated")
        return events[-1]["session"]


@asynccontextmanager
async def open_client(
    double: RealtimeDouble, headers: dict[str, str] | None = None, model: str = "gpt-realtime"
) -> AsyncIterator[Client]:
    async with connect(f"{double.url}?model={model}", additional_headers=headers or AUTH) as ws:
        client = Client(ws)
        created = await client.recv()
        assert created["type"] == "session.created"
        yield client


@asynccontextmanager
async def running(script: Any = None, **kwargs: Any) -> AsyncIterator[RealtimeDouble]:
    kwargs.setdefault("pacing", FAST)
    async with asyncio.timeout(4 * WAIT), RealtimeDouble(script or SCRIPT, **kwargs) as double:
        yield double


SCRIPT = Script(greeting=Reply(GREETING), turns=[Turn(QUESTION, Reply(ANSWER))])
TRANSCRIBED = {"transcription": {"model": "gpt-4o-transcribe", "language": "en"}}


def caller_turn(text: str, lead_ms: int = 600, tail_ms: int = 1000) -> bytes:
    """Silence, a speech-like burst, silence: one caller turn as 24 kHz PCM16."""
    return silence(lead_ms) + synthesize_speech(text) + silence(tail_ms)


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# -- Connection -----------------------------------------------------------------------------


async def test_session_created_is_sent_first_with_the_ga_default_session() -> None:
    async with running() as double:
        async with connect(f"{double.url}?model=gpt-realtime", additional_headers=AUTH) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        session = first["session"]
        assert first["type"] == "session.created" and first["event_id"].startswith("event_")
        assert list(first) == ["type", "event_id", "session"]
        assert session["id"].startswith("sess_") and session["object"] == "realtime.session"
        assert (session["type"], session["model"]) == ("realtime", "gpt-realtime")
        assert session["expires_at"] > time.time() + 3500
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert "modalities" not in session and session["output_modalities"] == ["audio"]
        assert double.sessions[0].client_events == []  # sent before the client said anything


async def test_beta_header_gets_an_error_then_close_4000() -> None:
    async with running() as double:
        headers = {**AUTH, "OpenAI-Beta": "realtime=v1"}
        async with connect(f"{double.url}?model=gpt-realtime", additional_headers=headers) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT)
        assert error["type"] == "error"
        assert error["error"]["code"] == "beta_api_shape_disabled"
        assert error["error"]["type"] == "invalid_request_error"
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4000
        assert closed.value.rcvd.reason == "invalid_request_error.beta_api_shape_disabled"


@pytest.mark.parametrize(
    ("headers", "query", "status", "code"),
    [
        ({}, "?model=gpt-realtime", 401, None),
        (
            {"Authorization": "Bearer sk-wrong-key-0000"},
            "?model=gpt-realtime",
            401,
            "invalid_api_key",
        ),
        ({"Authorization": "Basic c2stdGVzdA=="}, "?model=gpt-realtime", 401, "invalid_api_key"),
        (AUTH, "", 400, "missing_required_parameter"),
    ],
)
async def test_upgrade_is_refused_like_the_service(
    headers: dict[str, str], query: str, status: int, code: str | None
) -> None:
    async with running(api_key="sk-test-0123456789") as double:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{double.url}{query}", additional_headers=headers)
        response = refused.value.response
        assert response.status_code == status
        assert response.headers["Content-Type"].startswith("application/json")
        body = json.loads(response.body)
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["code"] == code
        assert double.sessions == [] and double.rejected[0].status == status


async def test_unknown_path_is_404() -> None:
    async with running() as double:
        with pytest.raises(InvalidStatus) as refused:
            await connect(double.url.replace("/v1/realtime", "/v1/chat"), additional_headers=AUTH)
        assert refused.value.response.status_code == 404


# -- session.update ------------------------------------------------------------------------


async def test_session_update_without_type_is_refused_and_changes_nothing() -> None:
    async with running() as double, open_client(double) as client:
        update = {"instructions": "Be brief.", "audio": {"output": {"voice": "marin"}}}
        await client.send("session.update", event_id="evt_1", session=update)
        error = (await client.recv())["error"]
        assert error["code"] == "missing_required_parameter"
        assert error["param"] == "session.type"
        assert error["message"] == "Missing required parameter: 'session.type'."
        assert error["event_id"] == "evt_1"
        session = double.sessions[0]
        assert session.config["instructions"] != "Be brief."
        config = await client.configure(instructions="Be brief.")  # the session is still usable
        assert config["instructions"] == "Be brief."


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("modalities", ["text", "audio"]),
        ("input_audio_format", "pcm16"),
        ("output_audio_format", "g711_ulaw"),
        ("input_audio_transcription", {"model": "whisper-1"}),
        ("turn_detection", {"type": "server_vad"}),
        ("voice", "alloy"),
        ("temperature", 0.8),
        ("max_response_output_tokens", 4096),
    ],
)
async def test_beta_shaped_session_fields_are_unknown_parameters(field: str, value: Any) -> None:
    async with running() as double, open_client(double) as client:
        await client.send("session.update", session={"type": "realtime", field: value})
        event = await client.recv()
        assert event["type"] == "error"
        assert event["error"]["code"] == "unknown_parameter"
        assert event["error"]["param"] == f"session.{field}"
        assert event["error"]["message"] == f"Unknown parameter: 'session.{field}'."


async def test_session_update_validates_audio_formats_and_flat_tools() -> None:
    async with running() as double, open_client(double) as client:
        bad_rate = {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}
        await client.send("session.update", session={"type": "realtime", "audio": bad_rate})
        error = (await client.recv())["error"]
        assert (error["code"], error["param"]) == (
            "invalid_value",
            "session.audio.input.format.rate",
        )

        nested = [{"type": "function", "function": {"name": "transfer_to_human"}}]
        await client.send("session.update", session={"type": "realtime", "tools": nested})
        error = (await client.recv())["error"]
        assert (error["code"], error["param"]) == (
            "missing_required_parameter",
            "session.tools[0].name",
        )

        tool = {
            "type": "function",
            "name": "transfer_to_human",
            "description": "Hand over.",
            "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}},
        }
        config = await client.configure(
            tools=[tool],
            audio={
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "semantic_vad"},
                },
                "output": {"format": {"type": "audio/pcma"}, "voice": "marin"},
            },
        )
        assert config["tools"] == [tool]
        assert config["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert config["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
        assert config["audio"]["output"] == {
            "format": {"type": "audio/pcma"},
            "voice": "marin",
            "speed": 1.0,
        }
        assert config["instructions"] == double.sessions[0].config["instructions"]  # full config


# -- Responses -----------------------------------------------------------------------------


async def test_greeting_response_follows_the_exact_ga_event_order() -> None:
    async with running() as double, open_client(double) as client:
        instructions = 'Greet the caller. Say "Habari, this is Mapokezi speaking."'
        await client.send("response.create", response={"instructions": instructions})
        events = await client.until("response.done")

    kinds = types(events)
    head = [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    tail = [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    deltas = kinds[len(head) : -len(tail)]
    assert kinds[: len(head)] == head and kinds[-len(tail) :] == tail
    assert set(deltas) == {"response.output_audio.delta", "response.output_audio_transcript.delta"}
    assert deltas[0] == "response.output_audio_transcript.delta"  # text leads the audio
    assert all(list(e)[:2] == ["type", "event_id"] for e in events)

    spoken = "Habari, this is Mapokezi speaking."  # the quoted per-response instructions
    transcript = "".join(e["delta"] for e in events if e["type"].endswith("transcript.delta"))
    assert transcript == spoken
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["status_details"] is None
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": spoken}]
    assert events[4]["part"] == {"type": "audio", "transcript": ""}
    item_id = events[2]["item"]["id"]
    assert all(e.get("item_id", item_id) == item_id for e in events[4:-3])

    pcm = audio_of(events)
    assert pcm == synthesize_speech(spoken)  # 24 kHz PCM16 whose length follows the text
    assert len(pcm) / 48 == pytest.approx(len(spoken) * 60, abs=1)
    assert rms_dbfs(np.frombuffer(pcm, dtype="<i2")) > -30  # audible speech-like signal
    sizes = [
        len(base64.b64decode(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta"
    ]
    assert set(sizes[:-1]) == {120 * 48}  # bursts of 120 ms
    usage = done["usage"]
    assert usage["output_token_details"]["audio_tokens"] == math.ceil(len(pcm) / 48 / 50)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    session = double.sessions[0]
    assert session.responses[0].trigger.kind == "greeting"
    assert session.responses[0].trigger.instructions == instructions


async def test_vad_turn_from_real_audio() -> None:
    async with running() as double, open_client(double) as client:
        await client.configure(audio={"input": TRANSCRIBED})
        lead_ms, text = 600, QUESTION
        await client.send_audio(caller_turn(text, lead_ms=lead_ms))
        events = await client.until("response.done")
        # At full speed the whole response goes out at once; the transcript follows it.
        events += await client.until("conversation.item.input_audio_transcription.completed")

    by_type: dict[str, dict[str, Any]] = {}
    for event in events:
        by_type.setdefault(event["type"], event)  # the first of each kind
    started = by_type["input_audio_buffer.speech_started"]
    stopped = by_type["input_audio_buffer.speech_stopped"]
    # Onset is judged in 32 ms frames; the reported start includes the 300 ms prefix padding,
    # the stop the 200 ms silence window (the server's defaults).
    assert lead_ms - 300 - 32 <= started["audio_start_ms"] <= lead_ms - 300 + 32
    speech_end = lead_ms + len(text) * 60
    assert speech_end + 200 - 120 <= stopped["audio_end_ms"] <= speech_end + 200 + 64
    item_id = started["item_id"]
    assert stopped["item_id"] == item_id
    assert by_type["input_audio_buffer.committed"]["item_id"] == item_id
    user = by_type["conversation.item.added"]["item"]
    assert user == {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    completed = by_type["conversation.item.input_audio_transcription.completed"]
    assert (completed["item_id"], completed["transcript"]) == (item_id, QUESTION)
    order = types(events)
    assert order.index("input_audio_buffer.speech_stopped") < order.index(
        "input_audio_buffer.committed"
    )
    assert order.index("input_audio_buffer.committed") < order.index("response.created")
    done = by_type["response.done"]["response"]
    assert done["output"][0]["content"][0]["transcript"] == ANSWER
    session = double.sessions[0]
    assert session.input_audio_ms == pytest.approx(len(caller_turn(text, lead_ms=lead_ms)) / 48)
    assert session.responses[0].trigger.said == QUESTION
    appends = [e for e in session.client_events if e.type == "input_audio_buffer.append"]
    assert appends[0].payload["audio_bytes"] == len(caller_turn(text, lead_ms=lead_ms))


async def test_barge_in_cancels_the_response_with_turn_detected() -> None:
    realtime = Pacing(chunk_ms=100, speed=1.0, transcription_delay_s=0.0)
    long_greeting = Reply("Thank you for calling Karibu Dental Clinic, " * 4)
    script = Script(greeting=long_greeting, turns=[Turn(QUESTION, Reply(ANSWER))])
    async with running(script, pacing=realtime) as double, open_client(double) as client:
        await client.send("response.create")
        before = await client.until("response.output_audio.delta")
        await client.send_audio(caller_turn(QUESTION, lead_ms=200, tail_ms=800))
        during = await client.until("response.done")
        after = await client.until("response.done")

    response_id = before[0]["response"]["id"]
    kinds = types(during)
    cut = kinds.index("input_audio_buffer.speech_started")
    assert kinds[cut + 1 :] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    cancelled = during[-1]["response"]
    assert cancelled["id"] == response_id and cancelled["status"] == "cancelled"
    assert cancelled["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert cancelled["output"][0]["status"] == "incomplete"
    heard = during[cut + 2]["transcript"]
    assert long_greeting.text.startswith(heard) and len(heard) < len(long_greeting.text)
    assert after[-1]["response"]["status"] == "completed"
    assert after[-1]["response"]["output"][0]["content"][0]["transcript"] == ANSWER
    assert "input_audio_buffer.speech_stopped" in types(after)


async def test_truncate_in_range_and_past_the_end() -> None:
    async with running() as double, open_client(double) as client:
        await client.send("response.create")
        events = await client.until("response.done")
        item_id = events[-1]["response"]["output"][0]["id"]
        generated_ms = len(audio_of(events)) // 48

        past = generated_ms + 1579
        truncate = {"item_id": item_id, "content_index": 0, "audio_end_ms": past}
        await client.send("conversation.item.truncate", event_id="evt_t1", **truncate)
        error, truncated = await client.recv(), await client.recv()
        assert error["type"] == "error"
        assert (
            error["error"]["message"]
            == f"Audio content of {generated_ms}ms is already shorter than {past}ms"
        )
        assert error["error"]["event_id"] is None  # not echoed, as observed
        assert truncated["type"] == "conversation.item.truncated"
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, generated_ms)

        await client.send(
            "conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=500
        )
        truncated = await client.recv()
        assert truncated == {
            "type": "conversation.item.truncated",
            "event_id": truncated["event_id"],
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 500,
        }

        user = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        }
        await client.send("conversation.item.create", item=user)
        user_id = (await client.until("conversation.item.done"))[-1]["item"]["id"]
        await client.send(
            "conversation.item.truncate", item_id=user_id, content_index=0, audio_end_ms=0
        )
        assert (await client.recv())["error"]["code"] == "unsupported_content_type"
        await client.send(
            "conversation.item.truncate", item_id="item_nope", content_index=0, audio_end_ms=0
        )
        assert (await client.recv())["error"]["code"] == "item_truncate_invalid_item_id"

    records = double.sessions[0].truncates
    assert [(t.audio_end_ms, t.applied_ms, t.error) for t in records[:2]] == [
        (past, generated_ms, "invalid_value"),
        (500, 500, None),
    ]
    assert [t.error for t in records[2:]] == [
        "unsupported_content_type",
        "item_truncate_invalid_item_id",
    ]


async def test_function_call_round_trip_waits_for_response_create() -> None:
    call = FunctionCall(
        "transfer_to_human",
        {"reason": "caller asked", "department": "billing"},
        follow_up=Reply("Transferring you now."),
    )
    turn = Turn("Can I talk to a person?", Reply("Let me get someone for you.", function_call=call))
    tool = {"type": "function", "name": "transfer_to_human", "parameters": {"type": "object"}}
    async with running(Script(turns=[turn])) as double, open_client(double) as client:
        await client.configure(tools=[tool], audio={"input": {"turn_detection": None}})
        await client.send_audio(caller_turn(turn.said))
        await client.send("input_audio_buffer.commit")
        await client.until("conversation.item.done")
        await client.send("response.create")
        events = await client.until("response.done")

        kinds = types(events)
        start = kinds.index("response.output_item.added", kinds.index("conversation.item.done"))
        call_events = events[start:]
        assert types(call_events)[:2] == ["response.output_item.added", "conversation.item.added"]
        assert set(types(call_events[2:-4])) == {"response.function_call_arguments.delta"}
        assert types(call_events)[-4:] == [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        added = call_events[0]["item"]
        assert (added["type"], added["status"], added["arguments"]) == (
            "function_call",
            "in_progress",
            "",
        )
        args_done = call_events[-4]
        call_id = args_done["call_id"]
        assert call_id.startswith("call_") and args_done["name"] == "transfer_to_human"
        arguments = "".join(
            e["delta"] for e in call_events if e["type"].endswith("arguments.delta")
        )
        assert arguments == args_done["arguments"] == call.arguments_json
        output = events[-1]["response"]["output"]
        assert [item["type"] for item in output] == ["message", "function_call"]
        assert output[1]["call_id"] == call_id and output[1]["status"] == "completed"

        not_a_string = {"type": "function_call_output", "call_id": call_id, "output": {"ok": True}}
        await client.send("conversation.item.create", item=not_a_string)
        error = (await client.recv())["error"]
        assert (error["code"], error["param"]) == ("invalid_type", "item.output")

        result = {"type": "function_call_output", "call_id": call_id, "output": '{"ok": true}'}
        await client.send("conversation.item.create", item=result)
        await client.send("session.update", session={"type": "realtime"})
        settled = [await client.recv() for _ in range(3)]
        # No response starts by itself: the next thing after the item is the session reply.
        assert types(settled) == [
            "conversation.item.added",
            "conversation.item.done",
            "session.updated",
        ]
        assert settled[0]["item"]["type"] == "function_call_output"

        await client.send("response.create")
        follow_up = await client.until("response.done")
        assert (
            follow_up[-1]["response"]["output"][0]["content"][0]["transcript"]
            == "Transferring you now."
        )

    session = double.sessions[0]
    assert session.function_outputs[0].call_id == call_id
    assert session.function_outputs[0].json() == {"ok": True}
    assert session.responses[-1].trigger.kind == "function_output"


async def test_response_create_while_active_and_cancel() -> None:
    slow = Pacing(chunk_ms=100, speed=1.0)
    async with running(pacing=slow) as double, open_client(double) as client:
        await client.send("response.create")
        created = (await client.until("response.created"))[-1]["response"]
        await client.send("response.create", event_id="evt_again")
        error = (await client.until("error"))[-1]["error"]
        assert error["code"] == "conversation_already_has_active_response"
        assert created["id"] in error["message"] and error["event_id"] == "evt_again"
        await client.send("response.cancel")
        done = (await client.until("response.done"))[-1]["response"]
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        await client.send("response.cancel")
        error = (await client.until("error"))[-1]["error"]
        assert error["code"] == "response_cancel_not_active"
        assert error["message"] == "Cancellation failed: no active response found"
    assert double.sessions[0].responses[0].status == "cancelled"


async def test_commit_and_clear_the_input_buffer() -> None:
    async with running() as double, open_client(double) as client:
        await client.configure(audio={"input": {"turn_detection": None}})
        await client.send_audio(silence(50))
        await client.send("input_audio_buffer.commit")
        error = (await client.recv())["error"]
        assert error["code"] == "input_audio_buffer_commit_empty"
        assert error["message"].endswith("but buffer only has 50.00ms of audio.")
        await client.send("input_audio_buffer.clear")
        assert (await client.recv())["type"] == "input_audio_buffer.cleared"
        await client.send_audio(silence(300))
        await client.send("input_audio_buffer.commit")
        committed = await client.recv()
        assert committed["type"] == "input_audio_buffer.committed"
        assert (await client.recv())["type"] == "conversation.item.added"
    assert double.sessions[0].input_audio_ms == pytest.approx(350)


async def test_pcmu_session_streams_g711_at_eight_bytes_per_ms() -> None:
    async with running() as double, open_client(double) as client:
        g711 = {"format": {"type": "audio/pcmu"}}
        await client.configure(audio={"input": g711, "output": g711})
        narrow = np.frombuffer(caller_turn(QUESTION), dtype="<i2")[::3]  # crude 8 kHz for VAD
        mulaw = encode_g711(narrow, law="ulaw")
        for start in range(0, len(mulaw), 160):
            await client.send(
                "input_audio_buffer.append",
                audio=base64.b64encode(mulaw[start : start + 160]).decode(),
            )
        events = await client.until("response.done")
    deltas = [
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    ]
    assert len(deltas[0]) == 120 * 8
    assert sum(map(len, deltas)) / 8 == pytest.approx(len(ANSWER) * 60, abs=2)
    assert double.sessions[0].input_audio_ms == pytest.approx(len(mulaw) / 8)


async def test_idle_timeout_reprompts_after_silence() -> None:
    script = Script(greeting=Reply("Hello."), idle_prompt=Reply("Are you still there?"))
    async with running(script) as double, open_client(double) as client:
        vad = {"type": "server_vad", "idle_timeout_ms": 5000}
        await client.configure(audio={"input": {"turn_detection": vad}})
        await client.send("response.create")
        greeting = await client.until("response.done")
        greeting_ms = len(audio_of(greeting)) / 48
        await client.send_audio(silence(greeting_ms + 5500), chunk_ms=100)
        events = await client.until("response.done")
    timeout = next(e for e in events if e["type"] == "input_audio_buffer.timeout_triggered")
    assert timeout["audio_start_ms"] == int(greeting_ms)
    assert timeout["audio_end_ms"] - timeout["audio_start_ms"] == pytest.approx(5000, abs=100)
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Are you still there?"
    assert double.sessions[0].responses[-1].trigger.kind == "idle_timeout"


async def test_a_plain_function_can_be_the_responder() -> None:
    answers = ["We are on Moi Avenue.", "We open at eight."]

    def respond(state: SessionState, trigger: Trigger) -> Reply:
        if trigger.kind == "greeting":
            return Reply("Karibu!")
        return Reply(answers[(state.caller_turns - 1) % len(answers)])

    async with running(respond) as double, open_client(double) as client:
        await client.send("response.create")
        greeting = await client.until("response.done")
        await client.send_audio(caller_turn("anything"))
        answer = await client.until("response.done")
    assert greeting[-1]["response"]["output"][0]["content"][0]["transcript"] == "Karibu!"
    assert answer[-1]["response"]["output"][0]["content"][0]["transcript"] == answers[0]
    assert double.sessions[0].responses[1].trigger.turn_index == 0


MALFORMED = [
    "not json",
    "[1, 2]",
    {"event_id": "evt_x"},
    {"type": 5},
    {"type": "transcription_session.update", "session": {}},
    {"type": "output_audio_buffer.clear"},
    {"type": "input_audio_buffer.append", "audio": "!!!"},
    {"type": "input_audio_buffer.append", "audio": 5},
    {"type": "conversation.item.create"},
    {"type": "conversation.item.create", "item": "hello"},
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": "%%"}],
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": "hi"},
    },
    {"type": "conversation.item.create", "item": {"id": ["x"], "type": "message", "role": "user"}},
    {
        "type": "conversation.item.create",
        "previous_item_id": ["x"],
        "item": {"type": "message", "role": "user", "content": []},
    },
    {"type": "conversation.item.truncate"},
    {"type": "conversation.item.delete", "item_id": ["x"]},
    {"type": "conversation.item.retrieve", "item_id": "item_missing"},
    {"type": "response.create", "response": "now"},
    {"type": "response.create", "response": {"modalities": ["audio"]}},
    {"type": "response.create", "response": {"conversation": "elsewhere"}},
    {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"format": "pcm16"}}},
    },
    {
        "type": "session.update",
        "session": {"type": "realtime", "output_modalities": ["audio", "text"]},
    },
    {"type": "session.update", "session": {"type": "realtime", "max_output_tokens": 5000}},
]


async def test_malformed_client_events_get_errors_and_the_session_survives() -> None:
    async with running() as double, open_client(double) as client:
        for event in MALFORMED:
            await client.ws.send(event if isinstance(event, str) else json.dumps(event))
            reply = await client.recv()
            assert reply["type"] == "error", event
            assert reply["error"]["type"] == "invalid_request_error" and reply["error"]["message"]
        await client.ws.send(b"binary")
        assert (await client.recv())["type"] == "error"
        await client.send("response.create")
        assert (await client.until("response.done"))[-1]["response"]["status"] == "completed"
    assert double.sessions[0].responses[0].status == "completed"


# -- Faults --------------------------------------------------------------------------------


async def test_session_expired_error_then_close_1001() -> None:
    async with running() as double, open_client(double) as client:
        session = await double.wait_for_session()
        session.expire(minutes=60)
        error = await client.recv()
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    message = "Your session hit the maximum duration of 60 minutes."
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "session_expired",
        "message": message,
        "param": None,
        "event_id": None,
    }
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, message)
    await session.wait_for(lambda s: s.closed)
    assert session.close_code == 1001


async def test_sessions_expire_on_their_own_at_the_limit() -> None:
    async with running(max_session_s=0.2) as double, open_client(double) as client:
        error = await client.recv()
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert error["error"]["code"] == "session_expired"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_abrupt_close_drops_the_connection_without_a_close_frame() -> None:
    async with running() as double, open_client(double) as client:
        session = await double.wait_for_session()
        session.drop()
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert closed.value.rcvd is None  # no close frame: the TCP connection just went away
    await double.wait_for(lambda d: d.connections == 0)


async def test_server_error_mid_call_keeps_the_session_open() -> None:
    async with running() as double, open_client(double) as client:
        session = await double.wait_for_session()
        session.send_error()
        error = (await client.recv())["error"]
        assert (error["type"], error["code"]) == ("server_error", "server_error")
        await client.send("response.create")
        assert (await client.until("response.done"))[-1]["response"]["status"] == "completed"


async def test_rate_limit_fails_the_next_response() -> None:
    async with running() as double, open_client(double) as client:
        session = await double.wait_for_session()
        session.rate_limit_next_response()
        await client.send("response.create")
        events = await client.until("response.done")
    assert types(events) == ["response.created", "rate_limits.updated", "response.done"]
    assert events[1]["rate_limits"][0]["remaining"] == 0
    done = events[-1]["response"]
    assert done["status"] == "failed"
    assert done["status_details"]["error"]["code"] == "rate_limit_exceeded"


async def test_never_answers_accepts_audio_but_stays_silent() -> None:
    async with (
        running(on_session=lambda s: s.never_answer()) as double,
        open_client(double) as client,
    ):
        await client.send_audio(caller_turn(QUESTION))
        await client.send("response.create")
        await client.send("session.update", session={"type": "realtime"})
        assert (await client.recv())["type"] == "session.updated"  # nothing came before it
    session = double.sessions[0]
    assert session.input_audio_ms == pytest.approx(len(caller_turn(QUESTION)) / 48)
    assert session.responses == [] and session.server_event_types() == [
        "session.created",
        "session.updated",
    ]


async def test_first_audio_delta_can_be_delayed() -> None:
    async with (
        running(on_session=lambda s: s.delay_first_audio(2.0)) as double,
        open_client(double) as client,
    ):
        await client.send("response.create")
        await client.until("response.content_part.added")
        await client.send("session.update", session={"type": "realtime"})
        # The update is answered while the first audio is still held back.
        assert (await client.recv())["type"] == "session.updated"
        await client.send("response.cancel")
        events = await client.until("response.done")
    assert "response.output_audio.delta" not in types(events)
    assert double.sessions[0].responses[0].audio_ms == 0


async def test_many_concurrent_sessions_on_one_double() -> None:
    async def one_call(double: RealtimeDouble) -> str:
        async with open_client(double) as client:
            await client.send("response.create")
            return (await client.until("response.done"))[-1]["response"]["status"]

    async with running() as double:
        statuses = await asyncio.gather(*(one_call(double) for _ in range(50)))
        await double.wait_for(lambda d: d.connections == 0)
    assert statuses == ["completed"] * 50
    assert len({s.id for s in double.sessions}) == 50


# -- Audio building blocks -----------------------------------------------------------------


def test_energy_vad_reports_frames_with_hangover() -> None:
    vad = EnergyVad(24_000, threshold=0.5, silence_duration_ms=500)
    pcm = silence(640) + synthesize_speech("Hello there") + silence(1000)
    events = vad.feed(np.frombuffer(pcm, dtype="<i2"))
    assert [e.kind for e in events] == ["start", "stop"]
    assert events[0].at_ms % 32 == 0 and 608 <= events[0].at_ms <= 672
    speech_end = 640 + len("Hello there") * 60
    assert speech_end + 500 - 100 <= events[1].at_ms <= speech_end + 500 + 64


def test_g711_round_trips_within_companding_error() -> None:
    samples = np.frombuffer(synthesize_speech("Mapokezi"), dtype="<i2")
    for law in ("ulaw", "alaw"):
        decoded = decode_g711(encode_g711(samples, law=law), law=law).astype(np.float64)
        error = decoded - samples
        snr = 10 * np.log10(np.sum(samples.astype(np.float64) ** 2) / np.sum(error**2))
        assert snr > 30, law
