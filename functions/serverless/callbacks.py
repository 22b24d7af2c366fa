"""Stream status and platform event callbacks: decoded delivery in, call-table writes out.

Both are at-least-once deliveries: each is stored once (keyed so a retry maps to the same
item) and only a first delivery changes the call. An unknown call never makes the handler
fail, because a non-2xx answer would only make the platform retry the same delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from mapokezi import store
from serverless import cdr_jobs, rescue
from serverless.webhook import (
    STREAM_ERROR,
    STREAM_STARTED,
    STREAM_STOPPED,
    PlatformEvent,
    StreamStatus,
    first,
    phone_number,
    stream_event_kind,
)

logger = Logger(child=True)

STREAM_STATUS_SOURCE = "stream_status"
EVENTS_SOURCE = "events"
CALL_ENDING_KINDS = ("call.completed", "call.failed")


@dataclass(frozen=True)
class CallbackResult:
    """What a delivery did."""

    known_call: bool
    first_delivery: bool
    applied: str | None = None
    duplicate: bool = False


def handle_stream_status(
    status: StreamStatus, *, table: Any, retention_days: int, trusted: bool = True
) -> CallbackResult:
    """Record a stream status event once and move the call's stream state forward.

    A late or re-ordered ``stream-started`` never overwrites ``stopped`` or ``error``, and a
    ``stream-stopped`` keeps an earlier error (its text is what the operator needs). An
    untrusted callback (unsigned, accepted only because signatures on status callbacks are
    switched off) is recorded but cannot mark the stream failed: that state turns a retried
    first POST into a fallback, so only a signed callback or the voice webhook may set it.
    """
    call = store.get_call(table, status.call_id)
    if call is None:
        logger.warning(
            "stream status for an unknown call",
            extra={"call_id": status.call_id, "stream_event": status.raw_event},
        )
        return CallbackResult(known_call=False, first_delivery=False)
    first_delivery = store.record_event(
        table,
        status.call_id,
        source=STREAM_STATUS_SOURCE,
        # Apart from signed ones, so an unsigned copy can never pre-empt a signed delivery.
        dedupe_key=status.dedupe_key() if trusted else f"unsigned#{status.dedupe_key()}",
        payload=dict(status.fields),
        retention_days=retention_days,
    )
    if not first_delivery:
        return CallbackResult(known_call=True, first_delivery=False, duplicate=True)
    current = (call.get("stream") or {}).get("state")
    applied: str | None = None
    if status.event == STREAM_ERROR and not trusted:
        logger.warning(
            "unsigned stream error recorded without changing the stream state",
            extra={"call_id": status.call_id, "error": status.error},
        )
    elif status.event == STREAM_ERROR:
        applied = STREAM_ERROR
        detail = status.error or status.raw_event or "stream error"
        store.set_stream_state(table, status.call_id, "error", error=detail, sid=status.stream_sid)
        logger.warning("media stream error", extra={"call_id": status.call_id, "error": detail})
    elif status.event == STREAM_STOPPED and current != "error":
        applied = STREAM_STOPPED
        store.set_stream_state(table, status.call_id, "stopped", sid=status.stream_sid)
        rescue.on_stream_stopped(table, status.call_id)
    elif status.event == STREAM_STARTED and current not in ("stopped", "error"):
        applied = STREAM_STARTED
        store.set_stream_state(table, status.call_id, "started", sid=status.stream_sid)
    elif status.event is None:
        logger.info("unrecognised stream status", extra={"stream_event": status.raw_event})
    return CallbackResult(known_call=True, first_delivery=True, applied=applied)


def handle_platform_event(
    event: PlatformEvent,
    *,
    table: Any,
    retention_days: int,
    cdr_delay_seconds: int,
    enqueue_cdr: cdr_jobs.Enqueue = cdr_jobs.enqueue_cdr_fetch,
) -> CallbackResult:
    """Record an ``events_url`` delivery once (deduplicated on ``event_id``).

    ``call.completed`` and ``call.failed`` end the call and queue its CDR fetch, unless a
    ``Completed`` voice POST already did; a call with no record yet gets one (ended, marked
    incomplete). Events without a call id (workspace events) are logged, as there is no call
    to file them under.
    """
    if not event.call_id:
        logger.info(
            "event without a call id", extra={"kind": event.kind, "event_id": event.event_id}
        )
        return CallbackResult(known_call=False, first_delivery=False)
    first_delivery = store.record_event(
        table,
        event.call_id,
        source=EVENTS_SOURCE,
        dedupe_key=event.event_id,
        payload={
            "kind": event.kind,
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
            "data": dict(event.data),
        },
        retention_days=retention_days,
    )
    if event.kind not in CALL_ENDING_KINDS:
        known = store.get_call(table, event.call_id) is not None
        if first_delivery and known:
            _handoff_edges(table, event)
        return CallbackResult(known, first_delivery, duplicate=not first_delivery)
    # Ending a call is idempotent, so a retried delivery (after a failure half-way through the
    # first one) still ends it; only the first end queues the CDR fetch.
    call = store.get_call(table, event.call_id)
    if call is None:
        # The platform's hangup came before (or instead of) any voice POST we recorded: keep
        # the call, ended and marked incomplete, rather than losing it.
        logger.warning(
            "call ended before any voice POST was recorded",
            extra={"call_id": event.call_id, "kind": event.kind},
        )
        store.create_call(
            table,
            call_id=event.call_id,
            caller=phone_number(event.data, ("from", "caller")) or "unknown",
            to=phone_number(event.data, ("to",)) or "unknown",
            retention_days=retention_days,
        )
        store.mark_incomplete(table, event.call_id, [store.MISSING_FIRST_ANSWER])
    reason = event.kind
    failure = first(event.data, ("failure_reason", "hangup_cause"))
    if event.kind == "call.failed" and failure:
        reason = f"{event.kind}:{failure}"
    duration = event.data.get("duration_seconds")
    ended = cdr_jobs.finish_call(
        table,
        event.call_id,
        reason=reason,
        duration_seconds=duration if type(duration) is int and duration >= 0 else None,
        delay_seconds=cdr_delay_seconds,
        enqueue=enqueue_cdr,
    )
    return CallbackResult(
        True, first_delivery, applied="ended" if ended else None, duplicate=not first_delivery
    )


def _handoff_edges(table: Any, event: PlatformEvent) -> None:
    """A stream that stopped may need a rescue; supervision events move a supervised handoff."""
    assert event.call_id is not None
    if event.kind.startswith("call.supervision."):
        rescue.apply_supervision_event(table, event.call_id, event.kind, event.data)
        return
    state = first(event.data, ("callSessionState", "streamEvent"))
    stopped = stream_event_kind(event.kind) == STREAM_STOPPED
    if stopped or stream_event_kind(state) == STREAM_STOPPED:
        rescue.on_stream_stopped(table, event.call_id)
