"""POST /voice never answers 500 and never leaves a caller in silence: hostile bodies, DynamoDB
failing at the boto3 client (against moto), calls the platform ends before we saw them, and
stream ends with the caller still on the line."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from mapokezi import keys, store
from serverless import bounds, profile_cache
from tests import faults
from tests.events_factory import FORM, JSON, FakeLambdaContext, form_body, http_event, json_body
from tests.functional.test_voice_webhook import (
    CALLER,
    HOSTILE_FALLBACK,
    NUMBER,
    UUID,
    emf,
    first_post,
    lifecycle,
    metric_total,
    post,
    verbs,
    xml_of,
)
from tests.functional.test_voice_webhook import table as table  # noqa: F401 (fixture)
from tests.functional.test_voice_webhook import voice_app as voice_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

PROFILE_DESK = "+254711000001"
CONFIGURED_DESK = "+254711999999"


@pytest.fixture(autouse=True)
def forget_profiles() -> Any:
    profile_cache.forget()
    yield
    profile_cache.forget()


def queued_jobs() -> list[dict[str, Any]]:
    import os

    sqs = boto3.client("sqs")
    response = sqs.receive_message(QueueUrl=os.environ["CDR_QUEUE_URL"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def stored_events(table: Any, call_id: str = UUID) -> list[dict[str, Any]]:
    items = table.query(KeyConditionExpression=Key(keys.PK).eq(keys.call_partition(call_id)))
    return [i for i in items["Items"] if keys.item_kind(i[keys.SK]) == "event"]


def dial_number(response: dict[str, Any]) -> str | None:
    node = xml_of(response).find("Dial/Number")
    return None if node is None else node.text


# --- hostile bodies ------------------------------------------------------------------------


def test_deeply_nested_json_is_400(table: Any) -> None:
    raw = b'{"CallSid": "' + UUID.encode() + b'", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = post({}, raw=raw, encoding="json")
    assert response["statusCode"] == 400
    assert "nests deeper" in json.loads(response["body"])["reason"]


def test_body_over_the_limit_is_413(table: Any) -> None:
    raw = form_body({"CallSid": UUID, "To": NUMBER, "pad": "x" * (bounds.MAX_BODY_BYTES + 1)})
    for b64 in (False, True):
        response = post({}, raw=raw, b64=b64)
        assert response["statusCode"] == 413
        assert json.loads(response["body"])["error"] == "payload_too_large"


def test_huge_caller_id_is_cut_and_the_call_streams(table: Any) -> None:
    response = post({"CallSid": UUID, "From": "+2547" + "1" * 5000, "To": NUMBER})
    assert verbs(response) == ["Stream"]
    record = store.get_call(table, UUID)
    assert record["from"] == ("+2547" + "1" * 5000)[:64]


def test_huge_dialled_number_is_an_unknown_number_not_a_500(table: Any) -> None:
    response = post({"CallSid": UUID, "From": CALLER, "To": "+" + "9" * 10_000})
    assert verbs(response) == ["Say", "Hangup"]
    assert len(store.get_call(table, UUID)["to"]) == 64


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_extra_field_of_hundreds_of_kilobytes_is_dropped_from_the_stored_copy(
    table: Any, encoding: str
) -> None:
    fields = {"CallSid": UUID, "From": CALLER, "To": NUMBER, "Extra": "é" * 150_000}
    assert verbs(post(fields, encoding=encoding)) == ["Stream"]
    [event] = stored_events(table)
    payload = event["payload"]
    assert payload["CallSid"] == UUID and payload[bounds.TRUNCATED] is True
    assert len(payload["Extra"]) == bounds.MAX_STORED_TEXT
    assert len(json.dumps(payload, default=str)) < 2 * bounds.MAX_STORED_BYTES


def test_json_values_dynamodb_cannot_store_are_kept_as_text(table: Any) -> None:
    raw = b'{"CallSid": "' + UUID.encode() + b'", "From": "\\ud800+2547", "To": "' + NUMBER.encode()
    raw += b'", "big": ' + b"9" * 100 + b', "inf": 1e400, "deep": {"a": {"b": {"c": {"d": 1}}}},'
    raw += b' "": "empty key", "many": [' + b",".join([b"1"] * 500) + b"]}"
    response = post({}, raw=raw, encoding="json")
    assert verbs(response) == ["Stream"]
    [event] = stored_events(table)
    payload = event["payload"]
    assert payload["big"] == "9" * 100 and payload["inf"] == "inf"
    assert payload["deep"] == {"a": {"b": "…"}}
    assert len(payload["many"]) == bounds.MAX_STORED_ITEMS
    assert "" not in payload
    assert store.get_call(table, UUID)["from"] == "+2547"  # the lone surrogate is dropped


@pytest.mark.parametrize(
    ("raw", "b64"),
    [(b"CallSid=\xff\xfe&To=x", True), (b'{"CallSid": "\xc3\x28"}', True)],
)
def test_invalid_utf8_is_400(table: Any, raw: bytes, b64: bool) -> None:
    response = post({}, raw=raw, b64=b64)
    assert response["statusCode"] == 400
    assert "UTF-8" in json.loads(response["body"])["reason"]


def test_bad_base64_and_too_many_form_fields_are_400(table: Any, voice_app: Any) -> None:
    event = http_event("/voice", "CallSid=x", content_type=FORM)
    event["isBase64Encoded"], event["body"] = True, "!!!" + base64.b64encode(b"x").decode()
    assert voice_app.lambda_handler(event, FakeLambdaContext("voice"))["statusCode"] == 400
    raw = "&".join(f"f{i}=1" for i in range(bounds.MAX_FORM_FIELDS + 1)).encode()
    assert post({}, raw=raw)["statusCode"] == 400


# --- DynamoDB failing -----------------------------------------------------------------------


def test_table_down_answers_the_remembered_profile_front_desk(
    table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verbs(first_post(call_id="warm-up-call")) == ["Stream"]  # the profile is now known
    capsys.readouterr()
    with faults.dynamodb_failing() as refused:
        response = first_post()
    assert refused  # the table was really asked, and refused
    assert verbs(response) == ["Say", "Dial"]
    assert xml_of(response)[0].text == HOSTILE_FALLBACK
    assert dial_number(response) == PROFILE_DESK
    blobs = emf(capsys)
    assert metric_total(blobs, "VoiceDegraded") == 1
    assert metric_total(blobs, "Fallbacks", reason="dependency_failed") == 1


def test_table_down_without_a_profile_dials_the_configured_front_desk(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALLBACK_FRONT_DESK", CONFIGURED_DESK)
    with faults.dynamodb_failing(error=faults.throttled("GetItem")):
        response = first_post()
    assert verbs(response) == ["Say", "Dial"]
    assert dial_number(response) == CONFIGURED_DESK


def test_table_down_and_nothing_configured_still_speaks(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FALLBACK_FRONT_DESK", raising=False)
    with faults.dynamodb_failing():
        response = first_post()
    assert verbs(response) == ["Say", "Hangup"]


def test_writes_refused_after_the_profile_was_read_answer_its_fallback(table: Any) -> None:
    with faults.dynamodb_failing(["PutItem", "UpdateItem"], faults.throttled()):
        response = first_post()
    assert verbs(response) == ["Say", "Dial"] and dial_number(response) == PROFILE_DESK


def test_unreadable_stream_token_secret_falls_back(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAM_TOKEN_SECRET")
    missing = "arn:aws:secretsmanager:af-south-1:123456789012:secret:missing-AbCdEf"
    monkeypatch.setenv("STREAM_TOKEN_SECRET_ARN", missing)
    response = first_post()
    assert response["statusCode"] == 200 and verbs(response) == ["Say", "Dial"]
    record = store.get_call(table, UUID)
    assert (record["answer"], record["answer_reason"]) == ("fallback", "not_configured")


def test_call_answered_while_the_table_was_down_is_recorded_incomplete_later(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALLBACK_FRONT_DESK", CONFIGURED_DESK)
    with faults.dynamodb_failing():
        assert verbs(first_post()) == ["Say", "Dial"]
    assert store.get_call(table, UUID) is None
    done = post(
        {
            "CallSid": UUID,
            "From": CALLER,
            "To": NUMBER,
            "callSessionState": "Completed",
            "isActive": "false",
            "durationInSeconds": "42",
        }
    )
    assert verbs(done) == []
    record = store.get_call(table, UUID)
    assert (record["status"], record["from"], record["to"]) == ("ended", CALLER, NUMBER)
    assert record["incomplete"]["missing"] == ["first_answer"]
    assert record["platform_duration_seconds"] == 42
    assert [job["call_id"] for job in queued_jobs()] == [UUID]


def test_completed_while_the_table_is_down_still_queues_the_cdr_fetch(table: Any) -> None:
    first_post()
    with faults.dynamodb_failing():
        response = lifecycle("Completed", isActive="false", durationInSeconds="9")
    assert response["statusCode"] == 200 and verbs(response) == []
    assert [job["call_id"] for job in queued_jobs()] == [UUID]


def test_stream_stopped_while_the_table_is_down_reaches_the_front_desk(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALLBACK_FRONT_DESK", CONFIGURED_DESK)
    first_post()
    with faults.dynamodb_failing():
        response = lifecycle("StreamStopped", isActive="true")
    assert verbs(response) == ["Say", "Dial"] and dial_number(response) == CONFIGURED_DESK
    with faults.dynamodb_failing():
        gone = lifecycle("StreamStopped", isActive="false", Timestamp="t2")
    assert verbs(gone) == []


# --- the caller is still there ----------------------------------------------------------


@pytest.mark.parametrize("media_outcome", [None, "caller_hangup", "stream_lost"])
def test_stream_stopped_with_the_caller_on_the_line_answers_the_front_desk(
    table: Any, capsys: pytest.CaptureFixture[str], media_outcome: str | None
) -> None:
    first_post()
    lifecycle("StreamStarted")
    if media_outcome:
        store.record_media(table, UUID, {"outcome": media_outcome, "close": "1006"})
    capsys.readouterr()
    response = lifecycle("StreamStopped", isActive="true")
    assert verbs(response) == ["Say", "Dial"] and dial_number(response) == PROFILE_DESK
    reason = "stream_lost" if media_outcome == "stream_lost" else "stream_stopped"
    assert metric_total(emf(capsys), "Fallbacks", reason=reason) == 1


def test_stream_stopped_with_the_profile_gone_dials_the_configured_desk(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALLBACK_FRONT_DESK", CONFIGURED_DESK)
    first_post()
    table.delete_item(Key=keys.profile_key(NUMBER))
    response = lifecycle("StreamStopped", isActive="true")
    assert dial_number(response) == CONFIGURED_DESK


# --- calls the platform ends before we saw them ------------------------------------------------


def test_completed_before_the_first_post_ends_the_call_and_queues_one_fetch(table: Any) -> None:
    hangup = {"CallSid": UUID, "From": CALLER, "To": NUMBER, "callSessionState": "Completed"}
    assert verbs(post({**hangup, "isActive": "false", "durationInSeconds": "0"})) == []
    record = store.get_call(table, UUID)
    assert record["status"] == "ended" and record["incomplete"]["missing"] == ["first_answer"]
    assert verbs(first_post()) == []  # a late first POST: nothing to stream to
    assert verbs(post({**hangup, "isActive": "false", "durationInSeconds": "0"})) == []
    assert [job["call_id"] for job in queued_jobs()] == [UUID]
    assert store.get_call(table, UUID)["status"] == "ended"


def test_set_up_fields_under_completed_still_stream(table: Any) -> None:
    assert verbs(first_post(callSessionState="Completed")) == ["Stream"]
    assert store.get_call(table, UUID)["status"] == "active"


# --- what the record says happened ------------------------------------------------------------


def test_first_answer_kind_is_on_the_record(table: Any) -> None:
    first_post()
    assert store.get_call(table, UUID)["answer"] == "stream"
    table.delete_item(Key=keys.node_key("node-1"))
    first_post(call_id="no-node-call")
    record = store.get_call(table, "no-node-call")
    assert (record["answer"], record["answer_reason"]) == ("fallback", "no_media_node")


def test_stranded_and_failed_handoffs_are_recorded(table: Any) -> None:
    first_post()
    store.record_handoff(table, UUID, {"kind": "transfer", "target": "+254711000003"})
    lifecycle("Completed", isActive="false")
    handoff = store.get_call(table, UUID)["handoff"]
    assert (
        handoff["state"] == "stranded"
        and "before the handoff was dialled" in (handoff["state_detail"])
    )
    first_post(call_id="dial-fails")
    store.record_handoff(table, "dial-fails", {"kind": "transfer", "target": "+254711000003"})
    assert verbs(lifecycle("StreamStopped", call_id="dial-fails", isActive="true")) == [
        "Say",
        "Dial",
    ]
    assert verbs(lifecycle("DialCompleted", call_id="dial-fails", DialCallStatus="busy")) == [
        "Say",
        "Hangup",
    ]
    handoff = store.get_call(table, "dial-fails")["handoff"]
    assert (handoff["state"], handoff["state_detail"]) == ("failed", "busy")


def test_json_and_form_hostile_posts_never_touch_the_answer_xml(table: Any) -> None:
    raw = json_body({"CallSid": UUID, "From": "<x>&\u0000", "To": NUMBER})
    response = post({}, raw=raw, encoding="json")
    ET.fromstring(response["body"])
    assert response["headers"]["Content-Type"] == "application/xml"
    assert JSON  # both encodings are covered by the property tests
