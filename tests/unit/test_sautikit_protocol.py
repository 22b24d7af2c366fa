"""Sautikit media-socket helpers: lenient metadata, the chipmunk guard, text frames, commands."""

from __future__ import annotations

import json

import pytest

from media_node.sautikit_protocol import (
    StreamMetadata,
    check_metadata,
    classify_text_frame,
    kill_audio,
    parse_metadata,
)


def test_jambonz_style_metadata() -> None:
    frame = json.dumps(
        {
            "sampleRate": 16000,
            "mixType": "mono",
            "callSid": "CA-1",
            "from": "+254700000001",
            "to": "+254200000002",
            "direction": "inbound",
        }
    )

    meta = parse_metadata(frame)

    assert meta.call_id == "CA-1"
    assert meta.call_id_field == "callSid"
    assert meta.from_number == "+254700000001"
    assert meta.to_number == "+254200000002"
    assert meta.sample_rate == 16000
    assert meta.channels == 1
    assert meta.mix_type == "mono"
    assert meta.raw is not None and meta.raw["direction"] == "inbound"
    assert meta.problems == []
    assert check_metadata(meta, 16000, 1) == []


def test_nested_metadata_and_call_info() -> None:
    frame = json.dumps(
        {
            "streamSid": "MZ-9",
            "metadata": {"callSid": "CA-2", "samplingRate": "8000"},
            "callInfo": {"From": "+254711", "To": "+254722"},
        }
    )

    meta = parse_metadata(frame)

    assert meta.call_id == "CA-2"  # a call id beats the stream id
    assert meta.call_id_field == "metadata.callSid"
    assert meta.stream_id == "MZ-9"
    assert (meta.from_number, meta.to_number) == ("+254711", "+254722")
    assert meta.sample_rate == 8000
    assert meta.channels is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("CallSid", "x"), ("call_sid", "x"), ("callId", "x"), ("sessionId", "x"), ("callSid", 42)],
)
def test_call_id_spellings(key: str, value: object) -> None:
    assert parse_metadata(json.dumps({key: value})).call_id == str(value)


def test_stream_id_is_the_last_resort_for_the_call_id() -> None:
    meta = parse_metadata('{"streamSid": "MZ-1"}')

    assert (meta.call_id, meta.call_id_field) == ("MZ-1", "streamSid")


@pytest.mark.parametrize(
    "key", ["sampleRate", "sample_rate", "samplingRate", "outputSamplingRate", "rate"]
)
def test_sample_rate_spellings(key: str) -> None:
    assert parse_metadata(json.dumps({key: 16000})).sample_rate == 16000


def test_headers_as_a_json_string() -> None:
    frame = json.dumps({"headers": json.dumps({"tenant": "acme", "call_id": "ours-7"})})

    meta = parse_metadata(frame)

    assert meta.headers == {"tenant": "acme", "call_id": "ours-7"}
    assert meta.call_id == "ours-7"
    assert meta.call_id_field == "headers.call_id"
    assert meta.problems == []


def test_headers_as_an_object() -> None:
    meta = parse_metadata('{"callSid": "CA", "headers": {"tenant": "acme"}}')

    assert meta.headers == {"tenant": "acme"}


def test_headers_string_that_is_not_json_is_a_problem_not_an_error() -> None:
    meta = parse_metadata('{"callSid": "CA", "headers": "tenant=acme"}')

    assert meta.call_id == "CA"
    assert meta.headers == {}
    assert any("headers" in problem for problem in meta.problems)


@pytest.mark.parametrize(
    ("mix_type", "channels"), [("mono", 1), ("mixed", 1), ("stereo", 2), ("STEREO", 2)]
)
def test_mix_type_gives_the_channel_count(mix_type: str, channels: int) -> None:
    meta = parse_metadata(json.dumps({"mixType": mix_type}))

    assert meta.channels == channels
    assert meta.problems == []


def test_contradictory_and_unknown_channel_information_is_recorded() -> None:
    contradictory = parse_metadata('{"mixType": "stereo", "channels": 1}')
    unknown = parse_metadata('{"mixType": "surround"}')

    assert contradictory.channels == 1
    assert any("contradicts" in problem for problem in contradictory.problems)
    assert unknown.channels is None
    assert any("surround" in problem for problem in unknown.problems)


@pytest.mark.parametrize(
    "frame",
    [
        "not json at all",
        "{broken",
        "",
        "[1, 2, 3]",
        "null",
        '"just a string"',
        b"\xff\xfe\x00",
        "[" * 100_000,
    ],
)
def test_garbage_never_raises(frame: str | bytes) -> None:
    meta = parse_metadata(frame)

    assert meta.call_id is None
    assert meta.raw is None
    assert len(meta.problems) == 1


@pytest.mark.parametrize(
    "rate", ["sixteen thousand", 0, -16000, 16000.5, True, None, [16000], "NaN", 10**9]
)
def test_implausible_sample_rates_are_problems(rate: object) -> None:
    meta = parse_metadata(json.dumps({"callSid": "CA", "sampleRate": rate}))

    assert meta.call_id == "CA"
    assert meta.sample_rate is None
    assert meta.problems


def test_odd_nested_types_are_problems() -> None:
    meta = parse_metadata('{"metadata": [1], "callInfo": 5, "callSid": "CA"}')

    assert meta.call_id == "CA"
    assert len(meta.problems) == 2


def test_chipmunk_guard_reports_a_rate_mismatch() -> None:
    meta = parse_metadata('{"sampleRate": 8000, "mixType": "mono"}')

    mismatches = check_metadata(meta, 16000, 1)

    assert len(mismatches) == 1
    assert "8000 Hz" in mismatches[0]
    assert "16000 Hz" in mismatches[0]
    assert "2.00x speed" in mismatches[0]


def test_chipmunk_guard_reports_stereo_when_mono_is_expected() -> None:
    meta = parse_metadata('{"sampleRate": 16000, "mixType": "stereo"}')

    mismatches = check_metadata(meta, 16000, 1)

    assert len(mismatches) == 1
    assert "2 channel" in mismatches[0]
    assert "stereo" in mismatches[0]


def test_chipmunk_guard_is_silent_when_the_metadata_does_not_say() -> None:
    assert check_metadata(StreamMetadata(), 16000, 1) == []
    assert check_metadata(parse_metadata("garbage"), 8000, 2) == []


@pytest.mark.parametrize(
    ("frame", "kind", "event"),
    [
        ('{"type": "playDone"}', "json", "playDone"),
        ('{"event": "dtmf", "digit": "5"}', "json", "dtmf"),
        ('{"type": 7}', "json", None),
        ('{"x": 1}', "json", None),
        ("[1]", "json-other", None),
        ("hello", "text", None),
        (b"\xff", "text", None),
        ("", "text", None),
    ],
)
def test_text_frames_are_classified(frame: str | bytes, kind: str, event: str | None) -> None:
    classified = classify_text_frame(frame)

    assert classified.kind == kind
    assert classified.event == event
    assert (classified.data is not None) == (kind == "json")
    assert isinstance(classified.text, str)


def test_commands_are_exact() -> None:
    assert kill_audio() == '{"type":"killAudio"}'
