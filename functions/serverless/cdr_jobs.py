"""Deferred CDR fetches: the SQS message format and how a hangup queues one.

The platform computes cost at hangup and its record may not be final for a while, so the
fetcher (``functions/cdr``) runs after a delay and may re-queue itself with ``attempt + 1``.
Message body (JSON): ``{"call_id": str, "attempt": int, "queued_at": iso,
"first_queued_at": iso}``; ``first_queued_at`` is carried through re-queues and bounds the
total time a fetch is retried.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from mapokezi import config, store
from mapokezi.config import ConfigError

logger = Logger(child=True)

#: A handoff the call ended with, still pending: no person was ever rung.
HANDOFF_STRANDED = "stranded"
#: SQS caps DelaySeconds at 15 minutes.
MAX_DELAY_SECONDS = 900


@dataclass(frozen=True)
class CdrJob:
    """One queued CDR fetch."""

    call_id: str
    attempt: int
    queued_at: str
    first_queued_at: str = ""


def message_body(
    call_id: str,
    *,
    attempt: int = 0,
    queued_at: str | None = None,
    first_queued_at: str | None = None,
) -> str:
    """The JSON body of a CDR fetch message."""
    queued = queued_at or store.now_iso()
    body = {
        "call_id": call_id,
        "attempt": attempt,
        "queued_at": queued,
        "first_queued_at": first_queued_at or queued,
    }
    return json.dumps(body, separators=(",", ":"))


def parse_message(body: str) -> CdrJob:
    """Read a CDR fetch message body.

    Raises:
        ValueError: not JSON, or ``call_id``/``attempt`` missing or of the wrong type.
    """
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("CDR job must be a JSON object")
    call_id, attempt = data.get("call_id"), data.get("attempt", 0)
    if not isinstance(call_id, str) or not call_id:
        raise ValueError("CDR job has no call_id")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValueError("CDR job attempt must be a whole number >= 0")
    queued_at = str(data.get("queued_at") or "")
    return CdrJob(call_id, attempt, queued_at, str(data.get("first_queued_at") or queued_at))


@cache
def _sqs() -> Any:
    return config.aws_client("sqs")


def reset_client() -> None:
    """Forget the cached SQS client (tests switching moto mocks, or a new endpoint)."""
    _sqs.cache_clear()


def enqueue_cdr_fetch(
    call_id: str,
    *,
    delay_seconds: int,
    attempt: int = 0,
    first_queued_at: str | None = None,
    sqs_client: Any = None,
    queue_url: str | None = None,
) -> str:
    """Queue a CDR fetch for ``call_id`` after ``delay_seconds`` (clamped to 0..900).

    Args:
        call_id: the call to fetch.
        delay_seconds: SQS message delay.
        attempt: 0 for the first fetch; the fetcher re-queues with attempt + 1.
        first_queued_at: when the first job of this chain was queued (default: now).
        sqs_client: boto3 SQS client (default: a shared one).
        queue_url: queue to use (default: ``CDR_QUEUE_URL``).

    Returns:
        The SQS message id.

    Raises:
        ConfigError: no queue URL configured.
    """
    url = queue_url or os.environ.get("CDR_QUEUE_URL", "")
    if not url:
        raise ConfigError("CDR_QUEUE_URL is not set; cannot queue the CDR fetch")
    client = sqs_client or _sqs()
    response = client.send_message(
        QueueUrl=url,
        MessageBody=message_body(call_id, attempt=attempt, first_queued_at=first_queued_at),
        DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
    )
    return str(response["MessageId"])


Enqueue = Callable[..., Any]


def finish_call(
    table: Any,
    call_id: str,
    *,
    reason: str,
    delay_seconds: int,
    duration_seconds: int | None = None,
    enqueue: Enqueue = enqueue_cdr_fetch,
) -> bool:
    """Mark the call ended and, for the first end only, queue its CDR fetch.

    The record's ``cdr.fetch_state`` says ``queued``, or ``error`` with the reason when the
    queue could not be reached (the hangup itself is still recorded). A handoff still pending
    when the call ends was never dialled: it is marked ``stranded``.

    Returns:
        True when this call ended the call (repeats of the hangup return False).
    """
    if not store.mark_ended(table, call_id, reason=reason, duration_seconds=duration_seconds):
        return False
    store.set_handoff_state(
        table,
        call_id,
        expected=store.HANDOFF_PENDING,
        state=HANDOFF_STRANDED,
        detail=f"the call ended ({reason}) before the handoff was dialled",
    )
    store.record_cdr(
        table, call_id, {"fetch_state": "queued", "attempts": 0, "queued_at": store.now_iso()}
    )
    try:
        enqueue(call_id, delay_seconds=delay_seconds)
    except Exception as exc:
        # Failing the webhook would not help: its retry finds the call already ended. Keep the
        # failure visible on the record and in the logs instead.
        logger.exception("could not queue the CDR fetch", extra={"call_id": call_id})
        store.record_cdr(
            table, call_id, {"fetch_state": "error", "attempts": 0, "error": str(exc)[:500]}
        )
    return True
