"""POST /voice end to end: synthetic HTTP API events through the real handler, moto table + SQS."""

from __future__ import annotations

import importlib
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from mapokezi import keys, store, tokens
from mapokezi.profiles import load_profile_file, parse_profile
from serverless import cdr_jobs
from serverless.signature import sign_plain, sign_timestamped
from tests.events_factory import FORM, JSON, FakeLambdaContext, form_body, http_event, json_body

NUMBER = "+254700000100"
CALLER = "+254712000111"
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
TOKEN_SECRET = "stream-token-test-secret"
WEBHOOK_SECRET = "whsec_voice_test"
MEDIA_URL = "wss://media.example.com/audio"
BASE_URL = "https://hooks.example.com"
# Handlers that answer without counting anything make Powertools warn; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

HOSTILE_FALLBACK = 'Samahani "pole" — <hold> & wait 🙏 ☎️'
HOSTILE_HANDOFF = 'Tafadhali subiri <kidogo> & "asante" 😀'

PROFILE: dict[str, Any] = {
    "business_name": "Karibu Dental",
    "greeting": "Karibu!",
    "instructions": "Be kind.",
    "front_desk": "+254711000001",
    "caller_id": "+254700000199",
    "dial_timeout_seconds": 25,
    "departments": [{"name": "billing", "number": "+254711000003"}],
    "lines": {"fallback": HOSTILE_FALLBACK, "handoff": HOSTILE_HANDOFF},
    "say": {"voice": "woman", "language": "sw-KE"},
}


@pytest.fixture(autouse=True)
def voice_app() -> Any:
    """The handler module, imported once the test environment (namespace, service) is set."""
    return importlib.import_module("voice.app")


