"""POST /events end to end: envelopes, dedupe on event_id, hangups, signatures."""

from __future__ import annotations

import importlib
import json
import os
import time
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from mapokezi import keys, store
from serverless import cdr_jobs
from serverless.signature import sign_plain, sign_timestamped
from tests.events_factory import JSON, FakeLambdaContext, http_event, json_body

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SECRET = "whsec_events_test"
NUMBER = "+254700000100"


@pytest.fixture
def table(calls_table: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("SAUTIKIT_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("SAUTIKIT_WEBHOOK_SECRET_ARN", raising=False)
    monkeypatch.setenv("CDR_DELAY_SECONDS", "0")
    cdr_jobs.reset_client()
    monkeypatch.setenv(
        "CDR_QUEUE_URL", boto3.client("sqs").create_queue(QueueName="cdr")["QueueUrl"]
    )
    store.create_call(
        calls_table, call_id=UUID, caller="+254712000111", to="+254700000100", retention_days=1
    )
    yield calls_table
    cdr_jobs.reset_client()


def envelope(kind: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "event_id": event_id,
        "workspace_id": "4c2a1d7e-0000-4000-8000-000000000001",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {"call_id": UUID, "from": "+254712000111", "to": "+254700000100", **data},
    }


def post(
    payload: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    b64: bool = False,
) -> dict[str, Any]:
    body = raw if raw is not None else json_body(payload)
    event = http_event("/events", body, content_type=JSON, headers=headers, base64=b64)
    handler = importlib.import_module("events.app").lambda_handler
    return handler(event, FakeLambdaContext("events"))


def recorded(table: Any, call_id: str = UUID) -> list[dict[str, Any]]:
    items = table.query(KeyConditionExpression=Key(keys.PK).eq(keys.call_partition(call_id)))
    return [i for i in items["Items"] if i[keys.SK].startswith("EVENT#events#")]


def queued_jobs() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    response = sqs.receive_message(QueueUrl=os.environ["CDR_QUEUE_URL"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def test_call_completed_ends_the_call_and_queues_the_cdr(table: Any) -> None:
    response = post(envelope("call.completed", "01JB0001", duration_seconds=61))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"ok": True, "event_id": "01JB0001", "duplicate": False}
    call = store.get_call(table, UUID)
    assert (call["status"], call["end_reason"], call["platform_duration_seconds"]) == (
        "ended",
        "call.completed",
        61,
    )
    assert [(j["call_id"], j["attempt"]) for j in queued_jobs()] == [(UUID, 0)]


def test_call_failed_ends_the_call_with_its_reason(table: Any) -> None:
    post(envelope("call.failed", "01JB0002", status="failed", failure_reason="no_answer"))
    call = store.get_call(table, UUID)
    assert (call["status"], call["end_reason"]) == ("ended", "call.failed:no_answer")
    assert len(queued_jobs()) == 1


def test_retried_event_is_stored_once_and_acts_once(table: Any) -> None:
    first = post(envelope("call.completed", "01JB0003"))
    second = post(envelope("call.completed", "01JB0003"))
    assert json.loads(second["body"])["duplicate"] is True and first["statusCode"] == 200
    assert len(recorded(table)) == 1
    assert len(queued_jobs()) == 1


def test_hangup_already_seen_on_voice_is_not_queued_twice(table: Any) -> None:
    cdr_jobs.finish_call(table, UUID, reason="completed", delay_seconds=0)
    post(envelope("call.completed", "01JB0004"))
    assert len(queued_jobs()) == 1
    assert store.get_call(table, UUID)["end_reason"] == "completed"


def test_other_events_are_recorded_without_ending_the_call(table: Any) -> None:
    post(envelope("call.started", "01JB0005", status="started"))
    post(envelope("call.answered", "01JB0006", status="answered"))
    assert store.get_call(table, UUID)["status"] == "active"
    stored = sorted(i["payload"]["kind"] for i in recorded(table))
    assert stored == ["call.answered", "call.started"]
    assert queued_jobs() == []


def test_recording_guide_envelope(table: Any) -> None:
    payload = {
        "event_kind": "call.recording.ready",
        "event_id": "01JB0007",
        "payload": {"call_id": UUID, "recording_duration_seconds": 60, "occurred_at": "x"},
    }
    assert post(payload)["statusCode"] == 200
    [item] = recorded(table)
    assert item["payload"]["kind"] == "call.recording.ready"
    assert item["payload"]["data"]["recording_duration_seconds"] == 60


def test_completed_before_any_voice_post_ends_a_new_incomplete_record(table: Any) -> None:
    data = {"call_id": "other-call", "from": "+254712000222", "to": "+254700000100"}
    payload = envelope("call.completed", "01JB0008") | {"data": data}
    response = post(payload)
    assert response["statusCode"] == 200
    assert len(recorded(table, "other-call")) == 1
    record = store.get_call(table, "other-call")
    assert (record["status"], record["from"], record["to"]) == ("ended", "+254712000222", NUMBER)
    assert record["incomplete"]["missing"] == ["first_answer"]
    assert record["cdr"]["fetch_state"] == "queued"
    post(payload)  # the platform's retry
    assert [job["call_id"] for job in queued_jobs()] == ["other-call"]


def test_unknown_call_other_events_are_recorded_without_a_record(table: Any) -> None:
    payload = envelope("call.started", "01JB0018") | {"data": {"call_id": "other-call"}}
    assert post(payload)["statusCode"] == 200
    assert len(recorded(table, "other-call")) == 1
    assert store.get_call(table, "other-call") is None


def test_workspace_event_without_a_call_is_acknowledged(table: Any) -> None:
    payload = {"kind": "wallet.low_balance", "event_id": "01JB0009", "data": {"balance_minor": 5}}
    assert post(payload)["statusCode"] == 200


@pytest.mark.parametrize(
    "raw", [b"", b"{broken", b"[]", json_body({"kind": "call.completed"}), b"kind=x&event_id=y"]
)
def test_malformed_is_400(table: Any, raw: bytes) -> None:
    assert post(raw=raw)["statusCode"] == 400


@pytest.mark.parametrize("scheme", ["timestamped", "plain"])
def test_signed_events_accepted(table: Any, monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:
    monkeypatch.setenv("SAUTIKIT_WEBHOOK_SECRET", SECRET)
    raw = json_body(envelope("call.started", "01JB0010"))
    value = (
        sign_timestamped(SECRET, raw, int(time.time()))
        if scheme == "timestamped"
        else sign_plain(SECRET, raw)
    )
    assert post(raw=raw, headers={"X-Sautikit-Signature": value}, b64=True)["statusCode"] == 200


@pytest.mark.parametrize("case", ["missing", "tampered", "wrong_secret", "replayed"])
def test_bad_signatures_are_401(table: Any, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.setenv("SAUTIKIT_WEBHOOK_SECRET", SECRET)
    raw = json_body(envelope("call.completed", "01JB0011"))
    now = int(time.time())
    headers = {
        "missing": {},
        "tampered": {"X-Sautikit-Signature": sign_plain(SECRET, raw.replace(b"0011", b"0012"))},
        "wrong_secret": {"X-Sautikit-Signature": sign_timestamped("whsec_x", raw, now)},
        "replayed": {"X-Sautikit-Signature": sign_timestamped(SECRET, raw, now - 600)},
    }[case]
    response = post(raw=raw, headers=headers)
    assert response["statusCode"] == 401
    assert store.get_call(table, UUID)["status"] == "active"
    assert recorded(table) == []
