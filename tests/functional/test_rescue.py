"""Rescue of a stranded transfer, through the real handlers: stream-status / events Lambdas ->
the rescue queue (moto SQS, real delays) -> the rescue Lambda -> the Sautikit double (HTTP)."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble
from local.sqs_poller import sqs_event
from mapokezi import handoff, store
from mapokezi.profiles import parse_profile
from serverless import rescue
from tests.events_factory import FORM, JSON, FakeLambdaContext, form_body, http_event, json_body

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

CALL = "0f8fad5b-d9cb-469f-a165-70867728950e"
NUMBER = "+254700000100"
CALLER = "+254722000111"
PERSON = "+254711000002"


@dataclass
class Rig:
    table: Any
    api: SautikitApiDouble
    sqs: Any
    queue: str
    inbox: str


def profile(strategy: str = "auto") -> Any:
    return parse_profile(
        {
            "business_name": "Karibu Dental",
            "greeting": "Karibu",
            "instructions": "Help callers.",
            "front_desk": "+254711000001",
            "dial_timeout_seconds": 5,
            "handoff": {"strategy": strategy, "rescue_grace_seconds": 0.5},
        },
        number=NUMBER,
    )


@pytest.fixture
def rig(calls_table: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    rescue.reset_client()
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    queue = sqs.create_queue(QueueName="rescues")["QueueUrl"]
    topic = sns.create_topic(Name="messages")["TopicArn"]
    inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn["Attributes"]["QueueArn"])
    for name in ("SAUTIKIT_WEBHOOK_SECRET", "SAUTIKIT_WEBHOOK_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESCUE_QUEUE_URL", queue)
    monkeypatch.setenv("MESSAGES_TOPIC_ARN", topic)
    monkeypatch.setenv("RESCUE_CONNECTED_POLL_SECONDS", "1")
    with SautikitApiDouble() as api:
        api.supervision.set_person(ring_after=0.05, answer_after=0.2, ring_timeout=30)
        monkeypatch.setenv("SAUTIKIT_API_URL", api.url)
        monkeypatch.setenv("SAUTIKIT_API_KEY", DEFAULT_API_KEY)
        store.put_profile(calls_table, profile())
        store.create_call(calls_table, call_id=CALL, caller=CALLER, to=NUMBER, retention_days=1)
        api.register_call(call_id=CALL, answered_at="2026-11-29T10:00:00Z")
        store.record_handoff(
            calls_table,
            CALL,
            {"kind": "transfer", "target": PERSON, "reason": "wants a booking"},
        )
        yield Rig(calls_table, api, sqs, queue, inbox)
    rescue.reset_client()


def stream_stopped(sid: str = "MZ1") -> dict[str, Any]:
    body = form_body({"CallSid": CALL, "StreamEvent": "stream-stopped", "StreamSid": sid})
    handler = importlib.import_module("stream_status.app").lambda_handler
    return handler(http_event("/stream-status", body, content_type=FORM), FakeLambdaContext("s"))


def event_stopped(event_id: str) -> dict[str, Any]:
    body = json_body({"kind": "StreamStopped", "event_id": event_id, "data": {"call_id": CALL}})
    handler = importlib.import_module("events.app").lambda_handler
    return handler(http_event("/events", body, content_type=JSON), FakeLambdaContext("e"))


def take_jobs(rig: Rig, want: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Wait (real SQS delays) until ``want`` messages arrive, or the timeout; deletes them."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        batch = rig.sqs.receive_message(
            QueueUrl=rig.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in batch:
            rig.sqs.delete_message(QueueUrl=rig.queue, ReceiptHandle=message["ReceiptHandle"])
        got += batch
    return got


def run_rescue(messages: list[dict[str, Any]]) -> dict[str, Any]:
    app = importlib.import_module("rescue.app")
    event = sqs_event(messages, "arn:aws:sqs:af-south-1:123456789012:rescues", "af-south-1")
    return app.lambda_handler(event, FakeLambdaContext("rescue"))


def handoff_of(rig: Rig) -> dict[str, Any]:
    return store.get_call(rig.table, CALL)["handoff"]


def supervision_posts(rig: Rig) -> list[Any]:
    return [r for r in rig.api.requests if r.method == "POST" and r.path.endswith("/supervision")]


def wait_for(check: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def follow_until(rig: Rig, state: str, rounds: int = 8) -> dict[str, Any]:
    """Run follow-up jobs as they come due until the handoff reaches ``state``."""
    for _ in range(rounds):
        if handoff_of(rig)["state"] == state:
            break
        jobs = take_jobs(rig)
        assert jobs, f"no follow-up queued while {handoff_of(rig)['state']}"
        assert all(json.loads(j["Body"])["step"] == "follow" for j in jobs)
        run_rescue(jobs)
    return handoff_of(rig)


def test_repeated_callbacks_rescue_once_and_the_person_connects(rig: Rig) -> None:
    # Parallel duplicates, each in its own process: test_rescue_exactly_once.py.
    for answer in (stream_stopped(), stream_stopped(), event_stopped("evt_1")):
        assert answer["statusCode"] == 200
    checks = take_jobs(rig, want=2, timeout=4)  # stream-status's first delivery, the event
    assert len(checks) == 2 and {json.loads(c["Body"])["step"] for c in checks} == {"check"}
    for check in checks:
        run_rescue([check])
    (post,) = supervision_posts(rig)
    assert post.json() == {
        "mode": "barge",
        "supervisor": {"type": "phone", "number": PERSON, "label": "Front desk"},
    }
    current = handoff_of(rig)
    assert post.headers["idempotency-key"] == handoff.idempotency_key(CALL, current["handoff_id"])
    assert current["path"] == "rescue" and current["supervision_id"]
    learned = store.platform_behaviour(rig.table, NUMBER)
    assert learned["after_stream"] == "no_repost" and learned["seen_no_repost"] == 1
    done = follow_until(rig, "connected")
    states = [c["state"] for c in done["changes"]]
    assert states[0] == "pending" and states[1] == "requested" and states[-1] == "connected"
    assert isinstance(done["time_to_person_ms"], int) and done["time_to_person_ms"] > 0
    # The person leaves: no model is on the line, so the call is hung up, not left silent.
    rig.api.supervision.person_acts(CALL, "hangup")
    ended = follow_until(rig, "ended")
    assert ended["rescue_closed"] is True
    assert any(r.path == f"/v1/calls/{CALL}/hangup" for r in rig.api.requests)
    record = store.call_record(rig.table, CALL)
    from mapokezi.outcomes import call_outcome

    store.mark_ended(rig.table, CALL, reason="completed")
    assert call_outcome({**record, "status": "ended"}) == "rescued"


def test_a_re_post_before_the_grace_period_means_no_rescue(rig: Rig) -> None:
    stream_stopped()
    voice = importlib.import_module("voice.app").lambda_handler
    body = form_body({"CallSid": CALL, "callSessionState": "StreamStopped", "To": NUMBER})
    answer = voice(http_event("/voice", body, content_type=FORM), FakeLambdaContext("v"))
    assert "<Dial" in answer["body"]
    run_rescue(take_jobs(rig))
    assert supervision_posts(rig) == []
    assert handoff_of(rig)["path"] == "dial" and handoff_of(rig)["state"] == "dialled"
    assert store.platform_behaviour(rig.table, NUMBER)["after_stream"] == "reposts"


def test_busy_person_hangs_up_and_notifies_the_business(rig: Rig) -> None:
    rig.api.supervision.set_person(behaviour="busy")
    stream_stopped()
    run_rescue(take_jobs(rig))
    final = follow_until(rig, "busy")
    assert final["changes"][-1]["reason"] == "busy" and final["rescue_closed"]
    assert any(r.path == f"/v1/calls/{CALL}/hangup" for r in rig.api.requests)
    notice = wait_for(
        lambda: rig.sqs.receive_message(QueueUrl=rig.inbox, WaitTimeSeconds=1).get("Messages"),
        "the missed-caller notice",
    )
    text = json.loads(notice[0]["Body"])["Message"]
    assert "wants a booking" in text and CALLER in text and CALL in text


def test_missing_scope_fails_at_once(rig: Rig) -> None:
    rig.api.scopes = {"calls.read", "calls.write"}
    stream_stopped()
    run_rescue(take_jobs(rig))
    final = handoff_of(rig)
    assert final["state"] == "failed" and final["changes"][-1]["reason"] == "scope_denied"
    assert final["rescue_closed"] is True


@pytest.mark.parametrize("strategy", ["dial", "supervise"])
def test_only_auto_rescues(rig: Rig, strategy: str) -> None:
    store.put_profile(rig.table, profile(strategy))
    stream_stopped()
    assert take_jobs(rig, timeout=2.5) == []


def test_caller_gone_before_the_check_is_left_as_it_is(rig: Rig) -> None:
    stream_stopped()
    store.mark_ended(rig.table, CALL, reason="completed")
    run_rescue(take_jobs(rig))
    assert supervision_posts(rig) == [] and handoff_of(rig)["state"] == "pending"


def test_supervision_events_move_a_supervised_handoff(rig: Rig) -> None:
    store.record_handoff(
        rig.table,
        CALL,
        {"kind": "transfer", "target": PERSON, "path": "supervise", "supervision_id": "sup_1"},
        state="requested",
    )
    handler = importlib.import_module("events.app").lambda_handler
    for i, (kind, data) in enumerate(
        [
            ("call.supervision.ringing", {"state": "ringing"}),
            ("call.supervision.connected", {"state": "connected"}),
            ("call.supervision.connected", {"state": "connected"}),  # seen twice
            ("call.supervision.ended", {"state": "ended", "failure_reason": "supervisor_hangup"}),
        ]
    ):
        body = {"kind": kind, "event_id": f"evt_s{i}", "data": {"call_id": CALL, **data}}
        body["data"]["supervision_id"] = "sup_1"
        handler(http_event("/events", json_body(body), content_type=JSON), FakeLambdaContext("e"))
    changes = [c["state"] for c in handoff_of(rig)["changes"]]
    assert changes == ["requested", "ringing", "connected", "ended"]
    assert isinstance(handoff_of(rig)["time_to_person_ms"], int)


def test_without_an_api_key_the_rescue_fails_at_once_and_tells_the_business(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAUTIKIT_API_KEY")
    monkeypatch.delenv("SAUTIKIT_API_KEY_ARN", raising=False)
    stream_stopped()
    assert run_rescue(take_jobs(rig)) == {"batchItemFailures": []}
    final = handoff_of(rig)
    assert final["state"] == "failed" and final["changes"][-1]["reason"] == "config.invalid"
    assert final["rescue_closed"] is True and supervision_posts(rig) == []
    assert wait_for(
        lambda: rig.sqs.receive_message(QueueUrl=rig.inbox, WaitTimeSeconds=1).get("Messages"),
        "the missed-caller notice",
    )


def test_a_check_redelivered_after_the_claim_still_asks_for_the_supervision(rig: Rig) -> None:
    from mapokezi.sautikit_api import SautikitClient

    assert store.claim_rescue(rig.table, CALL) is not None  # claimed, then the step died
    client = SautikitClient(rig.api.url, DEFAULT_API_KEY)
    check = rescue.RescueJob(CALL, rescue.STEP_CHECK)
    # While the claimant may still be at work, a duplicate check leaves the rescue to it.
    busy = rescue.run_job(check, table=rig.table, client=client, enqueue=lambda *a, **k: None)
    assert busy.action == "not_needed" and supervision_posts(rig) == []
    # Once the claim is older than any invocation lives, the redelivered check carries on.
    later = time.time() + rescue.STALE_CLAIM_SECONDS + 1
    rescue.run_job(
        check, table=rig.table, client=client, enqueue=lambda *a, **k: None, now=lambda: later
    )
    (post,) = supervision_posts(rig)
    assert post.headers["idempotency-key"] == handoff.idempotency_key(
        CALL, handoff_of(rig)["handoff_id"]
    )
    assert handoff_of(rig)["supervision_id"]


def test_a_connection_an_event_reported_first_is_counted_once(rig: Rig) -> None:
    from mapokezi.sautikit_api import SautikitClient

    rig.api.supervision.set_person(behaviour="manual")
    client = SautikitClient(rig.api.url, DEFAULT_API_KEY)
    queued: list[rescue.RescueJob] = []

    def enqueue(job: rescue.RescueJob, *, delay_seconds: float) -> None:
        queued.append(job)

    first = rescue.run_job(
        rescue.RescueJob(CALL, rescue.STEP_CHECK), table=rig.table, client=client, enqueue=enqueue
    )
    assert first.action == "rescued" and queued[-1].step == "follow"
    rig.api.supervision.person_acts(CALL, "answer")
    rescue.apply_supervision_event(
        rig.table, CALL, "call.supervision.connected", {"state": "connected"}
    )
    counted = [
        rescue.run_job(queued[-1], table=rig.table, client=client, enqueue=enqueue)
        for _ in range(3)
    ]
    connected = [d for o in counted for d in o.decisions if isinstance(d, handoff.PersonConnected)]
    assert len(connected) == 1 and connected[0].time_to_person_ms > 0


def test_a_rescued_call_is_hung_up_at_the_bridged_limit(rig: Rig) -> None:
    from mapokezi.sautikit_api import SautikitClient

    client = SautikitClient(rig.api.url, DEFAULT_API_KEY)
    queued: list[rescue.RescueJob] = []

    def enqueue(job: rescue.RescueJob, *, delay_seconds: float) -> None:
        queued.append(job)

    rig.api.supervision.set_person(behaviour="manual")
    rescue.run_job(
        rescue.RescueJob(CALL, rescue.STEP_CHECK), table=rig.table, client=client, enqueue=enqueue
    )
    rig.api.supervision.person_acts(CALL, "answer")
    connected = rescue.run_job(queued[-1], table=rig.table, client=client, enqueue=enqueue)
    assert handoff_of(rig)["state"] == "connected", connected.action
    connected_at = handoff.last_change_at(handoff_of(rig)["changes"], "connected")
    assert connected_at is not None
    limit = profile().handoff.max_bridged_seconds

    def follow_at(at: float) -> rescue.RescueOutcome:
        return rescue.run_job(
            queued[-1], table=rig.table, client=client, enqueue=enqueue, now=lambda: at
        )

    assert follow_at(connected_at + limit - 30).action == "polled"  # still talking
    assert not [r for r in rig.api.requests if r.path.endswith("/hangup")]
    assert follow_at(connected_at + limit + 1).action == "bridged_limit"
    assert [r.path for r in rig.api.requests if r.path.endswith("/hangup")] == [
        f"/v1/calls/{CALL}/hangup"
    ]
    ended = handoff_of(rig)
    assert ended["state"] == "ended" and ended["changes"][-1]["reason"] == "bridged_limit"
    assert ended["rescue_closed"] is True
    # The person took the call: nobody is told of a missed caller.
    notices = rig.sqs.receive_message(QueueUrl=rig.inbox, WaitTimeSeconds=1).get("Messages")
    assert not notices
