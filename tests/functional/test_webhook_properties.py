"""Property tests: whatever the body, the webhooks answer a 4xx with a reason, or (on /voice) valid
XML; never an exception, never a 5xx. Decoders are checked on their own, handlers end to end
against moto. Examples are bounded so the whole file runs in a few seconds."""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serverless import bounds
from serverless.webhook import (
    WebhookError,
    parse_body,
    parse_platform_event,
    parse_stream_status,
    parse_voice_request,
    raw_body,
)
from tests.events_factory import FORM, JSON, FakeLambdaContext, http_event
from tests.functional.test_voice_webhook import NUMBER, UUID
from tests.functional.test_voice_webhook import table as table  # noqa: F401 (fixture)
from tests.functional.test_voice_webhook import voice_app as voice_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KNOWN_FIELDS = [
    "CallSid",
    "CallId",
    "callSid",
    "sessionId",
    "From",
    "To",
    "callerNumber",
    "destinationNumber",
    "callSessionState",
    "isActive",
    "durationInSeconds",
    "DialCallStatus",
    "StreamEvent",
    "StreamSid",
    "error",
    "Timestamp",
    "kind",
    "event_id",
    "data",
]
STATES = ["", "Completed", "StreamStarted", "StreamStopped", "StreamError", "DialCompleted"]

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from([UUID, NUMBER, "+254712000111", "HD_0a8d5911d055", *STATES, "true", "false"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_FIELDS), st.text(max_size=20)), json_values, max_size=12
)
form_fields = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_FIELDS), st.text(max_size=20)), texts, max_size=12
)


def _encoded_bodies() -> st.SearchStrategy[tuple[bytes, str]]:
    as_json = json_objects.map(lambda d: (json.dumps(d).encode(), JSON))
    as_form = form_fields.map(lambda d: (urlencode(d).encode(), FORM))
    as_bytes = st.binary(max_size=400).map(lambda b: (b, FORM))
    nested = st.integers(min_value=1, max_value=5000).map(
        lambda n: (b'{"CallSid": "x", "a": ' + b"[" * n + b"]" * n + b"}", JSON)
    )
    return st.one_of(as_json, as_form, as_bytes, nested)


bodies = _encoded_bodies()


@FAST
@given(body=bodies, b64=st.booleans())
def test_decoders_raise_only_webhook_errors(body: tuple[bytes, str], b64: bool) -> None:
    raw, content_type = body
    sent = base64.b64encode(raw).decode() if b64 else raw.decode("utf-8", "replace")
    try:
        fields = parse_body(raw_body(sent, b64), content_type)
    except WebhookError:
        return
    for parse in (parse_voice_request, parse_stream_status, parse_platform_event):
        try:
            decoded = parse(fields)
        except WebhookError:
            continue
        stored = decoded.fields if hasattr(decoded, "fields") else decoded.data
        assert len(json.dumps(stored, default=str)) <= 4 * bounds.MAX_STORED_BYTES


def _handler_response(app: str, path: str, raw: bytes, content_type: str, b64: bool) -> Any:
    event = http_event(path, raw, content_type=content_type, base64=True)
    if not b64:  # as API Gateway passes text bodies (only valid UTF-8 can arrive this way)
        with contextlib.suppress(UnicodeDecodeError):
            event["body"], event["isBase64Encoded"] = raw.decode("utf-8"), False
    return importlib.import_module(app).lambda_handler(event, FakeLambdaContext(app))


def _assert_4xx_with_reason(response: dict[str, Any]) -> None:
    assert 400 <= response["statusCode"] < 500, response
    assert json.loads(response["body"])["reason"]


@FAST
@given(body=bodies, b64=st.booleans())
def test_voice_answers_4xx_or_valid_xml(table: Any, body: tuple[bytes, str], b64: bool) -> None:
    response = _handler_response("voice.app", "/voice", *body, b64)
    if response["statusCode"] == 200:
        assert response["headers"]["Content-Type"] == "application/xml"
        assert ET.fromstring(response["body"]).tag == "Response"
    else:
        _assert_4xx_with_reason(response)


@FAST
@given(fields=json_objects, state=st.sampled_from(STATES), encoding=st.sampled_from(["j", "f"]))
def test_voice_calls_with_hostile_extra_fields_get_usable_xml(
    table: Any, fields: dict[str, Any], state: str, encoding: str
) -> None:
    call = {**fields, "CallSid": UUID, "From": fields.get("From", "+254712000111"), "To": NUMBER}
    if state:
        call["callSessionState"] = state
    if encoding == "j":
        raw, content_type = json.dumps(call).encode(), JSON
    else:
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in call.items()}
        raw, content_type = urlencode(flat).encode(), FORM
    response = _handler_response("voice.app", "/voice", raw, content_type, b64=True)
    assert response["statusCode"] == 200, response
    ET.fromstring(response["body"])


@FAST
@given(body=bodies, b64=st.booleans())
def test_stream_status_answers_2xx_or_4xx(table: Any, body: tuple[bytes, str], b64: bool) -> None:
    response = _handler_response("stream_status.app", "/stream-status", *body, b64)
    if response["statusCode"] != 200:
        _assert_4xx_with_reason(response)


@FAST
@given(body=bodies, b64=st.booleans())
def test_events_answer_2xx_or_4xx(table: Any, body: tuple[bytes, str], b64: bool) -> None:
    raw, _ = body
    response = _handler_response("events.app", "/events", raw, JSON, b64)
    if response["statusCode"] != 200:
        _assert_4xx_with_reason(response)
