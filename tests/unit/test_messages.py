"""Messages: the tool call's validation (pure), storage in the calls table and the SNS notice
(moto: the notice is read back from an SQS queue subscribed to the topic)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from mapokezi import messages, store
from mapokezi.messages import Message, MessageError, message_from_tool_call

CALLER = "+254722000111"
NUMBER = "+254700000100"
AT = "2026-11-29T10:00:00.000Z"


def build(args: dict[str, Any], caller: str | None = CALLER, at: str = AT) -> Message:
    return message_from_tool_call(args, call_id="HD_m1", caller=caller, to=NUMBER, created_at=at)


GOOD = {"name": "Amina", "callback_number": "this number", "message": "Please call about my crown"}


@pytest.mark.parametrize(
    ("said", "number"),
    [
        ("this number", CALLER),
        ("the number I'm calling from", CALLER),
        ("same one", CALLER),
        ("", CALLER),
        ("0712 345 678", "+254712345678"),
        ("254712345678", "+254712345678"),
        ("+254 712-345-678", "+254712345678"),
        ("00254712345678", "+254712345678"),
    ],
)
def test_callback_number_forms(said: str, number: str) -> None:
    assert build({**GOOD, "callback_number": said}).callback_number == number


def test_valid_tool_call_becomes_an_open_normal_message() -> None:
    message = build(GOOD)
    assert (message.name, message.message, message.urgency, message.state) == (
        "Amina",
        "Please call about my crown",
        "normal",
        "open",
    )
    assert message.caller == CALLER and message.to == NUMBER and message.call_id == "HD_m1"
    assert "Amina" in messages.read_back(message) and CALLER in messages.read_back(message)


def test_every_bad_field_is_named_for_the_model() -> None:
    with pytest.raises(MessageError) as caught:
        build({"name": " ", "callback_number": "twelve", "message": "", "urgency": "asap"})
    fields = [e.split(":")[0] for e in caught.value.errors]
    assert fields == ["name", "message", "callback_number", "urgency"]


def test_this_number_without_a_caller_id_is_refused() -> None:
    with pytest.raises(MessageError, match="callback_number"):
        build(GOOD, caller="anonymous")
    assert build({**GOOD, "callback_number": "0712345678"}, caller=None).caller == "unknown"


def test_too_long_message_is_refused() -> None:
    with pytest.raises(MessageError, match="at most 2000"):
        build({**GOOD, "message": "x" * 2001})


def test_stored_on_the_call_and_listed_per_number_newest_first(calls_table: Any) -> None:
    store.create_call(calls_table, call_id="HD_m1", caller=CALLER, to=NUMBER, retention_days=1)
    older = build(GOOD, at="2026-11-29T09:00:00.000Z")
    newer = build({**GOOD, "name": "Baraka", "urgency": "urgent"}, at="2026-11-29T11:00:00.000Z")
    other = message_from_tool_call(
        GOOD, call_id="HD_x", caller=CALLER, to="+254700000999", created_at=AT
    )
    for message in (older, newer, other):
        messages.put_message(calls_table, message, retention_days=1)
    listed, cursor = messages.list_messages(calls_table, number=NUMBER)
    assert [m["name"] for m in listed] == ["Baraka", "Amina"] and cursor is None
    assert set(listed[0]) >= {"message_id", "call_id", "callback_number", "urgency", "state"}
    assert "pk" not in listed[0] and "number_pk" not in listed[0]
    everything, _ = messages.list_messages(calls_table)
    assert len(everything) == 3
    record = store.call_record(calls_table, "HD_m1")
    assert record["message"]["message_id"] == newer.message_id  # the latest on the call
    # Messages never show up as calls.
    calls, _ = store.query_calls(calls_table, number=NUMBER)
    assert [c["call_id"] for c in calls] == ["HD_m1"]


def test_mark_done_and_open_filter(calls_table: Any) -> None:
    store.create_call(calls_table, call_id="HD_m1", caller=CALLER, to=NUMBER, retention_days=1)
    first, second = build(GOOD), build({**GOOD, "name": "Baraka"})
    for message in (first, second):
        messages.put_message(calls_table, message, retention_days=1)
    done = messages.mark_done(calls_table, first.message_id)
    assert done["state"] == "done" and done["done_at"]
    again = messages.mark_done(calls_table, first.message_id)
    assert again["done_at"] == done["done_at"]
    assert messages.mark_done(calls_table, "nope") is None
    still_open, _ = messages.list_messages(calls_table, number=NUMBER, open_only=True)
    assert [m["message_id"] for m in still_open] == [second.message_id]


def test_notification_names_caller_message_urgency_and_call() -> None:
    subject, text = messages.notification(build({**GOOD, "urgency": "urgent"}))
    assert subject.startswith("URGENT Message from Amina")
    for part in ("Please call about my crown", "urgent", CALLER, "HD_m1", NUMBER):
        assert part in text


def test_publish_reaches_a_subscriber(aws: None) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="messages")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    message = build(GOOD)
    assert messages.publish(message, topic_arn=topic, sns_client=sns)
    received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(received[0]["Body"])
    assert envelope["Subject"] == "Message from Amina for +254700000100"
    assert "Please call about my crown" in envelope["Message"]
    assert envelope["MessageAttributes"]["urgency"]["Value"] == "normal"


def test_publish_without_a_topic_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESSAGES_TOPIC_ARN", raising=False)
    assert messages.publish(build(GOOD)) is None
