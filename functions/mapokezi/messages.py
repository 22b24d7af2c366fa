"""Messages taken for the business: validation, storage, listing and the SNS notification.

The receptionist's ``take_message(name, callback_number, message, urgency)`` tool call becomes a
:class:`Message` through :func:`message_from_tool_call` (pure; "this number" means the caller's
own number). It is stored twice: as its own item (listable per dialled number or overall, newest
first, with a state ``open`` | ``done``) and on the call record (``message``), then published to
the messages SNS topic (``MESSAGES_TOPIC_ARN``) so the business hears of it within seconds.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from mapokezi import config, keys, store
from mapokezi.profiles import E164

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

URGENCIES = ("low", "normal", "high", "urgent")


class MessageState(StrEnum):
    """A message's ``state``: ``open`` until someone marks it done."""

    OPEN = "open"
    DONE = "done"


STATE_OPEN, STATE_DONE = MessageState.OPEN, MessageState.DONE
MAX_MESSAGE_CHARS = 2000
#: Words of "call me back on the number I am calling from" (a callback without digits).
_OWN_NUMBER_WORDS = ("this", "same", "my", "calling from", "caller", "current")


class MessageError(ValueError):
    """A tool call that cannot become a message; ``errors`` lists ``"<field>: <reason>"``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Message:
    """One message for the business."""

    message_id: str
    call_id: str
    to: str
    caller: str
    name: str
    callback_number: str
    message: str
    urgency: str = "normal"
    state: str = STATE_OPEN
    created_at: str = ""
    done_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what the record, the CLI and the notification carry)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def normalise_number(value: str, caller: str | None) -> str | None:
    """E.164 for a spoken or typed number; the caller's number for "this number"; else None.

    Kenyan local forms (``0712 345 678``, ``254712345678``) become ``+254…``.
    """
    text = value.strip().lower()
    if not any(ch.isdigit() for ch in text):
        own = not text or any(word in text for word in _OWN_NUMBER_WORDS)
        return caller if own and caller and E164.match(caller) else None
    digits = re.sub(r"[\s\-().]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0") and len(digits) == 10:
        digits = "+254" + digits[1:]
    elif digits.startswith("254") and len(digits) == 12:
        digits = "+" + digits
    return digits if E164.match(digits) else None


def message_from_tool_call(
    args: Mapping[str, Any], *, call_id: str, caller: str | None, to: str, created_at: str
) -> Message:
    """Validate a ``take_message`` tool call.

    Raises:
        MessageError: listing each unusable field, phrased so the model can ask again.
    """
    errors: list[str] = []
    name = args.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append("name: ask the caller for their name")
        name = ""
    elif len(name) > 120:
        errors.append("name: must be at most 120 characters")
    text = args.get("message")
    if not isinstance(text, str) or not text.strip():
        errors.append("message: ask what the message is")
        text = ""
    elif len(text) > MAX_MESSAGE_CHARS:
        errors.append(f"message: must be at most {MAX_MESSAGE_CHARS} characters")
    raw_number = args.get("callback_number", "")
    number = normalise_number(raw_number, caller) if isinstance(raw_number, str) else None
    if number is None:
        errors.append(
            "callback_number: not a phone number; ask for the full number "
            "(or use 'this number' for the one they are calling from, if it is shown)"
        )
    urgency = args.get("urgency") or "normal"
    if urgency not in URGENCIES:
        errors.append(f"urgency: must be one of {', '.join(URGENCIES)}")
    if errors:
        raise MessageError(errors)
    return Message(
        message_id=uuid.uuid4().hex,
        call_id=call_id,
        to=to,
        caller=caller or "unknown",
        name=name.strip(),
        callback_number=str(number),
        message=text.strip(),
        urgency=str(urgency),
        created_at=created_at,
    )


def read_back(message: Message) -> str:
    """How the receptionist confirms what was saved."""
    return (
        f"Saved a {message.urgency} message from {message.name}, to call back on "
        f"{message.callback_number}: {message.message}"
    )


# -- storage ----------------------------------------------------------------------------------


def put_message(table: Table, message: Message, *, retention_days: int) -> None:
    """Store the message item and put it on its call record (``message``)."""
    item = {
        **keys.message_key(message.message_id),
        **keys.message_index_attributes(
            message_id=message.message_id, to=message.to, created_at=message.created_at
        ),
        **message.to_dict(),
        keys.TTL_ATTRIBUTE: store.expiry(retention_days),
    }
    table.put_item(Item=store.to_dynamo(item))
    store.record_message(table, message.call_id, message.to_dict())


def list_messages(
    table: Table,
    *,
    number: str | None = None,
    open_only: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Messages newest first, for one dialled number or all; returns (messages, next cursor)."""
    index = keys.INDEX_BY_NUMBER if number else keys.INDEX_BY_TIME
    pk_attr, _ = keys.INDEXES[index]
    kwargs: dict[str, Any] = {
        "IndexName": index,
        "KeyConditionExpression": Key(pk_attr).eq(keys.message_index_partition(index, number)),
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if open_only:
        kwargs["FilterExpression"] = Attr("state").eq(STATE_OPEN)
    if cursor:
        kwargs["ExclusiveStartKey"] = store.decode_cursor(cursor)
    page = table.query(**kwargs)
    items = [_public(store.from_dynamo(i)) for i in page.get("Items", [])]
    last = page.get("LastEvaluatedKey")
    return items, store.encode_cursor(last) if last else None


def get_message(table: Table, message_id: str) -> dict[str, Any] | None:
    """One message, or None."""
    item = table.get_item(Key=keys.message_key(message_id), ConsistentRead=True).get("Item")
    return _public(store.from_dynamo(item)) if item else None


def mark_done(table: Table, message_id: str) -> dict[str, Any] | None:
    """Mark a message done (again is harmless); None when there is no such message."""
    try:
        result = table.update_item(
            Key=keys.message_key(message_id),
            UpdateExpression="SET #state = :done, done_at = if_not_exists(done_at, :at)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":done": STATE_DONE, ":at": store.now_iso()},
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return None
        raise
    return _public(store.from_dynamo(result["Attributes"]))


def _public(item: Mapping[str, Any]) -> dict[str, Any]:
    hidden = {keys.PK, keys.SK, keys.TTL_ATTRIBUTE, "number_pk", "all_pk", "started_sk"}
    return {k: v for k, v in item.items() if k not in hidden}


# -- notification -----------------------------------------------------------------------------


def notification(message: Message | Mapping[str, Any]) -> tuple[str, str]:
    """(subject, text) of the SNS notification: caller, message, urgency and call id."""
    m = message.to_dict() if isinstance(message, Message) else dict(message)
    urgency = str(m.get("urgency", "normal"))
    flag = "URGENT " if urgency == "urgent" else ""
    subject = f"{flag}Message from {m.get('name')} for {m.get('to')}"[:100]
    text = (
        f"{m.get('name')} left a {urgency} message.\n\n"
        f"{m.get('message')}\n\n"
        f"Call back: {m.get('callback_number')}\n"
        f"Called from: {m.get('caller')}\n"
        f"Number dialled: {m.get('to')}\n"
        f"Call id: {m.get('call_id')}\n"
        f"Message id: {m.get('message_id')} (mark done: mapokezi messages done "
        f"{m.get('message_id')})"
    )
    return subject, text


def publish(
    message: Message, *, topic_arn: str | None = None, sns_client: Any = None
) -> str | None:
    """Publish the notification to ``topic_arn`` (default ``MESSAGES_TOPIC_ARN``).

    Returns the SNS message id, or None when no topic is configured (the message is still
    stored and listable). Raises botocore errors when SNS refuses.
    """
    arn = topic_arn if topic_arn is not None else os.environ.get("MESSAGES_TOPIC_ARN", "")
    if not arn:
        return None
    if sns_client is None:
        sns_client = config.aws_client("sns")
    subject, text = notification(message)
    response = sns_client.publish(
        TopicArn=arn,
        Subject=subject,
        Message=text,
        MessageAttributes={
            "urgency": {"DataType": "String", "StringValue": message.urgency},
            "to": {"DataType": "String", "StringValue": message.to},
        },
    )
    return str(response["MessageId"])
