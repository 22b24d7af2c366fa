"""Contract under test: the local SQS poller behaves like Lambda's event source mapping with
ReportBatchItemFailures — successes are deleted, failures come back, then go to the DLQ."""

from __future__ import annotations

import json
from typing import Any

import boto3

from local.sqs_poller import SqsPoller


def make_queues(sqs: Any) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName="jobs",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    return queue, dlq


def test_partial_failures_are_retried_then_dead_lettered(aws: None) -> None:
    sqs = boto3.client("sqs")
    queue, dlq = make_queues(sqs)
    for name in ("good", "bad"):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"job": name}))
    seen: list[str] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            assert record["eventSource"] == "aws:sqs"
            assert record["eventSourceARN"].endswith(":jobs")
            job = json.loads(record["body"])["job"]
            seen.append(job)
            if job == "bad":
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    poller = SqsPoller(sqs, queue, handler, wait_seconds=0)
    for _ in range(6):
        poller.poll_once()
    assert seen.count("good") == 1  # deleted after the first success
    assert seen.count("bad") == 2  # maxReceiveCount receives, then dead-lettered
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["job"] for m in moved] == ["bad"]
    assert poller.failures == 2


def test_a_raising_handler_deletes_nothing(aws: None) -> None:
    sqs = boto3.client("sqs")
    queue, _ = make_queues(sqs)
    sqs.send_message(QueueUrl=queue, MessageBody="{}")

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("all failed")

    poller = SqsPoller(sqs, queue, handler, wait_seconds=0)
    assert poller.poll_once() == 1
    assert poller.poll_once() == 1  # visible again: nothing was deleted
