"""Decoding of Sautikit webhook requests (sans I/O): body encoding, content type, field names.

Sautikit does not document how its webhooks are encoded nor the exact field names, and
integrators have seen several spellings, so everything here is lenient about form vs JSON,
base64 (API Gateway encodes bodies it does not consider text) and the spelling of each field,
and strict only about what a request cannot do without (a call id; the dialled number on the
first POST of a call).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from serverless.bounds import (
    MAX_BODY_BYTES,
    MAX_FORM_FIELDS,
    MAX_JSON_DEPTH,
    clean_text,
    json_too_deep,
    storable_fields,
)

CALL_ID_FIELDS = ("CallSid", "CallId", "callSid", "callId", "call_sid", "call_id", "sessionId")
SESSION_ID_FIELDS = ("sessionId", "session_id", "SessionId")
CALLER_FIELDS = ("From", "from", "callerNumber", "caller")
DIALLED_FIELDS = ("To", "to", "destinationNumber", "clientDialedNumber")
STATE_FIELDS = ("callSessionState", "CallSessionState", "call_session_state")
DURATION_FIELDS = ("durationInSeconds", "duration_seconds", "Duration", "duration")
ACTIVE_FIELDS = ("isActive", "is_active", "IsActive")
DIAL_STATUS_FIELDS = (
    "DialCallStatus",
    "dialCallStatus",
    "DialStatus",
    "dialStatus",
    "CallStatus",
    "callStatus",
    "status",
    "hangupCause",
    "HangupCause",
    "reason",
)
STREAM_EVENT_FIELDS = ("StreamEvent", "streamEvent", "event", "callSessionState", "streamStatus")
STREAM_SID_FIELDS = ("StreamSid", "streamSid", "stream_sid", "StreamId", "streamId")
STREAM_ERROR_FIELDS = ("StreamError", "streamError", "error", "reason", "ErrorMessage")
STREAM_NAME_FIELDS = ("StreamName", "streamName", "name")
TIMESTAMP_FIELDS = ("Timestamp", "timestamp", "occurred_at", "time")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MAX_ID_LENGTH = 128
_ID_CHARS = re.compile(r"^[\w.:@+\-]+$")
#: Longest value read from any field (a state, a status, an error text).
MAX_FIELD_LENGTH = 256
#: Longest caller or dialled number kept; they key indexes and profile lookups.
MAX_NUMBER_LENGTH = 64
_NOT_NUMBER_CHARS = re.compile(r"[^\w+*#.:@\-]")


class WebhookError(ValueError):
    """The request cannot be understood; the message is safe to return to the sender."""


class BodyTooLargeError(WebhookError):
    """The body is larger than any webhook of the platform (answered 413)."""


def raw_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The request body as the sender sent it (undoing API Gateway's base64 if applied).

    Raises:
        BodyTooLargeError: over :data:`~serverless.bounds.MAX_BODY_BYTES`.
        WebhookError: the body claims base64 but is not.
    """
    if body is None:
        return b""
    # Checked on the encoded length first, so an oversized body is never decoded.
    if len(body) > (MAX_BODY_BYTES * 4 // 3 + 4 if is_base64_encoded else MAX_BODY_BYTES * 4):
        raise BodyTooLargeError(f"body is larger than {MAX_BODY_BYTES} bytes")
    if not is_base64_encoded:
        raw = body.encode("utf-8", "surrogatepass")
    else:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError("body is marked base64 but cannot be decoded") from None
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body is larger than {MAX_BODY_BYTES} bytes")
    return raw


def parse_body(raw: bytes, content_type: str | None = None) -> dict[str, Any]:
    """Decode a JSON object or a form-encoded body into a mapping.

    JSON is used when the content type says so or the body starts with ``{``; anything else is
    read as ``application/x-www-form-urlencoded`` (first value of each repeated key).

    Raises:
        BodyTooLargeError: over :data:`~serverless.bounds.MAX_BODY_BYTES`.
        WebhookError: empty, not UTF-8, malformed or too deeply nested JSON, JSON that is not
            an object, or more than :data:`~serverless.bounds.MAX_FORM_FIELDS` form fields.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookError("body is not UTF-8 text") from None
    stripped = text.strip()
    if not stripped:
        raise WebhookError("empty body")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.endswith("json") or stripped.startswith("{"):
        if json_too_deep(stripped):
            raise WebhookError(f"JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise WebhookError(f"body is not valid JSON ({exc.msg})") from None
        except ValueError as exc:  # e.g. an integer beyond Python's digit limit
            raise WebhookError(f"body is not usable JSON ({str(exc)[:100]})") from None
        except RecursionError:  # the depth check above should make this unreachable
            raise WebhookError("JSON body nests too deeply") from None
        if not isinstance(data, dict):
            raise WebhookError("JSON body must be an object")
        return data
    try:
        pairs = parse_qsl(
            stripped,
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:
        raise WebhookError(
            f"body is neither JSON nor form-encoded (with at most {MAX_FORM_FIELDS} fields)"
        ) from None
    fields: dict[str, Any] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def first(
    fields: Mapping[str, Any], names: tuple[str, ...], limit: int = MAX_FIELD_LENGTH
) -> str | None:
    """The first non-empty value among ``names``, as valid text of at most ``limit`` characters
    (scalars only)."""
    for name in names:
        value = fields.get(name)
        if value is None or isinstance(value, dict | list):
            continue
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if isinstance(value, int) and abs(value) >= 10**limit:
            continue  # str() of a huge int is slow and useless as a field value
        text = clean_text(str(value).strip(), limit).strip()
        if text:
            return text
    return None


def phone_number(fields: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """A caller or dialled number: cut to :data:`MAX_NUMBER_LENGTH`, odd characters dropped.

    Numbers key the call indexes and the profile lookup, whose keys DynamoDB caps at 2 KB, so
    whatever a sender puts there must stay short; an unusual value is kept readable, not refused.
    """
    value = first(fields, names, MAX_FIELD_LENGTH)
    if value is None:
        return None
    return _NOT_NUMBER_CHARS.sub("", value)[:MAX_NUMBER_LENGTH] or None


def _valid_id(value: str) -> bool:
    return len(value) <= _MAX_ID_LENGTH and bool(_ID_CHARS.match(value))


def call_ids(fields: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The call id to key the call on, and the PBX session id (``HD_…``) if present.

    A call has a Sautikit UUID and a PBX session id; when both appear, the UUID wins (it is
    what the calls API and ``events_url`` use), and the session id is kept alongside.
    """
    values = [v for v in (first(fields, (name,)) for name in CALL_ID_FIELDS) if v]
    values = [v for v in values if _valid_id(v)]
    session = next((v for v in values if v.startswith("HD_")), None)
    if session is None:
        session = first(fields, SESSION_ID_FIELDS)
        session = session if session and _valid_id(session) else None
    uuid_like = next((v for v in values if _UUID.match(v)), None)
    return uuid_like or (values[0] if values else None), session


def _optional_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _optional_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


@dataclass(frozen=True)
class VoiceRequest:
    """One POST of the voice webhook, with the spellings resolved."""

    call_id: str
    session_id: str | None = None
    caller: str | None = None
    to: str | None = None
    state: str | None = None
    duration_seconds: int | None = None
    is_active: bool | None = None
    dial_statuses: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)


