"""POST /stream-status end to end through the real handler on a moto table."""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from mapokezi import keys, store
from serverless import cdr_jobs
from serverless.signature import sign_plain, sign_timestamped
from tests import faults
from tests.events_factory import FORM, JSON, FakeLambdaContext, form_body, http_event, json_body

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SECRET = "whsec_status_test"


@pytest.fixture
def table(calls_table: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("SAUTIKIT_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("SAUTIKIT_WEBHOOK_SECRET_ARN", raising=False)
    store.create_call(
        calls_table, call_id=UUID, caller="+254712000111", to="+254700000100", retention_days=1
    )
    return calls_table


def post(
    fields: dict[str, Any] | None = None,
    *,
    encoding: str = "form",
    b64: bool = False,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> dict[str, Any]:
    body = raw if raw is not None else form_body(fields or {})
    if raw is None and encoding == "json":
        body = json_body(fields or {})
    event = http_event(
        "/stream-status",
        body,
        content_type=JSON if encoding == "json" else FORM,
        base64=b64,
        headers=headers,
    )
    handler = importlib.import_module("stream_status.app").lambda_handler
    return handler(event, FakeLambdaContext("stream-status"))


def status_events(table: Any, call_id: str = UUID) -> list[dict[str, Any]]:
    items = table.query(KeyConditionExpression=Key(keys.PK).eq(keys.call_partition(call_id)))
    return [i for i in items["Items"] if i[keys.SK].startswith("EVENT#stream_status#")]


def stream_of(table: Any) -> dict[str, Any]:
    return store.get_call(table, UUID)["stream"]


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize("b64", [False, True])
@pytest.mark.parametrize(
    ("event_key", "value"),
    [
        ("StreamEvent", "stream-started"),
        ("streamEvent", "stream-started"),
        ("event", "stream-started"),
        ("callSessionState", "StreamStarted"),
    ],
)
def test_started_in_every_spelling(
    table: Any, encoding: str, b64: bool, event_key: str, value: str
) -> None:
    response = post(
        {"CallSid": UUID, event_key: value, "StreamSid": "MZ1"}, encoding=encoding, b64=b64
    )
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"ok": True, "duplicate": False}
    assert (stream_of(table)["state"], stream_of(table)["sid"]) == ("started", "MZ1")


@pytest.mark.parametrize("error_key", ["StreamError", "error", "reason"])
def test_error_is_recorded_with_its_text(table: Any, error_key: str) -> None:
    post({"callSid": UUID, "streamEvent": "stream-error", error_key: "upstream 502 <bad> & co"})
    stream = stream_of(table)
    assert (stream["state"], stream["error"]) == ("error", "upstream 502 <bad> & co")


def test_stopped_keeps_an_earlier_error_and_late_started_does_not_regress(table: Any) -> None:
    post({"CallSid": UUID, "StreamEvent": "stream-error", "StreamError": "boom", "StreamSid": "s"})
    post({"CallSid": UUID, "StreamEvent": "stream-stopped", "StreamSid": "s"})
    post({"CallSid": UUID, "StreamEvent": "stream-started", "StreamSid": "s"})
    assert (stream_of(table)["state"], stream_of(table)["error"]) == ("error", "boom")


def test_started_then_stopped(table: Any) -> None:
    post({"CallSid": UUID, "StreamEvent": "stream-started", "StreamSid": "s"})
    post({"CallSid": UUID, "StreamEvent": "stream-stopped", "StreamSid": "s"})
    assert stream_of(table)["state"] == "stopped"
    assert len(status_events(table)) == 2


def test_retried_delivery_is_recorded_once(table: Any) -> None:
    fields = {"CallSid": UUID, "StreamEvent": "stream-stopped", "StreamSid": "MZ9"}
    first, second = post(fields), post(fields)
    assert json.loads(first["body"])["duplicate"] is False
    assert json.loads(second["body"])["duplicate"] is True
    assert len(status_events(table)) == 1


def test_distinct_timestamps_are_distinct_events(table: Any) -> None:
    base = {"CallSid": UUID, "StreamEvent": "stream-error", "StreamSid": "MZ9"}
    post({**base, "Timestamp": "2026-11-23T10:00:00Z"})
    post({**base, "Timestamp": "2026-11-23T10:00:05Z"})
    post({**base, "Timestamp": "2026-11-23T10:00:05Z"})
    assert len(status_events(table)) == 2


def test_unknown_call_is_acknowledged_and_logged(
    table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    response = post({"CallSid": "never-seen", "StreamEvent": "stream-started"})
    assert response["statusCode"] == 200
    assert any("unknown call" in r.getMessage() for r in caplog.records)
    assert status_events(table, "never-seen") == []


@pytest.mark.parametrize("raw", [b"", b"{nope", form_body({"StreamEvent": "stream-started"})])
def test_malformed_is_400(table: Any, raw: bytes) -> None:
    response = post(raw=raw)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["reason"]


def test_signature_required_when_a_secret_is_configured(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAUTIKIT_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("VERIFY_STREAM_STATUS_SIGNATURES", raising=False)
    raw = form_body({"CallSid": UUID, "StreamEvent": "stream-started", "StreamSid": "a"})
    unsigned = post(raw=raw)
    assert unsigned["statusCode"] == 401
    assert json.loads(unsigned["body"])["error"] == "unauthorized"
    assert stream_of(table)["state"] == "pending"
    good = sign_timestamped(SECRET, raw, int(time.time()))
    assert post(raw=raw, headers={"X-Sautikit-Signature": good}, b64=True)["statusCode"] == 200
    plain = sign_plain(SECRET, raw)
    assert post(raw=raw, headers={"X-Sautikit-Signature": plain})["statusCode"] == 200
    bad = sign_plain("whsec_wrong", raw)
    response = post(raw=raw, headers={"X-Sautikit-Signature": bad})
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"] == "unauthorized"


def test_unsigned_status_accepted_only_when_switched_off(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAUTIKIT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("VERIFY_STREAM_STATUS_SIGNATURES", "false")
    raw = form_body({"CallSid": UUID, "StreamEvent": "stream-started", "StreamSid": "a"})
    assert post(raw=raw)["statusCode"] == 200
    assert stream_of(table)["state"] == "started"
    bad = sign_plain("whsec_wrong", raw)  # a signature that is sent is still checked
    assert post(raw=raw, headers={"X-Sautikit-Signature": bad})["statusCode"] == 401
    # Unsigned, a stream error is kept for the operator but cannot mark the stream failed.
    error = form_body({"CallSid": UUID, "StreamEvent": "stream-error", "error": "unsigned"})
    assert post(raw=error)["statusCode"] == 200
    assert stream_of(table)["state"] == "started"
    assert len(status_events(table)) == 2
    signed = sign_plain(SECRET, error + b"&x=1")
    assert post(raw=error + b"&x=1", headers={"X-Sautikit-Signature": signed})["statusCode"] == 200
    assert stream_of(table)["state"] == "error"


def test_forged_stream_error_cannot_turn_a_retry_into_a_fallback(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAUTIKIT_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("VERIFY_STREAM_STATUS_SIGNATURES", raising=False)
    forged = form_body({"CallSid": UUID, "StreamEvent": "stream-error", "error": "forged"})
    assert post(raw=forged)["statusCode"] == 401
    assert stream_of(table)["state"] == "pending"
    assert status_events(table) == []


@pytest.mark.parametrize("error", [faults.unreachable(), faults.throttled("GetItem")])
def test_dependency_failure_is_503_not_500(table: Any, error: Exception) -> None:
    with faults.dynamodb_failing(["GetItem"], error) as refused:
        response = post({"CallSid": UUID, "StreamEvent": "stream-started"})
    assert refused == ["GetItem"]
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "unavailable"


def test_stream_status_sends_nothing_to_sqs(table: Any) -> None:
    """template.yaml grants StreamStatusFunction no sqs:SendMessage: nothing here may need it."""
    sqs_calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        sqs_calls.append(model.name)

    cdr_jobs.reset_client()  # the next SQS client is made from the session watched here
    session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-call.sqs", record)
    try:
        for event in ("stream-started", "stream-error", "stream-stopped"):
            post({"CallSid": UUID, "StreamEvent": event, "StreamSid": "s", "StreamError": "x"})
    finally:
        session.events.unregister("before-call.sqs", record)
    assert stream_of(table)["state"] == "error"
    assert sqs_calls == []
