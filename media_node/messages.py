"""The node's side of ``take_message``: validate, store and publish, off the event loop.

The call awaits :func:`take_message` when the model calls the tool and sends the returned
mapping back to the model as the tool's output: ``saved`` with a ``read_back`` line, or the
``problems`` to ask the caller about again. boto3 is blocking, so the table write and the SNS
publish run in worker threads; neither failing ever ends the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from mapokezi import messages, store

log = logging.getLogger(__name__)

STORAGE_PROBLEM = (
    "storage: the message could not be saved; apologise, and offer to connect the caller or "
    "ask them to call again"
)


async def take_message(
    arguments: Mapping[str, Any],
    *,
    table: Any,
    call_id: str,
    caller: str | None,
    to: str,
    retention_days: int,
    topic_arn: str | None = None,
    sns_client: Any = None,
    now: Callable[[], str] = store.now_iso,
) -> dict[str, Any]:
    """Turn a ``take_message`` tool call into a stored, published message.

    Args:
        arguments: the tool call's arguments.
        table: the calls table.
        call_id, caller, to: the call, the caller's number (for "this number") and the number
            they dialled (whose business the message is for).
        retention_days: the profile's retention.
        topic_arn: the messages topic (default ``MESSAGES_TOPIC_ARN``; none: store only).
        sns_client: a boto3 SNS client (default: a new one).
        now: ISO clock for ``created_at``.

    Returns:
        The tool output: ``{"saved": True, "message_id", "notified", "read_back"}`` or
        ``{"saved": False, "problems": [...]}``.
    """
    try:
        message = messages.message_from_tool_call(
            arguments, call_id=call_id, caller=caller, to=to, created_at=now()
        )
    except messages.MessageError as exc:
        return {"saved": False, "problems": exc.errors}
    try:
        await asyncio.to_thread(messages.put_message, table, message, retention_days=retention_days)
    except Exception:
        log.exception("call %s: storing the message failed", call_id)
        return {"saved": False, "problems": [STORAGE_PROBLEM]}
    notified = False
    try:
        published = await asyncio.to_thread(
            messages.publish, message, topic_arn=topic_arn, sns_client=sns_client
        )
        notified = published is not None
    except Exception:  # stored and listable: the operator still sees it
        log.exception("call %s: publishing message %s failed", call_id, message.message_id)
    log.info("call %s: message %s taken (notified=%s)", call_id, message.message_id, notified)
    return {
        "saved": True,
        "message_id": message.message_id,
        "notified": notified,
        "read_back": messages.read_back(message),
    }