def parse_voice_request(fields: Mapping[str, Any]) -> VoiceRequest:
    """Read a voice webhook POST.

    Raises:
        WebhookError: no usable call id.
    """
    call_id, session_id = call_ids(fields)
    if not call_id:
        raise WebhookError("no call id (expected CallSid, CallId, callSid, call_id or sessionId)")
    statuses = tuple(
        v for v in (first(fields, (name,)) for name in DIAL_STATUS_FIELDS) if v is not None
    )
    return VoiceRequest(
        call_id=call_id,
        session_id=session_id,
        caller=phone_number(fields, CALLER_FIELDS),
        to=phone_number(fields, DIALLED_FIELDS),
        state=first(fields, STATE_FIELDS),
        duration_seconds=_optional_int(first(fields, DURATION_FIELDS)),
        is_active=_optional_bool(first(fields, ACTIVE_FIELDS)),
        dial_statuses=statuses,
        fields=storable_fields(fields),
    )


STREAM_STARTED = "started"
STREAM_STOPPED = "stopped"
STREAM_ERROR = "error"


def stream_event_kind(value: str | None) -> str | None:
    """Normalise a stream event name (``stream-started``, ``StreamStarted``, …).

    Returns:
        ``started``, ``stopped``, ``error``, or None when the value is not a stream event.
    """
    if not value:
        return None
    squashed = re.sub(r"[^a-z]", "", value.lower())
    if "error" in squashed or "fail" in squashed:
        return STREAM_ERROR
    if squashed.endswith(("started", "start")):
        return STREAM_STARTED
    if squashed.endswith(("stopped", "stop", "ended", "closed")):
        return STREAM_STOPPED
    return None


