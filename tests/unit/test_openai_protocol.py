"""The sans-I/O OpenAI Realtime GA protocol: session config, commands and server events."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

from doubles.openai_realtime.config import apply_session_update, default_session
from mapokezi.profiles import TurnDetection, load_profile_file, parse_profile
from media_node.models import base as m
from media_node.models import openai_protocol as wire
from media_node.models.openai_session import realtime_url
from media_node.prompts import (
    greeting_instructions,
    session_instructions,
    tool_specs,
)

ROOT = Path(__file__).resolve().parents[2]
PROFILE = parse_profile(
    load_profile_file(ROOT / "profiles" / "example.yaml"), number="+254700000100"
)


def protocol(profile=PROFILE) -> wire.OpenAIRealtimeProtocol:
    config = wire.session_config(profile, session_instructions(profile), tool_specs(profile))
    return wire.OpenAIRealtimeProtocol(config)


def ready_protocol() -> wire.OpenAIRealtimeProtocol:
    proto = protocol()
    proto.receive(json.dumps({"type": "session.created", "session": {}}))
    proto.data_to_send()
    assert proto.receive(json.dumps({"type": "session.updated", "session": {}})) == [
        m.SessionReady()
    ]
    return proto


def test_session_update_is_ga_shaped_and_accepted_by_the_ga_validator() -> None:
    proto = protocol()
    assert proto.data_to_send() == []  # nothing before session.created
    proto.receive(json.dumps({"type": "session.created", "session": {"id": "sess_1"}}))
    (frame,) = proto.data_to_send()
    event = json.loads(frame)
    assert event["type"] == "session.update"
    session = event["session"]
    assert session["type"] == "realtime"
    assert session["output_modalities"] == ["audio"]
    assert "modalities" not in session and "voice" not in session and "temperature" not in session
    audio = session["audio"]
    assert audio["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}
    assert audio["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": True,
    }
    assert audio["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert audio["input"]["noise_reduction"] == {"type": "near_field"}
    assert session["tool_choice"] == "auto"
    transfer = next(t for t in session["tools"] if t["name"] == "transfer_to_human")
    assert transfer["type"] == "function" and "function" not in transfer
    assert transfer["parameters"]["properties"]["department"]["enum"] == ["appointments", "billing"]
    assert "Karibu Dental Clinic" in session["instructions"]
    assert "Ngong Road" in session["instructions"] and "billing" in session["instructions"]
    # The double's GA validator (the service's rejections) accepts it as is.
    applied = apply_session_update(
        default_session("sess_1", "gpt-realtime", 0), session, voice_locked=False
    )
    assert applied["audio"]["output"]["voice"] == "marin"


def test_semantic_vad_and_language_variants() -> None:
    profile = dataclasses.replace(
        PROFILE,
        language="sw-KE",
        turn_detection=TurnDetection(type="semantic_vad", eagerness="low"),
    )
    config = wire.session_config(profile, "x", tool_specs(profile))
    assert config["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "low",
        "create_response": True,
        "interrupt_response": True,
    }
    assert config["audio"]["input"]["transcription"]["language"] == "sw"


def test_ready_only_after_session_updated_once() -> None:
    proto = protocol()
    assert proto.receive('{"type":"session.updated","session":{}}') == [m.SessionReady()]
    assert proto.receive('{"type":"session.updated","session":{}}') == []


def test_client_commands() -> None:
    append = json.loads(wire.append_audio(b"\x01\x00\x02\x00"))
    assert append == {"type": "input_audio_buffer.append", "audio": "AQACAA=="}
    assert json.loads(wire.response_create()) == {"type": "response.create"}
    greet = json.loads(wire.response_create(greeting_instructions(PROFILE)))
    assert PROFILE.greeting in greet["response"]["instructions"]
    assert "Karibu Dental Clinic" in greet["response"]["instructions"]  # persona repeated
    assert json.loads(wire.response_cancel()) == {"type": "response.cancel"}
    assert json.loads(wire.truncate("item_1", 1234.9)) == {
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": 1234,
    }
    output = json.loads(wire.function_output("call_1", {"ok": True}))
    assert output["item"] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '{"ok":true}',
    }
    note = json.loads(wire.system_message("one minute left"))
    assert note["item"]["role"] == "system"
    assert note["item"]["content"] == [{"type": "input_text", "text": "one minute left"}]


def test_audio_transcript_and_response_events() -> None:
    proto = ready_protocol()
    pcm = bytes(range(10))
    events = proto.receive(json.dumps({"type": "response.created", "response": {"id": "resp_1"}}))
    assert events == [m.ResponseStarted("resp_1")]
    assert proto.active_response == "resp_1"
    delta = {
        "type": "response.output_audio.delta",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }
    assert proto.receive(json.dumps(delta)) == [m.AudioDelta("resp_1", "item_1", pcm)]
    done = {**delta, "type": "response.output_audio.done"}
    del done["delta"]
    assert proto.receive(json.dumps(done)) == [m.AudioDone("resp_1", "item_1")]
    partial = {**done, "type": "response.output_audio_transcript.delta", "delta": "H"}
    assert proto.receive(json.dumps(partial)) == [m.TranscriptDelta("resp_1", "item_1", "H")]
    transcript = {**done, "type": "response.output_audio_transcript.done", "transcript": "Hi"}
    assert proto.receive(json.dumps(transcript)) == [m.TranscriptDone("resp_1", "item_1", "Hi")]
    usage = {"input_tokens": 10, "output_tokens": 5}
    response_done = {
        "type": "response.done",
        "response": {"id": "resp_1", "status": "completed", "usage": usage, "output": []},
    }
    assert proto.receive(json.dumps(response_done)) == [
        m.ResponseDone("resp_1", "completed", usage)
    ]
    assert proto.active_response is None


def test_beta_event_names_are_not_understood() -> None:
    proto = ready_protocol()
    assert proto.receive('{"type":"response.audio.delta","delta":"AAAA","item_id":"i"}') == []
    assert proto.receive('{"type":"conversation.item.created","item":{}}') == []


def test_vad_and_caller_transcription() -> None:
    proto = ready_protocol()
    started = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 10, "item_id": "u1"}
    assert proto.receive(json.dumps(started)) == [m.SpeechStarted("u1")]
    stopped = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "u1"}
    assert proto.receive(json.dumps(stopped)) == [m.SpeechStopped("u1")]
    completed = {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": "u1",
        "content_index": 0,
        "transcript": " Hello? ",
    }
    assert proto.receive(json.dumps(completed)) == [m.CallerTranscript("u1", "Hello?")]


def test_function_call_reported_once_from_either_event() -> None:
    proto = ready_protocol()
    args = '{"reason":"wants a booking","department":"appointments"}'
    done = {
        "type": "response.function_call_arguments.done",
        "response_id": "resp_2",
        "item_id": "fc_1",
        "output_index": 0,
        "call_id": "call_9",
        "name": "transfer_to_human",
        "arguments": args,
    }
    expected = m.FunctionCall(
        "resp_2",
        "call_9",
        "transfer_to_human",
        {"reason": "wants a booking", "department": "appointments"},
    )
    assert proto.receive(json.dumps(done)) == [expected]
    item = {
        "type": "function_call",
        "call_id": "call_9",
        "name": "transfer_to_human",
        "arguments": args,
    }
    again = {"type": "response.output_item.done", "response_id": "resp_2", "item": item}
    assert proto.receive(json.dumps(again)) == []
    # Only in output_item.done (and malformed arguments): still reported, with {} arguments.
    other = {**item, "call_id": "call_10", "name": "end_call", "arguments": "{not json"}
    event = {"type": "response.output_item.done", "response_id": "resp_3", "item": other}
    assert proto.receive(json.dumps(event)) == [m.FunctionCall("resp_3", "call_10", "end_call", {})]


def test_error_classification() -> None:
    proto = protocol()
    early = {
        "type": "error",
        "error": {"type": "invalid_request_error", "code": "unknown_parameter"},
    }
    assert proto.receive(json.dumps(early))[0].fatal  # before the session is configured
    proto = ready_protocol()

    def error(code: str | None, kind: str = "invalid_request_error") -> m.ModelError:
        event = {"type": "error", "error": {"type": kind, "code": code, "message": "x"}}
        (parsed,) = proto.receive(json.dumps(event))
        return parsed

    assert not error("response_cancel_not_active").fatal
    assert not error("conversation_already_has_active_response").fatal
    assert not error(None).fatal  # truncate past the end: message only, not fatal
    assert error("session_expired").fatal
    assert error("rate_limit_exceeded").fatal
    assert error(None, "server_error").fatal


def test_malformed_frames_are_skipped() -> None:
    proto = ready_protocol()
    assert proto.receive("not json") == []
    assert proto.receive("[1,2]") == []
    bad_audio = {"type": "response.output_audio.delta", "item_id": "i", "delta": "@@@"}
    assert proto.receive(json.dumps(bad_audio)) == []


def test_realtime_url_adds_the_model() -> None:
    assert realtime_url("wss://api.openai.com/v1/realtime", "gpt-realtime") == (
        "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    )
    assert realtime_url("ws://h:1/v1/realtime?x=1", "m") == "ws://h:1/v1/realtime?x=1&model=m"