@pytest.fixture
def table(calls_table: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Calls table with a profile and a healthy media node; a CDR queue; voice env set."""
    for name in (
        "SAUTIKIT_WEBHOOK_SECRET",
        "SAUTIKIT_WEBHOOK_SECRET_ARN",
        "STREAM_TOKEN_SECRET_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDIA_STREAM_URL", MEDIA_URL)
    monkeypatch.setenv("PUBLIC_BASE_URL", BASE_URL)
    monkeypatch.setenv("STREAM_TOKEN_SECRET", TOKEN_SECRET)
    monkeypatch.setenv("CDR_DELAY_SECONDS", "0")
    monkeypatch.setenv("HEARTBEAT_MAX_AGE_SECONDS", "30")
    cdr_jobs.reset_client()
    queue_url = boto3.client("sqs").create_queue(QueueName="cdr")["QueueUrl"]
    monkeypatch.setenv("CDR_QUEUE_URL", queue_url)
    store.put_profile(calls_table, parse_profile(PROFILE, number=NUMBER))
    store.put_heartbeat(calls_table, "node-1", active_calls=0, capacity=10, draining=False)
    yield calls_table
    cdr_jobs.reset_client()


def post(
    fields: dict[str, Any],
    *,
    encoding: str = "form",
    b64: bool = False,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> dict[str, Any]:
    body = (
        raw if raw is not None else form_body(fields) if encoding == "form" else json_body(fields)
    )
    event = http_event(
        "/voice",
        body,
        content_type=FORM if encoding == "form" else JSON,
        base64=b64,
        headers=headers,
    )
    return importlib.import_module("voice.app").lambda_handler(event, FakeLambdaContext("voice"))


def first_post(call_id: str = UUID, **extra: Any) -> dict[str, Any]:
    return post({"CallSid": call_id, "From": CALLER, "To": NUMBER, **extra})


def lifecycle(state: str, call_id: str = UUID, **extra: Any) -> dict[str, Any]:
    return post({"CallSid": call_id, "callSessionState": state, **extra})


def xml_of(response: dict[str, Any]) -> ET.Element:
    assert response["statusCode"] == 200, response
    assert response["headers"]["Content-Type"] == "application/xml"
    return ET.fromstring(response["body"])


def verbs(response: dict[str, Any]) -> list[str]:
    return [child.tag for child in xml_of(response)]


def events_of(table: Any, call_id: str = UUID) -> list[dict[str, Any]]:
    items = table.query(KeyConditionExpression=Key(keys.PK).eq(keys.call_partition(call_id)))
    return [i for i in items["Items"] if keys.item_kind(i[keys.SK]) == "event"]


def emf(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    blobs = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def metric_total(blobs: list[dict[str, Any]], name: str, **dimensions: str) -> float:
    total = 0.0
    for blob in blobs:
        names = {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        if name in names and all(blob.get(k) == v for k, v in dimensions.items()):
            value = blob[name]
            total += sum(value) if isinstance(value, list) else value
    return total


# --- first POST -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize("b64", [False, True])
@pytest.mark.parametrize(
    ("id_key", "from_key", "to_key"),
    [
        ("CallSid", "From", "To"),
        ("CallId", "from", "to"),
        ("callSid", "callerNumber", "destinationNumber"),
        ("call_id", "From", "To"),
        ("sessionId", "callerNumber", "destinationNumber"),
    ],
)
def test_first_post_answers_the_exact_stream(
    table: Any, encoding: str, b64: bool, id_key: str, from_key: str, to_key: str
) -> None:
    call_id = "HD_0a8d5911d055" if id_key == "sessionId" else UUID
    response = post({id_key: call_id, from_key: CALLER, to_key: NUMBER}, encoding=encoding, b64=b64)
    root = xml_of(response)
    stream = root[0]
    token = parse_qs(urlsplit(stream.get("url")).query)["token"][0]
    assert response["body"] == (
        f'<Response><Stream url="{MEDIA_URL}?token={token}" connect="true" track="inbound_track"'
        ' outputSamplingRate="16000" bidirectionalSamplingRate="16000" name="mapokezi"'
        f' statusCallback="{BASE_URL}/stream-status"'
        ' statusEvents="stream-started stream-stopped stream-error" /></Response>'
    )
    claims = tokens.verify_stream_token(TOKEN_SECRET, token)
    assert (claims.call_id, claims.profile_number) == (call_id, NUMBER)
    record = store.get_call(table, call_id)
    assert record is not None
    assert (record["from"], record["to"], record["status"]) == (CALLER, NUMBER, "active")
    assert record["stream_token"]["nonce"] == claims.nonce
    assert record["stream"]["state"] == "pending"


def test_uuid_keys_the_call_and_session_id_is_kept(table: Any) -> None:
    post({"sessionId": "HD_ae71b5349f5e", "CallId": UUID, "From": CALLER, "To": NUMBER})
    assert store.get_call(table, UUID)["session_id"] == "HD_ae71b5349f5e"


def test_later_posts_with_only_the_session_id_find_the_call(table: Any) -> None:
    post({"sessionId": "HD_ae71b5349f5e", "CallId": UUID, "From": CALLER, "To": NUMBER})
    store.record_handoff(
        table, UUID, {"kind": "transfer", "target": "+254711000003", "reason": "billing"}
    )
    stopped = post({"sessionId": "HD_ae71b5349f5e", "callSessionState": "StreamStopped"})
    assert verbs(stopped) == ["Say", "Dial"]
    assert xml_of(stopped).find("Dial/Number").text == "+254711000003"
    post({"sessionId": "HD_ae71b5349f5e", "callSessionState": "Completed"})
    assert store.get_call(table, UUID)["status"] == store.STATUS_ENDED
    assert store.get_call(table, "HD_ae71b5349f5e") is None  # no second record was made


def test_first_post_counts_metrics(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    first_post()
    blobs = emf(capsys)
    assert metric_total(blobs, "CallsStarted") == 1
    assert metric_total(blobs, "StreamsAnswered") == 1
    assert blobs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MapokeziTest"


def test_status_callback_uses_the_request_domain_without_public_base_url(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "")
    stream = xml_of(first_post())[0]
    expected = "https://abc123.execute-api.af-south-1.amazonaws.com/stream-status"
    assert stream.get("statusCallback") == expected


def test_narrowband_both_tracks_profile(table: Any) -> None:
    profile = {**PROFILE, "audio": {"sample_rate": 8000, "track": "both_tracks"}}
    store.put_profile(table, parse_profile(profile, number=NUMBER))
    stream = xml_of(first_post())[0]
    assert stream.get("track") == "both_tracks"
    assert stream.get("outputSamplingRate") == stream.get("bidirectionalSamplingRate") == "8000"


def test_retried_first_post_repeats_the_same_token(table: Any) -> None:
    first_answer = first_post()
    again = first_post()
    assert again["body"] == first_answer["body"]
    token = parse_qs(urlsplit(xml_of(again)[0].get("url")).query)["token"][0]
    nonce = tokens.verify_stream_token(TOKEN_SECRET, token).nonce
    record = store.get_call(table, UUID)
    assert record["stream_token"]["nonce"] == nonce
    assert record["answer"] == "stream"
    assert store.claim_stream_token(table, UUID, nonce, "node-1")
    assert not store.claim_stream_token(table, UUID, nonce, "node-2")  # still single use
    assert len(events_of(table)) == 1


def test_retry_after_the_token_expired_renews_it_with_the_same_nonce(table: Any) -> None:
    first_token = parse_qs(urlsplit(xml_of(first_post())[0].get("url")).query)["token"][0]
    first = tokens.verify_stream_token(TOKEN_SECRET, first_token)
    table.update_item(
        Key=keys.call_key(UUID),
        UpdateExpression="SET stream_token.expires_at = :e",
        ExpressionAttributeValues={":e": 1},
    )
    later_token = parse_qs(urlsplit(xml_of(first_post())[0].get("url")).query)["token"][0]
    later = tokens.verify_stream_token(TOKEN_SECRET, later_token)
    assert later.nonce == first.nonce and later.expires_at >= first.expires_at
    assert store.get_call(table, UUID)["stream_token"]["expires_at"] == later.expires_at


def test_retried_first_post_after_the_socket_connected_is_empty(table: Any) -> None:
    token = parse_qs(urlsplit(xml_of(first_post())[0].get("url")).query)["token"][0]
    nonce = tokens.verify_stream_token(TOKEN_SECRET, token).nonce
    assert store.claim_stream_token(table, UUID, nonce, "node-1")
    assert verbs(first_post()) == []


def test_first_completed_for_an_unseen_call_is_the_set_up(table: Any) -> None:
    assert verbs(first_post(callSessionState="Completed", isActive="true")) == ["Stream"]
    assert store.get_call(table, UUID)["status"] == "active"
    assert verbs(lifecycle("Completed", durationInSeconds="33")) == []
    record = store.get_call(table, UUID)
    assert (record["status"], record["platform_duration_seconds"]) == ("ended", 33)


# --- fallbacks, hours, unknown numbers ---------------------------------------------------


def _assert_fallback(response: dict[str, Any]) -> None:
    root = xml_of(response)
    assert [c.tag for c in root] == ["Say", "Dial"]
    say, dial = root
    assert say.text == HOSTILE_FALLBACK
    assert (say.get("voice"), say.get("language")) == ("woman", "sw-KE")
    assert (dial.get("callerId"), dial.get("timeout")) == ("+254700000199", "25")
    assert dial.find("Number").text == "+254711000001"


def test_no_heartbeat_falls_back(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    table.delete_item(Key=keys.node_key("node-1"))
    capsys.readouterr()
    _assert_fallback(first_post())
    assert metric_total(emf(capsys), "Fallbacks", reason="no_media_node") == 1
    assert store.get_call(table, UUID)["status"] == "active"


def test_stale_or_draining_nodes_fall_back(table: Any) -> None:
    store.put_heartbeat(table, "node-1", active_calls=0, capacity=10, draining=True)
    old = {**keys.node_key("node-2"), "node_id": "node-2", "active_calls": 0, "capacity": 10}
    table.put_item(Item={**old, "draining": False, "seen_at": 1_000_000})
    _assert_fallback(first_post())


def test_stream_error_before_start_falls_back_on_retry(table: Any) -> None:
    first_post()
    store.set_stream_state(table, UUID, "error", error="connect refused")
    _assert_fallback(first_post())


def test_stream_error_lifecycle_post_falls_back_once(table: Any) -> None:
    first_post()
    _assert_fallback(lifecycle("StreamError", error="ws 502"))
    assert store.get_call(table, UUID)["stream"] == {
        **store.get_call(table, UUID)["stream"],
        "state": "error",
        "error": "ws 502",
    }
    assert verbs(lifecycle("StreamStopped")) == []


SUNDAY_NOON = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # 12:00 in Nairobi, a Sunday
MONDAY_NINE = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 09:00 in Nairobi


@pytest.fixture
def example_profile(table: Any) -> dict[str, Any]:
    data = load_profile_file("profiles/example.yaml")
    store.put_profile(table, parse_profile(data, number=NUMBER))
    return data


def test_after_hours_dials_the_after_hours_number(
    example_profile: dict[str, Any], monkeypatch: pytest.MonkeyPatch, voice_app: Any
) -> None:
    monkeypatch.setattr(voice_app, "clock", lambda: SUNDAY_NOON)
    root = xml_of(first_post())
    assert [c.tag for c in root] == ["Say", "Dial"]
    assert root[0].text == example_profile["lines"]["after_hours"]
    assert root[1].find("Number").text == "+254711000009"


def test_after_hours_without_a_number_hangs_up(
    example_profile: dict[str, Any], table: Any, monkeypatch: pytest.MonkeyPatch, voice_app: Any
) -> None:
    del example_profile["after_hours_number"]
    store.put_profile(table, parse_profile(example_profile, number=NUMBER))
    monkeypatch.setattr(voice_app, "clock", lambda: SUNDAY_NOON)
    assert verbs(first_post()) == ["Say", "Hangup"]


def test_open_hours_stream(
    example_profile: dict[str, Any], monkeypatch: pytest.MonkeyPatch, voice_app: Any
) -> None:
    monkeypatch.setattr(voice_app, "clock", lambda: MONDAY_NINE)
    assert verbs(first_post()) == ["Stream"]


def test_unknown_number_is_told_politely(table: Any, caplog: pytest.LogCaptureFixture) -> None:
    root = xml_of(post({"CallSid": UUID, "From": CALLER, "To": "+254799999999"}))
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert root[0].get("language") == "en-KE" and root[0].text
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert any("unknown number" in r.getMessage() for r in warnings)
    record = store.get_call(table, UUID)
    assert (record["answer"], record["to"], record["status"]) == (
        "unknown_number",
        "+254799999999",
        "active",
    )
    lifecycle("Completed", durationInSeconds="4")
    assert store.get_call(table, UUID)["status"] == "ended"


def test_unknown_number_metric(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    post({"CallSid": UUID, "From": CALLER, "To": "+254799999999"})
    assert metric_total(emf(capsys), "UnknownNumbers") == 1


# --- malformed requests -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoding", "reason"),
    [
        (b"", "form", "empty body"),
        (b"{broken", "json", "not valid JSON"),
        (b"\xff\xfe\xfd", "form", "UTF-8"),
        (form_body({"From": CALLER, "To": NUMBER}), "form", "no call id"),
        (form_body({"CallSid": UUID, "From": CALLER}), "form", "no dialled number"),
        (json_body([1, 2]), "json", "must be an object"),
    ],
)
def test_malformed_bodies_are_400(table: Any, raw: bytes, encoding: str, reason: str) -> None:
    response = post({}, raw=raw, encoding=encoding, b64=True)
    assert response["statusCode"] == 400
    payload = json.loads(response["body"])
    assert payload["error"] == "bad_request" and reason in payload["reason"]


def test_bad_base64_is_400(table: Any, voice_app: Any) -> None:
    event = http_event("/voice", "CallSid=x", content_type=FORM)
    event["isBase64Encoded"] = True
    event["body"] = "%%% not base64 %%%"
    response = voice_app.lambda_handler(event, FakeLambdaContext("voice"))
    assert response["statusCode"] == 400


# --- signatures -----------------------------------------------------------------------


def _signed_post(header_value: str | None, raw: bytes) -> dict[str, Any]:
    headers = {"X-Sautikit-Signature": header_value} if header_value is not None else {}
    return post({}, raw=raw, headers=headers, b64=True)


@pytest.fixture
def signed(table: Any, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("SAUTIKIT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    return form_body({"CallSid": UUID, "From": CALLER, "To": NUMBER})


def test_timestamped_signature_accepted(signed: bytes) -> None:
    import time

    assert verbs(_signed_post(sign_timestamped(WEBHOOK_SECRET, signed, int(time.time())), signed))


def test_plain_signature_accepted(signed: bytes) -> None:
    assert verbs(_signed_post(sign_plain(WEBHOOK_SECRET, signed), signed)) == ["Stream"]


@pytest.mark.parametrize("case", ["missing", "tampered", "wrong_secret", "replayed"])
def test_bad_signatures_are_401(
    signed: bytes, table: Any, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    now = int(time.time())
    header = {
        "missing": None,
        "tampered": sign_plain(WEBHOOK_SECRET, signed),
        "wrong_secret": sign_timestamped("whsec_other", signed, now),
        "replayed": sign_timestamped(WEBHOOK_SECRET, signed, now - 301),
    }[case]
    raw = signed + b"&Digits=1" if case == "tampered" else signed
    capsys.readouterr()
    response = _signed_post(header, raw)
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"] == "unauthorized"
    assert store.get_call(table, UUID) is None
    assert metric_total(emf(capsys), "SignatureRejections") == 1


# --- lifecycle -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "state", ["StreamStarted", "Completed", "DialCompleted", "Ringing", "StreamStopped"]
)
def test_each_lifecycle_post_is_recorded_once(table: Any, state: str) -> None:
    first_post()
    store.set_stream_state(table, UUID, "started")
    store.record_media(table, UUID, {"outcome": "caller_hangup"})
    answers = [verbs(lifecycle(state)), verbs(lifecycle(state))]
    assert answers[0] == answers[1] == []
    sort_keys = [e[keys.SK] for e in events_of(table)]
    assert sort_keys.count(f"EVENT#voice#{state}") == 1


def test_stream_started_is_recorded(table: Any) -> None:
    first_post()
    assert verbs(lifecycle("StreamStarted")) == []
    assert store.get_call(table, UUID)["stream"]["state"] == "started"


def test_transfer_handoff_dials_once(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    first_post()
    lifecycle("StreamStarted")
    store.record_handoff(
        table,
        UUID,
        {
            "kind": "transfer",
            "target": "+254711000003",
            "department": "billing",
            "reason": "invoice question",
            "summary": "Caller asks about an invoice.",
        },
    )
    capsys.readouterr()
    root = xml_of(lifecycle("StreamStopped"))
    assert [c.tag for c in root] == ["Say", "Dial"]
    assert root[0].text == HOSTILE_HANDOFF
    assert (root[0].get("voice"), root[0].get("language")) == ("woman", "sw-KE")
    assert root[1].attrib == {"callerId": "+254700000199", "timeout": "25"}
    assert root[1].find("Number").text == "+254711000003"
    assert metric_total(emf(capsys), "HandoffsDialled") == 1
    handoff = store.get_call(table, UUID)["handoff"]
    assert handoff["state"] == "dialled" and handoff["dialled_at"]
    assert verbs(lifecycle("StreamStopped")) == []
    assert verbs(lifecycle("StreamStopped", Timestamp="later")) == []


def test_transfer_without_a_valid_target_uses_the_department(table: Any) -> None:
    first_post()
    store.record_handoff(table, UUID, {"kind": "transfer", "department": "Billing", "reason": "r"})
    assert xml_of(lifecycle("StreamStopped"))[1].find("Number").text == "+254711000003"


def test_hangup_handoff(table: Any) -> None:
    first_post()
    store.record_handoff(table, UUID, {"kind": "hangup", "reason": "caller said goodbye"})
    assert verbs(lifecycle("StreamStopped")) == ["Hangup"]
    assert store.get_call(table, UUID)["handoff"]["state"] == "dialled"


def test_stream_stopped_with_nothing_pending_dials_the_front_desk(
    table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first_post()
    lifecycle("StreamStarted")
    capsys.readouterr()
    _assert_fallback(lifecycle("StreamStopped"))
    assert metric_total(emf(capsys), "Fallbacks", reason="stream_stopped") == 1
    assert store.get_call(table, UUID)["stream"]["state"] == "stopped"


@pytest.mark.parametrize("how", ["isActive", "media", "ended"])
def test_stream_stopped_after_the_caller_left_is_empty(table: Any, how: str) -> None:
    first_post()
    extra = {"isActive": "false"} if how == "isActive" else {}
    if how == "media":
        store.record_media(table, UUID, {"outcome": "caller_hangup"})
    if how == "ended":
        store.mark_ended(table, UUID, reason="completed")
    assert verbs(lifecycle("StreamStopped", **extra)) == []


def test_completed_ends_the_call_and_queues_one_cdr_fetch(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_post()
    assert verbs(lifecycle("Completed", durationInSeconds="61", isActive="false")) == []
    record = store.get_call(table, UUID)
    assert (record["status"], record["end_reason"]) == ("ended", "completed")
    assert record["cdr"]["fetch_state"] == "queued"
    ended_at = record["ended_at"]
    assert verbs(lifecycle("Completed", durationInSeconds="61")) == []
    assert store.get_call(table, UUID)["ended_at"] == ended_at
    sqs = boto3.client("sqs")
    queue_url = monkeypatch_queue(monkeypatch)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert (body["call_id"], body["attempt"]) == (UUID, 0)
    assert body["queued_at"].endswith("Z")


def monkeypatch_queue(monkeypatch: pytest.MonkeyPatch) -> str:
    import os

    return os.environ["CDR_QUEUE_URL"]


def test_cdr_fetch_is_delayed_by_cdr_delay_seconds(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDR_DELAY_SECONDS", "45")
    first_post()
    lifecycle("Completed")
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=monkeypatch_queue(monkeypatch), AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_completed_with_a_stranded_handoff_is_counted(
    table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first_post()
    store.record_handoff(table, UUID, {"kind": "transfer", "target": "+254711000003"})
    capsys.readouterr()
    lifecycle("Completed")
    assert metric_total(emf(capsys), "HandoffsStranded") == 1


@pytest.mark.parametrize(
    ("fields", "failed"),
    [
        ({"DialCallStatus": "no-answer"}, True),
        ({"dialStatus": "BUSY"}, True),
        ({"status": "failed"}, True),
        ({"hangupCause": "NO_ANSWER"}, True),
        ({"DialCallStatus": "completed"}, False),
        ({}, False),
    ],
)
def test_dial_completed(table: Any, fields: dict[str, str], failed: bool) -> None:
    first_post()
    response = lifecycle("DialCompleted", **fields)
    assert verbs(response) == (["Say", "Hangup"] if failed else [])
    if failed:
        assert xml_of(response)[0].get("language") == "sw-KE"
        assert verbs(lifecycle("DialCompleted", **fields)) == ["Say", "Hangup"]


def test_lifecycle_post_for_an_unknown_call_is_recorded_incomplete(table: Any) -> None:
    assert verbs(lifecycle("DialCompleted", call_id="never-seen")) == []
    record = store.get_call(table, "never-seen")
    assert record["incomplete"]["missing"] == ["first_answer"]
    assert record["status"] == "active" and "answer" not in record