@dataclass(frozen=True)
class StreamStatus:
    """One stream status callback."""

    call_id: str
    event: str | None
    raw_event: str | None
    stream_sid: str | None = None
    error: str | None = None
    name: str | None = None
    timestamp: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def dedupe_key(self) -> str:
        """Same delivery retried → same key; distinct events of one call → distinct keys."""
        parts = [self.event or self.raw_event or "unknown", self.stream_sid or "-"]
        if self.timestamp:
            parts.append(self.timestamp)
        return "#".join(parts)


def parse_stream_status(fields: Mapping[str, Any]) -> StreamStatus:
    """Read a stream status callback.

    Raises:
        WebhookError: no usable call id.
    """
    call_id, _session = call_ids(fields)
    if not call_id:
        raise WebhookError("no call id (expected CallSid, CallId, callSid, call_id or sessionId)")
    raw_event = first(fields, STREAM_EVENT_FIELDS)
    return StreamStatus(
        call_id=call_id,
        event=stream_event_kind(raw_event),
        raw_event=raw_event,
        stream_sid=first(fields, STREAM_SID_FIELDS),
        error=first(fields, STREAM_ERROR_FIELDS),
        name=first(fields, STREAM_NAME_FIELDS),
        timestamp=first(fields, TIMESTAMP_FIELDS),
        fields=storable_fields(fields),
    )


@dataclass(frozen=True)
class PlatformEvent:
    """One delivery to the number's ``events_url``, either envelope."""

    kind: str
    event_id: str
    call_id: str | None
    occurred_at: str | None
    data: Mapping[str, Any]
    workspace_id: str | None = None


def parse_platform_event(body: Mapping[str, Any]) -> PlatformEvent:
    """Read ``{kind, event_id, workspace_id, occurred_at, data}`` or the recording guide's
    ``{event_kind, event_id, payload}``.

    Raises:
        WebhookError: no kind or no event id.
    """
    kind = first(body, ("kind", "event_kind", "type"))
    event_id = first(body, ("event_id", "id", "eventId"))
    if not kind:
        raise WebhookError("event has no kind (expected kind or event_kind)")
    if not event_id or not _valid_id(event_id):
        raise WebhookError("event has no usable event_id")
    data = body.get("data")
    if not isinstance(data, Mapping):
        data = body.get("payload")
    if not isinstance(data, Mapping):
        data = {}
    call_id = first(data, ("call_id", "callId", "CallSid", "call_sid"))
    return PlatformEvent(
        kind=kind,
        event_id=event_id,
        call_id=call_id if call_id and _valid_id(call_id) else None,
        occurred_at=first(body, ("occurred_at",)) or first(data, ("occurred_at",)),
        data=storable_fields(data),
        workspace_id=first(body, ("workspace_id",)),
    )


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup (HTTP API lower-cases names; other paths may not)."""
    if not headers:
        return None
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)
