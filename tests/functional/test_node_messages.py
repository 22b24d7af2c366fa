"""The media node's ``take_message``: moto DynamoDB and SNS, a real subscriber queue."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from mapokezi import messages, store
from media_node.messages import STORAGE_PROBLEM, take_message

CALLER = "+254722000111"
NUMBER = "+254700000100"
ARGS = {
    "name": "Amina",
    "callback_number": "this number",
    "message": "Crown is loose",
    "urgency": "high",
}


@pytest.fixture
def topic(calls_table: Any) -> tuple[str, str]:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    arn = sns.create_topic(Name="messages")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    store.create_call(calls_table, call_id="HD_n1", caller=CALLER, to=NUMBER, retention_days=1)
    return arn, queue


async def take(table: Any, topic_arn: str, args: dict[str, Any] = ARGS) -> dict[str, Any]:
    """``take_message`` on call ``HD_n1`` from `CALLER` to `NUMBER`."""
    return await take_message(
        args,
        table=table,
        call_id="HD_n1",
        caller=CALLER,
        to=NUMBER,
        retention_days=1,
        topic_arn=topic_arn,
    )


async def test_saved_on_the_call_listed_and_notified(
    calls_table: Any, topic: tuple[str, str]
) -> None:
    arn, queue = topic
    result = await take(calls_table, arn)
    assert result["saved"] and result["notified"]
    assert result["read_back"] == (
        f"Saved a high message from Amina, to call back on {CALLER}: Crown is loose"
    )
    assert store.call_record(calls_table, "HD_n1")["message"]["message_id"] == result["message_id"]
    listed, _ = messages.list_messages(calls_table, number=NUMBER)
    assert [m["message_id"] for m in listed] == [result["message_id"]]
    body = json.loads(
        boto3.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0][
            "Body"
        ]
    )
    assert "Crown is loose" in body["Message"] and "HD_n1" in body["Message"]


async def test_problems_go_back_to_the_model_and_nothing_is_stored(
    calls_table: Any, topic: tuple[str, str]
) -> None:
    result = await take(calls_table, topic[0], {**ARGS, "callback_number": "later"})
    assert result["saved"] is False and result["problems"][0].startswith("callback_number:")
    assert messages.list_messages(calls_table)[0] == []


async def test_a_failed_publish_still_saves(calls_table: Any, topic: tuple[str, str]) -> None:
    missing = topic[0] + "-gone"
    result = await take(calls_table, missing)
    assert result["saved"] and result["notified"] is False
    assert len(messages.list_messages(calls_table)[0]) == 1


async def test_a_failed_store_is_reported_not_raised(aws: None) -> None:
    table = boto3.resource("dynamodb").Table("no-such-table")
    result = await take(table, "")
    assert result == {"saved": False, "problems": [STORAGE_PROBLEM]}
