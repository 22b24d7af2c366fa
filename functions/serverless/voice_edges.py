"""Lifecycle POSTs of the voice webhook (``callSessionState``): each is recorded once, and only
the edges that need an action get one:

- ``StreamStopped`` (or a stream error): dial the pending handoff, or hang up for ``end_call``,
  or — if the caller is still there and nothing is pending — speak the fallback line and dial
  the front desk, so the caller never sits in dead air. At most one such answer per call.
- ``Completed``: mark the call ended, strand a handoff still pending, queue the CDR fetch (first
  time only).
- ``DialCompleted``: a failed dial gets an apology and a hangup, and the handoff is marked failed.

A lifecycle POST for a call with no record (its first POST was answered while the table was
down, or never came) creates the record, marked ``incomplete``, so the call is not lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from mapokezi import store
from mapokezi.profiles import E164, Profile
from serverless import cdr_jobs, profile_cache, rescue
from serverless.sautikit_xml import Hangup, Say, render
from serverless.voice_answers import (
    DIAL_FAILED,
    DIAL_FAILED_TEXT,
    HANGUP,
    STREAM_FAILED,
    STREAM_LOST,
    STREAM_STOPPED,
    TRANSFER,
    UNKNOWN_CALL,
    VoiceAnswer,
    dial,
    empty,
    fallback,
    front_desk_answer,
    say,
)
from serverless.webhook import STREAM_ERROR, STREAM_ERROR_FIELDS, VoiceRequest, first
from serverless.webhook import stream_event_kind as _stream_event_kind

if TYPE_CHECKING:
    from serverless.voice_flow import VoiceSettings

logger = Logger(child=True)

EVENT_SOURCE = "voice"
SETUP_KEY = "setup"
#: Event key claimed once per call by the answer given after the stream ends.
_AFTER_STREAM_KEY = "answer#after-stream"

_FAILED_DIAL = re.compile(r"noanswer|busy|fail")


def record_post(table: Any, request: VoiceRequest, key: str, retention_days: int) -> bool:
    """Store this POST once under ``key``; False when it was already stored (a retry)."""
    return store.record_event(
        table,
        request.call_id,
        source=EVENT_SOURCE,
        dedupe_key=key,
        payload=dict(request.fields),
        retention_days=retention_days,
    )


def lifecycle(
    request: VoiceRequest,
    call: Mapping[str, Any],
    table: Any,
    settings: VoiceSettings,
    enqueue_cdr: cdr_jobs.Enqueue,
) -> VoiceAnswer:
    """Answer a lifecycle POST of a known call."""
    state = (request.state or "").strip()
    lowered = state.lower()
    record_post(table, request, state, settings.retention_days)
    if lowered == "streamstarted":
        if (call.get("stream") or {}).get("state") not in ("stopped", "error"):
            store.set_stream_state(table, request.call_id, "started")
        return empty()
    if lowered == "completed":
        return _completed(request, call, table, settings, enqueue_cdr)
    if lowered == "dialcompleted":
        return _dial_completed(request, call, table)
    kind = _stream_event_kind(state)
    if kind == "stopped" or kind == STREAM_ERROR:
        return _after_stream(request, call, table, settings, error=kind == STREAM_ERROR)
    return empty()


def unknown_call(
    request: VoiceRequest, table: Any, settings: VoiceSettings, enqueue_cdr: cdr_jobs.Enqueue
) -> VoiceAnswer:
    """A lifecycle POST for a call with no record: create it (incomplete) and act on the edge."""
    state = (request.state or "").strip()
    logger.warning(
        "lifecycle POST for a call with no record; recording it as incomplete",
        extra={"call_id": request.call_id, "state": state},
    )
    store.create_call(
        table,
        call_id=request.call_id,
        caller=request.caller or "unknown",
        to=request.to or "unknown",
        retention_days=settings.retention_days,
        attributes={"session_id": request.session_id} if request.session_id else {},
    )
    store.mark_incomplete(table, request.call_id, [store.MISSING_FIRST_ANSWER])
    record_post(table, request, state, settings.retention_days)
    if state.lower() == "completed":
        _finish_completed(request, table, settings, enqueue_cdr)
        return empty(UNKNOWN_CALL)
    if _stream_event_kind(state) in ("stopped", STREAM_ERROR) and request.is_active is not False:
        # Nothing says what the caller was doing: reach a person rather than leave silence.
        profile = profile_cache.get_profile(table, request.to) if request.to else None
        return front_desk_answer(profile, settings.fallback_front_desk, STREAM_FAILED)
    return empty(UNKNOWN_CALL)


def _profile_of(table: Any, call: Mapping[str, Any]) -> Profile | None:
    to = call.get("to")
    return profile_cache.get_profile(table, to) if to else None


def _caller_gone(request: VoiceRequest, call: Mapping[str, Any]) -> bool:
    # The platform's isActive is the truth when present; our own facts only when it is absent.
    if request.is_active is not None:
        return not request.is_active
    return (
        call.get("status") == store.STATUS_ENDED
        or (call.get("media") or {}).get("outcome") == "caller_hangup"
    )


def _after_stream(
    request: VoiceRequest,
    call: Mapping[str, Any],
    table: Any,
    settings: VoiceSettings,
    *,
    error: bool,
) -> VoiceAnswer:
    current = (call.get("stream") or {}).get("state")
    if error:
        detail = first(request.fields, STREAM_ERROR_FIELDS) or request.state
        store.set_stream_state(table, request.call_id, "error", error=detail)
    elif current != "error":
        store.set_stream_state(table, request.call_id, "stopped")
    # One answer per call after the stream: a repeated StreamStopped, or an error edge followed
    # by a stop edge, must not dial twice.
    first_answer = store.record_event(
        table,
        request.call_id,
        source=EVENT_SOURCE,
        dedupe_key=_AFTER_STREAM_KEY,
        payload={"state": request.state},
        retention_days=settings.retention_days,
    )
    if not first_answer:
        return empty()
    profile = _profile_of(table, call)
    handoff = store.take_pending_handoff(table, request.call_id)
    if handoff is not None:
        rescue.learn_repost(table, call)
        return _handoff_answer(request, handoff, profile, settings)
    if _caller_gone(request, call):
        return empty()
    if error or current == "error":
        reason = STREAM_FAILED
    elif (call.get("media") or {}).get("outcome") == STREAM_LOST:
        reason = STREAM_LOST
    else:
        reason = STREAM_STOPPED
    logger.warning(
        "stream ended with nothing pending; dialling the front desk",
        extra={"call_id": request.call_id, "reason": reason},
    )
    if profile is None:
        logger.warning("profile vanished during the call", extra={"call_id": request.call_id})
        return front_desk_answer(None, settings.fallback_front_desk, reason)
    return fallback(profile, reason)


def _handoff_answer(
    request: VoiceRequest,
    handoff: Mapping[str, Any],
    profile: Profile | None,
    settings: VoiceSettings,
) -> VoiceAnswer:
    if handoff.get("kind") == "hangup":
        return VoiceAnswer(render([Hangup()]), HANGUP, str(handoff.get("reason") or ""))
    if profile is None:
        logger.warning("handoff for a number with no profile", extra={"call_id": request.call_id})
        return front_desk_answer(None, settings.fallback_front_desk)
    target = str(handoff.get("target") or "")
    if not E164.match(target):
        target = profile.transfer_target(handoff.get("department"))
    logger.info(
        "dialling handoff",
        extra={"call_id": request.call_id, "target": target, "reason": handoff.get("reason")},
    )
    verbs = [say(profile, profile.lines.handoff), dial(profile, target)]
    return VoiceAnswer(render(verbs), TRANSFER, str(handoff.get("reason") or ""))


def _finish_completed(
    request: VoiceRequest, table: Any, settings: VoiceSettings, enqueue_cdr: cdr_jobs.Enqueue
) -> bool:
    """End the call on its ``Completed`` POST and queue the CDR fetch; True for the first end."""
    return cdr_jobs.finish_call(
        table,
        request.call_id,
        reason="completed",
        duration_seconds=request.duration_seconds,
        delay_seconds=settings.cdr_delay_seconds,
        enqueue=enqueue_cdr,
    )


def _completed(
    request: VoiceRequest,
    call: Mapping[str, Any],
    table: Any,
    settings: VoiceSettings,
    enqueue_cdr: cdr_jobs.Enqueue,
) -> VoiceAnswer:
    ended = _finish_completed(request, table, settings, enqueue_cdr)
    stranded = ended and (call.get("handoff") or {}).get("state") == store.HANDOFF_PENDING
    if stranded:
        # The handoff was written but no StreamStopped POST came to act on it.
        logger.warning(
            "call ended with a handoff still pending", extra={"call_id": request.call_id}
        )
    return VoiceAnswer(empty().xml, "empty", handoff_stranded=stranded)


def dial_failed(statuses: tuple[str, ...]) -> bool:
    """Whether any status field says the dial did not connect (no answer, busy, failed)."""
    return any(_FAILED_DIAL.search(re.sub(r"[^a-z]", "", s.lower())) for s in statuses)


def _dial_completed(request: VoiceRequest, call: Mapping[str, Any], table: Any) -> VoiceAnswer:
    if not dial_failed(request.dial_statuses):
        return empty()
    store.set_handoff_state(
        table,
        request.call_id,
        expected=store.HANDOFF_DIALLED,
        state="failed",
        detail=", ".join(request.dial_statuses),
    )
    profile = _profile_of(table, call)
    text = say(profile, DIAL_FAILED_TEXT) if profile else Say(DIAL_FAILED_TEXT, language="en-KE")
    return VoiceAnswer(render([text, Hangup()]), DIAL_FAILED, "dial_failed")
