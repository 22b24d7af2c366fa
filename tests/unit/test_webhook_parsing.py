"""Request decoding: base64 or not, form or JSON, and every field spelling seen in the wild."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from serverless.webhook import (
    WebhookError,
    call_ids,
    header,
    parse_body,
    parse_platform_event,
    parse_stream_status,
    parse_voice_request,
    raw_body,
    stream_event_kind,
)

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
FIELDS = {"CallSid": UUID, "From": "+254712000111", "To": "+254700000100"}


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize("b64", [False, True])
def test_body_encodings_decode_to_the_same_fields(encoding: str, b64: bool) -> None:
    raw = urlencode(FIELDS).encode() if encoding == "form" else json.dumps(FIELDS).encode()
    body = base64.b64encode(raw).decode() if b64 else raw.decode()
    content_type = "application/json" if encoding == "json" else "application/x-www-form-urlencoded"
    decoded = raw_body(body, b64)
    assert decoded == raw
    assert parse_body(decoded, content_type) == FIELDS


def test_json_is_detected_without_a_content_type_and_form_is_the_default() -> None:
    assert parse_body(b' {"CallId": "x"}', None) == {"CallId": "x"}
    assert parse_body(b"CallId=x&CallId=y&Digits=", "text/plain") == {"CallId": "x", "Digits": ""}


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"", None),
        (b"   ", "application/json"),
        (b"\xff\xfe", None),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"just some words", None),
    ],
)
def test_undecodable_bodies(raw: bytes, content_type: str | None) -> None:
    with pytest.raises(WebhookError):
        parse_body(raw, content_type)


def test_bad_base64_is_a_webhook_error() -> None:
    with pytest.raises(WebhookError):
        raw_body("@@@not-base64@@@", True)
    assert raw_body(None, True) == b""


@pytest.mark.parametrize("name", ["CallSid", "CallId", "callSid", "callId", "call_sid", "call_id"])
def test_each_call_id_spelling(name: str) -> None:
    assert parse_voice_request({name: "CA-1", "To": "+254700000100"}).call_id == "CA-1"


def test_session_id_alone_is_the_call_id() -> None:
    request = parse_voice_request({"sessionId": "HD_0a8d5911d055"})
    assert (request.call_id, request.session_id) == ("HD_0a8d5911d055", "HD_0a8d5911d055")


@pytest.mark.parametrize(
    "fields",
    [
        {"sessionId": "HD_0a8d5911d055", "CallSid": UUID},
        {"CallId": "HD_0a8d5911d055", "callSid": UUID},
        {"callSid": "CA-short", "CallId": UUID, "sessionId": "HD_0a8d5911d055"},
    ],
)
def test_uuid_is_preferred_and_session_id_kept(fields: dict[str, str]) -> None:
    assert call_ids(fields) == (UUID, "HD_0a8d5911d055")


@pytest.mark.parametrize(
    ("caller_key", "to_key"),
    [("From", "To"), ("from", "to"), ("callerNumber", "destinationNumber")],
)
def test_caller_and_dialled_number_spellings(caller_key: str, to_key: str) -> None:
    request = parse_voice_request({"CallSid": "c", caller_key: "+2547", to_key: "+2540"})
    assert (request.caller, request.to) == ("+2547", "+2540")


def test_lifecycle_fields() -> None:
    request = parse_voice_request(
        {
            "callSid": "c",
            "callSessionState": "Completed",
            "durationInSeconds": "42",
            "isActive": "false",
            "direction": "inbound",
        }
    )
    assert (request.state, request.duration_seconds, request.is_active) == ("Completed", 42, False)


def test_json_scalars_become_text_and_nested_values_are_ignored() -> None:
    request = parse_voice_request(
        {"call_id": 12345, "isActive": True, "durationInSeconds": 7, "To": {"x": 1}}
    )
    assert (request.call_id, request.is_active, request.duration_seconds) == ("12345", True, 7)
    assert request.to is None


@pytest.mark.parametrize("fields", [{}, {"From": "+2547"}, {"CallSid": ""}, {"CallSid": "a b<c>"}])
def test_no_usable_call_id(fields: dict[str, str]) -> None:
    with pytest.raises(WebhookError):
        parse_voice_request(fields)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("stream-started", "started"),
        ("StreamStarted", "started"),
        ("stream-stopped", "stopped"),
        ("StreamStopped", "stopped"),
        ("stream-error", "error"),
        ("StreamError", "error"),
        ("StreamFailed", "error"),
        ("Completed", None),
        ("", None),
        (None, None),
    ],
)
def test_stream_event_names(value: str | None, kind: str | None) -> None:
    assert stream_event_kind(value) == kind


@pytest.mark.parametrize("event_key", ["StreamEvent", "streamEvent", "event", "callSessionState"])
@pytest.mark.parametrize("sid_key", ["streamSid", "StreamSid"])
@pytest.mark.parametrize("error_key", ["StreamError", "error", "reason"])
def test_stream_status_spellings(event_key: str, sid_key: str, error_key: str) -> None:
    status = parse_stream_status(
        {"CallSid": UUID, event_key: "stream-error", sid_key: "MZ1", error_key: "ws 502"}
    )
    assert (status.call_id, status.event, status.stream_sid, status.error) == (
        UUID,
        "error",
        "MZ1",
        "ws 502",
    )


def test_stream_status_dedupe_key_includes_timestamp_when_given() -> None:
    base = {"callSid": "c", "StreamEvent": "stream-stopped", "StreamSid": "MZ1"}
    plain = parse_stream_status(base).dedupe_key()
    stamped = parse_stream_status({**base, "Timestamp": "2026-11-23T10:00:00Z"}).dedupe_key()
    assert plain == "stopped#MZ1"
    assert stamped == "stopped#MZ1#2026-11-23T10:00:00Z"
    assert parse_stream_status(base).dedupe_key() == plain


def test_platform_event_envelopes() -> None:
    documented = parse_platform_event(
        {
            "kind": "call.completed",
            "event_id": "01JB3K5Z",
            "workspace_id": "w",
            "occurred_at": "2026-11-23T10:00:00Z",
            "data": {"call_id": UUID, "duration_seconds": 61},
        }
    )
    assert (documented.kind, documented.event_id, documented.call_id) == (
        "call.completed",
        "01JB3K5Z",
        UUID,
    )
    guide = parse_platform_event(
        {"event_kind": "call.recording.ready", "event_id": "01JB", "payload": {"call_id": UUID}}
    )
    assert (guide.kind, guide.call_id, guide.data["call_id"]) == (
        "call.recording.ready",
        UUID,
        UUID,
    )


@pytest.mark.parametrize(
    "body", [{"event_id": "e"}, {"kind": "call.started"}, {"kind": "x", "event_id": "a b"}]
)
def test_platform_event_needs_kind_and_id(body: dict[str, str]) -> None:
    with pytest.raises(WebhookError):
        parse_platform_event(body)


def test_header_lookup_is_case_insensitive() -> None:
    assert header({"x-sautikit-signature": "s"}, "X-Sautikit-Signature") == "s"
    assert header(None, "x") is None
