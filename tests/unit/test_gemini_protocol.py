"""The sans-I/O Gemini Live protocol against message shapes of the API reference."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from doubles.gemini_live import wire as double_wire
from mapokezi.profiles import TurnDetection, load_profile_file, parse_profile
from media_node.models import gemini_protocol as wire
from media_node.models import gemini_setup
from media_node.models.base import (
    AudioDelta,
    AudioDone,
    CallerTranscript,
    FunctionCall,
    ModelError,
    ResponseDone,
    ResponseStarted,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    TranscriptDone,
)
from media_node.prompts import session_instructions, tool_specs

ROOT = Path(__file__).resolve().parents[2]


def profile(**changes: Any) -> Any:
    data = load_profile_file(ROOT / "profiles" / "example.yaml")
    data["model"] = {"provider": "gemini", "voice": "Puck"}
    return dataclasses.replace(parse_profile(data, number="+254700000100"), **changes)


def audio(pcm: bytes) -> dict[str, Any]:
    data = base64.b64encode(pcm).decode()
    return {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}


def frame(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()  # the service sends binary frames


def test_setup_message_shape() -> None:
    p = profile()
    setup = gemini_setup.setup_message(
        p,
        "Be kind.",
        tool_specs(p),
        model="gemini-2.5-flash-native-audio-preview-12-2025",
        voice="Puck",
    )["setup"]
    assert setup["model"] == "models/gemini-2.5-flash-native-audio-preview-12-2025"
    assert setup["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "speechConfig": {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}},
            "languageCode": p.language,
        },
    }
    assert setup["systemInstruction"] == {"parts": [{"text": "Be kind."}]}
    (declarations,) = [tool["functionDeclarations"] for tool in setup["tools"]]
    transfer = next(d for d in declarations if d["name"] == "transfer_to_human")
    assert transfer["parameters"]["type"] == "OBJECT"
    assert transfer["parameters"]["properties"]["reason"]["type"] == "STRING"
    assert transfer["parameters"]["properties"]["department"]["enum"] == ["appointments", "billing"]
    assert "additionalProperties" not in transfer["parameters"]
    assert setup["realtimeInputConfig"] == {
        "automaticActivityDetection": {
            "disabled": False,
            "prefixPaddingMs": 300,
            "silenceDurationMs": 500,
        },
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
    }
    assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    # The double (strict, like the service) accepts it as the first message.
    kind, body = double_wire.parse_client_message(wire.dump({"setup": setup}), setup_done=False)
    assert kind == "setup" and body == setup


def test_setup_with_handle_resumes() -> None:
    p = profile()
    setup = gemini_setup.setup_message(
        p, "x", [], model="models/gemini-3.1-flash-live-preview", voice="Kore", handle="h-1"
    )
    assert setup["setup"]["sessionResumption"] == {"handle": "h-1"}
    assert setup["setup"]["model"] == "models/gemini-3.1-flash-live-preview"


@pytest.mark.parametrize(
    ("detection", "expected"),
    [
        (TurnDetection(threshold=0.3), {"startOfSpeechSensitivity": "START_SENSITIVITY_HIGH"}),
        (TurnDetection(threshold=0.8), {"startOfSpeechSensitivity": "START_SENSITIVITY_LOW"}),
        (
            TurnDetection(type="semantic_vad", eagerness="high"),
            {"endOfSpeechSensitivity": "END_SENSITIVITY_HIGH"},
        ),
        (
            TurnDetection(type="semantic_vad", eagerness="low"),
            {"endOfSpeechSensitivity": "END_SENSITIVITY_LOW"},
        ),
        (TurnDetection(type="semantic_vad", eagerness="auto"), {}),
    ],
)
def test_activity_detection_from_turn_detection(
    detection: TurnDetection, expected: dict[str, Any]
) -> None:
    settings = gemini_setup.activity_detection(detection)
    assert settings["disabled"] is False
    for key, value in expected.items():
        assert settings[key] == value
    if detection.type == "semantic_vad":
        assert "silenceDurationMs" not in settings
        assert "startOfSpeechSensitivity" not in settings


def test_client_messages() -> None:
    pcm = bytes(range(256)) * 5
    message = json.loads(wire.audio_input(pcm))
    assert message == {
        "realtimeInput": {
            "audio": {"mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(pcm).decode()}
        }
    }
    assert json.loads(wire.user_turn("Greet the caller.")) == {
        "clientContent": {
            "turns": [{"role": "user", "parts": [{"text": "Greet the caller."}]}],
            "turnComplete": True,
        }
    }
    assert (
        json.loads(wire.user_turn("note", turn_complete=False))["clientContent"]["turnComplete"]
        is False
    )
    assert json.loads(wire.realtime_text("Hi")) == {"realtimeInput": {"text": "Hi"}}
    assert json.loads(wire.tool_response("fc-1", "end_call", {"ok": True})) == {
        "toolResponse": {
            "functionResponses": [
                {"id": "fc-1", "name": "end_call", "response": {"result": {"ok": True}}}
            ]
        }
    }
    for text in (wire.audio_input(pcm), wire.user_turn("x"), wire.realtime_text("y")):
        double_wire.parse_client_message(text, setup_done=True)


def test_setup_complete_is_ready_once() -> None:
    protocol = wire.GeminiLiveProtocol()
    assert not protocol.setup_complete
    assert protocol.receive(frame({"setupComplete": {}})) == [SessionReady()]
    assert protocol.setup_complete
    protocol.connection_opened()  # a resumed connection
    assert not protocol.setup_complete
    assert protocol.receive('{"setupComplete":{"sessionId":"s-1"}}') == []
    assert protocol.setup_complete


def test_turn_with_audio_transcripts_and_usage() -> None:
    protocol = wire.GeminiLiveProtocol()
    protocol.receive(frame({"setupComplete": {}}))
    events = protocol.receive(frame({"serverContent": {"inputTranscription": {"text": "When do"}}}))
    events += protocol.receive(
        frame({"serverContent": {"inputTranscription": {"text": " you open?"}}})
    )
    assert events == []
    events = protocol.receive(
        frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x01\x00" * 4)]}}})
    )
    assert events == [
        CallerTranscript("gemini-caller-1", "When do you open?"),
        ResponseStarted("gemini-turn-1"),
        AudioDelta("gemini-turn-1", "gemini-turn-1", b"\x01\x00" * 4),
    ]
    assert protocol.turn_open
    events = protocol.receive(
        frame({"serverContent": {"outputTranscription": {"text": "At nine."}}})
    )
    assert events == [TranscriptDelta("gemini-turn-1", "gemini-turn-1", "At nine.")]
    assert protocol.receive(frame({"serverContent": {"generationComplete": True}})) == [
        AudioDone("gemini-turn-1", "gemini-turn-1")
    ]
    events = protocol.receive(
        frame(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": {
                    "promptTokenCount": 40,
                    "responseTokenCount": 25,
                    "totalTokenCount": 65,
                    "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 40}],
                },
            }
        )
    )
    assert events == [
        TranscriptDone("gemini-turn-1", "gemini-turn-1", "At nine."),
        ResponseDone(
            "gemini-turn-1",
            "completed",
            {"input_tokens": 40, "output_tokens": 25, "total_tokens": 65},
        ),
    ]
    assert not protocol.turn_open


def test_several_fields_in_one_message_are_all_handled() -> None:
    protocol = wire.GeminiLiveProtocol()
    message = {
        "setupComplete": {},
        "serverContent": {
            "modelTurn": {"parts": [audio(b"\x02\x00" * 2), audio(b"\x03\x00" * 2)]},
            "outputTranscription": {"text": "Hello."},
            "generationComplete": True,
            "turnComplete": True,
        },
        "usageMetadata": {"totalTokenCount": 7},
        "sessionResumptionUpdate": {"newHandle": "h-9", "resumable": True},
    }
    events = protocol.receive(frame(message))
    assert [type(e) for e in events] == [
        SessionReady,
        ResponseStarted,
        AudioDelta,
        AudioDelta,
        TranscriptDelta,
        AudioDone,
        TranscriptDone,
        ResponseDone,
    ]
    assert events[-1] == ResponseDone("gemini-turn-1", "completed", {"total_tokens": 7})
    assert protocol.resumption_handle == "h-9"


def test_interrupted_is_barge_in_and_cancels_the_turn() -> None:
    protocol = wire.GeminiLiveProtocol()
    protocol.receive(frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x00\x01" * 8)]}}}))
    events = protocol.receive(frame({"serverContent": {"interrupted": True}}))
    assert events == [SpeechStarted("gemini-caller-1"), AudioDone("gemini-turn-1", "gemini-turn-1")]
    # Late audio of the interrupted turn is not played.
    assert (
        protocol.receive(frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x00\x01")]}}}))
        == []
    )
    events = protocol.receive(frame({"serverContent": {"turnComplete": True}}))
    assert events == [ResponseDone("gemini-turn-1", "cancelled", {})]
    # The caller's words that interrupted belong to the next exchange.
    protocol.receive(frame({"serverContent": {"inputTranscription": {"text": "Wait."}}}))
    events = protocol.receive(
        frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x00\x01")]}}})
    )
    # ...and the model answering is the end of that caller's speech.
    assert events[:3] == [
        SpeechStopped("gemini-caller-1"),
        CallerTranscript("gemini-caller-1", "Wait."),
        ResponseStarted("gemini-turn-2"),
    ]
    # A turn that follows no interruption reports no caller speech.
    protocol.receive(frame({"serverContent": {"turnComplete": True}}))
    events = protocol.receive(
        frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x00\x01")]}}})
    )
    assert events[0] == ResponseStarted("gemini-turn-3")


def test_tool_call_ends_the_response_and_remembers_the_name() -> None:
    protocol = wire.GeminiLiveProtocol()
    protocol.receive(frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x00\x01")]}}}))
    events = protocol.receive(
        frame(
            {
                "toolCall": {
                    "functionCalls": [
                        {"id": "fc-7", "name": "transfer_to_human", "args": {"reason": "billing"}}
                    ]
                }
            }
        )
    )
    assert events == [
        FunctionCall("gemini-turn-1", "fc-7", "transfer_to_human", {"reason": "billing"}),
        AudioDone("gemini-turn-1", "gemini-turn-1"),
        ResponseDone("gemini-turn-1", "completed", {}),
    ]
    assert protocol.tool_name("fc-7") == "transfer_to_human"
    # What the model says after the tool's answer is a new response; turnComplete ends it.
    events = protocol.receive(
        frame({"serverContent": {"outputTranscription": {"text": "Connecting."}}})
    )
    assert events[0] == ResponseStarted("gemini-turn-2")
    events = protocol.receive(frame({"serverContent": {"turnComplete": True}}))
    assert events[-1] == ResponseDone("gemini-turn-2", "completed", {})
    # A turnComplete with no turn open reports nothing.
    assert protocol.receive(frame({"serverContent": {"turnComplete": True}})) == []


def test_go_away_and_resumption_handles() -> None:
    protocol = wire.GeminiLiveProtocol()
    protocol.receive(frame({"sessionResumptionUpdate": {"newHandle": "h-1", "resumable": True}}))
    protocol.receive(frame({"sessionResumptionUpdate": {"newHandle": "", "resumable": False}}))
    assert protocol.resumption_handle == "h-1"  # not resumable mid-generation: keep the last
    assert protocol.go_away_seconds is None
    assert protocol.receive(frame({"goAway": {"timeLeft": "49.5s"}})) == []
    assert protocol.go_away_seconds == 49.5
    assert wire.parse_duration("10s") == 10.0 and wire.parse_duration("soon") is None


def test_connection_ending_mid_turn_closes_it_incomplete() -> None:
    protocol = wire.GeminiLiveProtocol()
    protocol.receive(frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x00\x01")]}}}))
    events = protocol.end_connection()
    assert events == [
        AudioDone("gemini-turn-1", "gemini-turn-1"),
        ResponseDone("gemini-turn-1", "incomplete", {}),
    ]
    assert protocol.end_connection() == []


def test_malformed_and_unknown_messages() -> None:
    protocol = wire.GeminiLiveProtocol()
    assert protocol.receive(b"not json") == []
    assert protocol.receive("[1, 2]") == []
    bad_audio = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "%%%"}}
    assert protocol.receive(frame({"serverContent": {"modelTurn": {"parts": [bad_audio]}}})) == []
    (error,) = protocol.receive(frame({"error": {"code": 429, "message": "Quota exceeded"}}))
    assert error == ModelError("429", "Quota exceeded", fatal=True)
    protocol.receive(frame({"setupComplete": {}}))
    (error,) = protocol.receive(frame({"somethingNew": {}}))
    assert isinstance(error, ModelError) and not error.fatal


def test_model_helpers() -> None:
    assert gemini_setup.is_gemini_3("gemini-3.1-flash-live-preview")
    assert gemini_setup.is_gemini_3("models/gemini-3.1-flash-live-preview")
    assert not gemini_setup.is_gemini_3("gemini-2.5-flash-native-audio-preview-12-2025")
    assert wire.usage_record({"totalTokenCount": True, "promptTokenCount": 3}) == {
        "input_tokens": 3
    }
    assert "receptionist" in session_instructions(profile())


def test_at_rest_needs_a_handle_newer_than_the_last_turn_and_no_tool_call() -> None:
    protocol = wire.GeminiLiveProtocol()
    assert not protocol.at_rest  # no handle yet
    protocol.receive(frame({"sessionResumptionUpdate": {"newHandle": "h-1", "resumable": True}}))
    assert protocol.at_rest
    protocol.receive(frame({"serverContent": {"modelTurn": {"parts": [audio(b"\x00\x01")]}}}))
    assert not protocol.at_rest
    protocol.receive(frame({"serverContent": {"turnComplete": True}}))
    assert not protocol.at_rest  # h-1 predates the turn
    protocol.receive(frame({"sessionResumptionUpdate": {"newHandle": "h-2", "resumable": True}}))
    assert protocol.at_rest and protocol.resumption_handle == "h-2"
    call = {"id": "fc-1", "name": "end_call", "args": {}}
    protocol.receive(frame({"toolCall": {"functionCalls": [call]}}))
    protocol.receive(frame({"sessionResumptionUpdate": {"newHandle": "h-3", "resumable": True}}))
    assert not protocol.at_rest and protocol.awaiting_tools == {"fc-1"}
    protocol.tool_answered("fc-1")
    assert protocol.at_rest
    protocol.receive(frame({"toolCall": {"functionCalls": [{**call, "id": "fc-2"}]}}))
    protocol.receive(frame({"toolCallCancellation": {"ids": ["fc-2"]}}))
    protocol.receive(frame({"sessionResumptionUpdate": {"newHandle": "h-4", "resumable": True}}))
    assert protocol.at_rest
