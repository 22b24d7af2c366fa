"""The CDR fetcher Lambda against the Sautikit API double (real HTTP) with moto SQS and DynamoDB.

Jobs go through a real (moto) SQS queue with a dead-letter redrive policy; ``deliver`` plays the
Lambda event source mapping: receive, invoke, delete what succeeded, leave the failures.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble, ScriptedResponse
from mapokezi import store
from serverless import cdr_jobs
from tests.events_factory import FakeLambdaContext

MAX_RECEIVES = 3


@dataclass
class Queues:
    sqs: Any
    url: str
    arn: str
    dlq_url: str
    sent: list[dict[str, Any]]


@pytest.fixture
def double() -> Iterator[SautikitApiDouble]:
    with SautikitApiDouble(not_final_reads=0) as api:
        yield api


@pytest.fixture
def queues(calls_table: Any, monkeypatch: pytest.MonkeyPatch) -> Queues:
    """CDR queue + DLQ in moto; every SendMessage the fetcher makes is captured too."""
    cdr_jobs.reset_client()
    sqs = boto3.client("sqs")
    dlq_url = sqs.create_queue(QueueName="cdr-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
    url = sqs.create_queue(QueueName="cdr", Attributes={"RedrivePolicy": json.dumps(redrive)})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sent: list[dict[str, Any]] = []
    shared = cdr_jobs._sqs()
    shared.meta.events.register(
        "provide-client-params.sqs.SendMessage", lambda params, **_: sent.append(dict(params))
    )
    monkeypatch.setenv("CDR_QUEUE_URL", url)
    yield Queues(sqs, url, arn, dlq_url, sent)
    cdr_jobs.reset_client()


@pytest.fixture
def fetcher(queues: Queues, double: SautikitApiDouble, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SAUTIKIT_API_URL", double.url)
    monkeypatch.setenv("SAUTIKIT_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("SAUTIKIT_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("CDR_NOT_FOUND_ATTEMPTS", "2")
    return importlib.import_module("cdr.app")


def sqs_event(queues: Queues, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queues.arn,
                "awsRegion": "af-south-1",
            }
            for m in messages
        ]
    }


def deliver(
    fetcher: Any, queues: Queues, context: FakeLambdaContext | None = None
) -> tuple[list[str], list[str]]:
    """One event-source-mapping poll: returns (message ids delivered, ids reported failed)."""
    messages = queues.sqs.receive_message(
        QueueUrl=queues.url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", [])
    if not messages:
        return [], []
    try:
        result = fetcher.lambda_handler(
            sqs_event(queues, messages), context or FakeLambdaContext("cdr")
        )
        failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    except BatchProcessingError:  # Powertools raises when every record failed
        failed = [m["MessageId"] for m in messages]
    for m in messages:
        if m["MessageId"] not in failed:
            queues.sqs.delete_message(QueueUrl=queues.url, ReceiptHandle=m["ReceiptHandle"])
    return [m["MessageId"] for m in messages], failed


def our_call(table: Any, call_id: str) -> None:
    """A call in our table only."""
    store.create_call(
        table, call_id=call_id, caller="+254711000001", to="+254700000100", retention_days=1
    )


def new_call(table: Any, double: SautikitApiDouble, call_id: str, **complete: Any) -> None:
    """A call in our table and on the platform, ended there with a CDR."""
    our_call(table, call_id)
    store.mark_ended(table, call_id, reason="Completed")
    double.register_call(session_id=call_id, answered_at="2026-11-21T09:00:05Z")
    double.complete_call(call_id, duration_seconds=95, **complete)


def queue_job(call_id: str, attempt: int = 0) -> None:
    cdr_jobs.enqueue_cdr_fetch(call_id, delay_seconds=0, attempt=attempt)


def delayed_count(queues: Queues) -> int:
    attrs = queues.sqs.get_queue_attributes(
        QueueUrl=queues.url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessagesDelayed"])


def test_final_wrapped_cdr_is_stored(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(
        calls_table, double, "HD_final000001", dialled=[{"to": "+254711000002", "seconds": 61}]
    )
    queue_job("HD_final000001")
    delivered, failed = deliver(fetcher, queues)
    assert len(delivered) == 1 and failed == []
    cdr = store.get_call(calls_table, "HD_final000001")["cdr"]
    assert cdr["fetch_state"] == "done" and cdr["attempts"] == 1
    assert cdr["status"] == "completed" and cdr["duration_seconds"] == 95
    assert cdr["cost_minor"] == 600  # inbound free; dialled leg 61 s → 2 min × KES 3.00
    assert cdr["cost_currency"] == "KES" and cdr["rate_per_minute_minor"] == 0
    assert cdr["session_id"] == "HD_final000001" and len(cdr["platform_call_id"]) == 36
    assert cdr["answered_at"] == "2026-11-21T09:00:05Z" and cdr["ended_at"]
    assert cdr["fetched_at"].endswith("Z") and cdr["failure_code"] is None
    request = next(r for r in double.requests if r.path == "/v1/calls/HD_final000001")
    assert request.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"


def test_unwrapped_cdr_is_accepted(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_unwrapped01")
    double.script(ScriptedResponse.unwrapped(), call_id="HD_unwrapped01")
    queue_job("HD_unwrapped01")
    assert deliver(fetcher, queues)[1] == []
    assert store.get_call(calls_table, "HD_unwrapped01")["cdr"]["fetch_state"] == "done"


def test_not_final_is_reenqueued_with_backoff_then_stored(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_notfinal001", final_after_reads=1)
    queue_job("HD_notfinal001")
    assert deliver(fetcher, queues)[1] == []
    requeued = queues.sent[-1]
    assert requeued["DelaySeconds"] == 30
    assert json.loads(requeued["MessageBody"])["attempt"] == 1
    assert delayed_count(queues) == 1  # the job waits in SQS, invisible until due
    cdr = store.get_call(calls_table, "HD_notfinal001")["cdr"]
    assert cdr["fetch_state"] == "queued" and cdr["status"] == "answered"
    assert cdr["cost_minor"] is None and cdr["attempts"] == 1
    # SQS would deliver the delayed copy in 30 s; deliver it now as the next attempt.
    queue_job("HD_notfinal001", attempt=1)
    assert deliver(fetcher, queues)[1] == []
    cdr = store.get_call(calls_table, "HD_notfinal001")["cdr"]
    assert cdr["fetch_state"] == "done" and cdr["attempts"] == 2 and cdr["cost_minor"] == 0


def test_pending_202_is_retried_later(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_pending0001")
    double.script(ScriptedResponse.pending(45), call_id="HD_pending0001")
    queue_job("HD_pending0001", attempt=0)
    assert deliver(fetcher, queues)[1] == []
    assert queues.sent[-1]["DelaySeconds"] == 45  # Retry-After beats the 30 s backoff
    assert json.loads(queues.sent[-1]["MessageBody"])["attempt"] == 1


def test_not_found_retries_then_gives_up(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    our_call(calls_table, "HD_unknown0001")
    queue_job("HD_unknown0001")
    assert deliver(fetcher, queues)[1] == []
    assert json.loads(queues.sent[-1]["MessageBody"])["attempt"] == 1
    assert store.get_call(calls_table, "HD_unknown0001")["cdr"]["fetch_state"] == "queued"
    sends = len(queues.sent)
    queue_job("HD_unknown0001", attempt=1)
    sends += 1
    assert deliver(fetcher, queues)[1] == []
    assert len(queues.sent) == sends  # no further re-enqueue
    cdr = store.get_call(calls_table, "HD_unknown0001")["cdr"]
    assert cdr["fetch_state"] == "gave_up" and cdr["error"] == "not_found"
    assert cdr["attempts"] == 2


def test_rate_limit_honours_retry_after(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_ratelimit01")
    double.script(ScriptedResponse.rate_limited(120), call_id="HD_ratelimit01")
    queue_job("HD_ratelimit01", attempt=2)
    assert deliver(fetcher, queues)[1] == []
    requeued = queues.sent[-1]
    assert requeued["DelaySeconds"] == 120
    assert json.loads(requeued["MessageBody"]) | {"queued_at": None, "first_queued_at": None} == {
        "call_id": "HD_ratelimit01",
        "attempt": 3,
        "queued_at": None,
        "first_queued_at": None,
    }
    cdr = store.get_call(calls_table, "HD_ratelimit01")["cdr"]
    assert cdr["fetch_state"] == "queued" and cdr["error"].startswith("rate_limited")


def test_server_error_is_requeued_with_backoff_not_failed(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_broken00001")
    new_call(calls_table, double, "HD_healthy0001")
    double.script(ScriptedResponse.server_error(503), call_id="HD_broken00001")
    queue_job("HD_broken00001")
    first_queued = json.loads(queues.sent[-1]["MessageBody"])["first_queued_at"]
    queue_job("HD_healthy0001")
    delivered, failed = deliver(fetcher, queues)
    assert len(delivered) == 2 and failed == []
    requeued = json.loads(queues.sent[-1]["MessageBody"])
    assert (requeued["call_id"], requeued["attempt"]) == ("HD_broken00001", 1)
    assert requeued["first_queued_at"] == first_queued
    assert queues.sent[-1]["DelaySeconds"] == 30
    assert store.get_call(calls_table, "HD_healthy0001")["cdr"]["fetch_state"] == "done"
    cdr = store.get_call(calls_table, "HD_broken00001")["cdr"]
    assert cdr["fetch_state"] == "queued" and cdr["error"].startswith("internal_error")


def test_platform_outage_loses_no_cdr(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_outage00001")
    double.script(ScriptedResponse.server_error(500), call_id="HD_outage00001", times=6)
    queue_job("HD_outage00001")
    for _ in range(7):  # six failures, each re-queued with a longer delay, then the fetch
        sends = len(queues.sent)
        assert deliver(fetcher, queues)[1] == []
        if len(queues.sent) > sends:  # play the delay out: the re-queued job, due now
            body = queues.sent[-1]["MessageBody"]
            queues.sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    delays = [m["DelaySeconds"] for m in queues.sent if m["DelaySeconds"]]
    assert delays == [30, 60, 120, 240, 480, 900]
    assert store.get_call(calls_table, "HD_outage00001")["cdr"]["fetch_state"] == "done"
    assert "Messages" not in queues.sqs.receive_message(QueueUrl=queues.dlq_url)


def test_outage_past_the_age_bound_marks_the_call_failed(
    fetcher: Any,
    queues: Queues,
    calls_table: Any,
    double: SautikitApiDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDR_MAX_AGE_SECONDS", "3600")
    new_call(calls_table, double, "HD_longdown001")
    double.script(ScriptedResponse.server_error(502), call_id="HD_longdown001", times=None)
    old = "2026-01-01T00:00:00.000Z"
    body = cdr_jobs.message_body("HD_longdown001", attempt=9, first_queued_at=old)
    queues.sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    sends = len(queues.sent)
    assert deliver(fetcher, queues)[1] == []
    assert len(queues.sent) == sends  # not re-queued
    cdr = store.get_call(calls_table, "HD_longdown001")["cdr"]
    assert cdr["fetch_state"] == "failed" and "still failing" in cdr["error"]


def test_dead_letter_path_marks_the_call_failed(
    fetcher: Any,
    queues: Queues,
    calls_table: Any,
    double: SautikitApiDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDR_MAX_RECEIVE_COUNT", str(MAX_RECEIVES))
    new_call(calls_table, double, "HD_nodeadline1")
    queue_job("HD_nodeadline1")
    for receive in range(1, MAX_RECEIVES + 1):
        delivered, failed = deliver(fetcher, queues, FakeLambdaContext("cdr", remaining_ms=2_500))
        assert failed == delivered and len(failed) == 1
        cdr = store.get_call(calls_table, "HD_nodeadline1").get("cdr")
        if receive < MAX_RECEIVES:
            assert cdr is None
    assert cdr["fetch_state"] == "failed"
    assert cdr["error"].startswith(f"dead-lettered after {MAX_RECEIVES} receives")
    assert deliver(fetcher, queues) == ([], [])
    dead = queues.sqs.receive_message(QueueUrl=queues.dlq_url)["Messages"]
    assert json.loads(dead[0]["Body"])["call_id"] == "HD_nodeadline1"


@pytest.mark.parametrize("fault", ["slow", "malformed", "connection"])
def test_transport_faults_are_requeued(
    fetcher: Any,
    queues: Queues,
    calls_table: Any,
    double: SautikitApiDouble,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    new_call(calls_table, double, "HD_fault000001")
    if fault == "slow":
        double.script(ScriptedResponse.slow(2.0), call_id="HD_fault000001")
    elif fault == "malformed":
        double.script(ScriptedResponse.malformed(), call_id="HD_fault000001")
    else:
        monkeypatch.setenv("SAUTIKIT_API_URL", "http://127.0.0.1:9")  # discard port: refused
    queue_job("HD_fault000001")
    assert deliver(fetcher, queues)[1] == []
    assert queues.sent[-1]["DelaySeconds"] == 30
    assert json.loads(queues.sent[-1]["MessageBody"])["attempt"] == 1
    assert store.get_call(calls_table, "HD_fault000001")["cdr"]["fetch_state"] == "queued"


def test_final_cdr_ends_a_call_whose_hangup_was_never_seen(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    our_call(calls_table, "HD_nohangup001")
    store.record_handoff(calls_table, "HD_nohangup001", {"kind": "transfer", "target": "+1"})
    double.register_call(session_id="HD_nohangup001", answered_at="2026-11-21T09:00:05Z")
    double.complete_call("HD_nohangup001", duration_seconds=40)
    queue_job("HD_nohangup001")
    assert deliver(fetcher, queues)[1] == []
    record = store.get_call(calls_table, "HD_nohangup001")
    assert (record["status"], record["end_reason"]) == ("ended", "cdr:completed")
    assert record["handoff"]["state"] == "stranded"


@pytest.mark.parametrize(
    ("key", "scopes", "expected"),
    [
        ("tsk_live_wrong", None, "api_key.invalid"),
        (DEFAULT_API_KEY, {"numbers.read"}, "api_key.scope_denied"),
    ],
)
def test_auth_failure_is_recorded_not_retried(
    fetcher: Any,
    queues: Queues,
    calls_table: Any,
    double: SautikitApiDouble,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    scopes: set[str] | None,
    expected: str,
) -> None:
    new_call(calls_table, double, "HD_auth0000001")
    monkeypatch.setenv("SAUTIKIT_API_KEY", key)
    double.scopes = scopes
    queue_job("HD_auth0000001")
    sends = len(queues.sent)
    assert deliver(fetcher, queues)[1] == []
    assert len(queues.sent) == sends
    cdr = store.get_call(calls_table, "HD_auth0000001")["cdr"]
    assert cdr["fetch_state"] == "error" and cdr["error"].startswith(expected)


def test_missing_api_key_is_recorded_as_error(
    fetcher: Any,
    queues: Queues,
    calls_table: Any,
    double: SautikitApiDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new_call(calls_table, double, "HD_nokey000001")
    monkeypatch.delenv("SAUTIKIT_API_KEY")
    queue_job("HD_nokey000001")
    assert deliver(fetcher, queues)[1] == []
    cdr = store.get_call(calls_table, "HD_nokey000001")["cdr"]
    assert cdr["fetch_state"] == "error" and "SAUTIKIT_API_KEY is not configured" in cdr["error"]


def test_call_not_in_our_table_is_dropped(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    queue_job("HD_stranger001")
    assert deliver(fetcher, queues)[1] == []
    assert store.get_call(calls_table, "HD_stranger001") is None
    assert not any(r.path.startswith("/v1/calls/") for r in double.requests)


def test_duplicate_delivery_after_done_does_not_refetch(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_twice000001")
    queue_job("HD_twice000001")
    deliver(fetcher, queues)
    reads = len(double.requests)
    queue_job("HD_twice000001")
    assert deliver(fetcher, queues)[1] == []
    assert len(double.requests) == reads


def test_malformed_message_fails_the_record(fetcher: Any, queues: Queues) -> None:
    queues.sqs.send_message(QueueUrl=queues.url, MessageBody="not json")
    cdr_jobs.enqueue_cdr_fetch("HD_stranger002", delay_seconds=0)
    delivered, failed = deliver(fetcher, queues)
    assert len(delivered) == 2 and len(failed) == 1


def test_stale_redelivery_does_not_fork_the_retry_chain(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_stale000001", final_after_reads=5)
    queue_job("HD_stale000001")
    deliver(fetcher, queues)
    reads, sends = len(double.requests), len(queues.sent)
    queue_job("HD_stale000001", attempt=0)  # SQS delivers the first job a second time
    sends += 1
    assert deliver(fetcher, queues)[1] == []
    assert len(double.requests) == reads and len(queues.sent) == sends


def test_gives_up_after_max_attempts(
    fetcher: Any,
    queues: Queues,
    calls_table: Any,
    double: SautikitApiDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDR_MAX_ATTEMPTS", "3")
    new_call(calls_table, double, "HD_slowcdr0001", final_after_reads=10)
    for attempt in range(3):
        queue_job("HD_slowcdr0001", attempt=attempt)
        assert deliver(fetcher, queues)[1] == []
    delays = [m["DelaySeconds"] for m in queues.sent if m["DelaySeconds"]]
    assert delays == [30, 60]
    cdr = store.get_call(calls_table, "HD_slowcdr0001")["cdr"]
    assert cdr["fetch_state"] == "gave_up" and cdr["status"] == "answered"
    assert cdr["attempts"] == 3 and cdr["cost_minor"] is None


def test_no_fetch_without_invocation_time_left(
    fetcher: Any, queues: Queues, calls_table: Any, double: SautikitApiDouble
) -> None:
    new_call(calls_table, double, "HD_latebatch01")
    queue_job("HD_latebatch01")
    reads = len(double.requests)
    delivered, failed = deliver(fetcher, queues, FakeLambdaContext("cdr", remaining_ms=2_500))
    assert failed == delivered and len(failed) == 1  # redelivered to a fresh invocation
    assert len(double.requests) == reads
    assert deliver(fetcher, queues)[1] == []
    assert store.get_call(calls_table, "HD_latebatch01")["cdr"]["fetch_state"] == "done"
