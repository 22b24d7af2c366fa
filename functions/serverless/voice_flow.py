"""What the voice webhook answers: one decoded POST in, XML plus call-table writes out.

The first POST of a call answers ``<Stream>`` to the media node (or a spoken fallback when no
node is healthy, the stream already failed, or the business is closed). Later POSTs are
lifecycle edges (``callSessionState``) and are idempotent: each is recorded once, and only
the edges that need an action get one:

- ``StreamStopped`` (or a stream error): dial the pending handoff, or hang up for ``end_call``,
  or — if the caller is still there and nothing is pending — speak the fallback line and dial
  the front desk, so the caller never sits in dead air. At most one such answer per call.
- ``Completed``: mark the call ended and queue the CDR fetch (first time only).
- ``DialCompleted``: a failed dial gets an apology and a hangup.

Opening hours use the injected ``now`` clock; tokens and heartbeats use real time, because the
media node checks them against its own clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools import Logger

from mapokezi import store, tokens
from mapokezi.profiles import E164, Profile
from serverless import cdr_jobs
from serverless.sautikit_xml import Dial, Hangup, Say, Stream, Verb, empty_response, render
from serverless.webhook import (
    STREAM_ERROR,
    STREAM_ERROR_FIELDS,
    VoiceRequest,
    WebhookError,
    first,
    stream_event_kind,
)

logger = Logger(child=True)

UNKNOWN_NUMBER_TEXT = "Sorry, this number is not in service. Please check the number and try again."
UNKNOWN_NUMBER_LANGUAGE = "en-KE"
DIAL_FAILED_TEXT = "Sorry, nobody is available to take your call right now. Please try again later."

EVENT_SOURCE = "voice"
_SETUP_KEY = "setup"
#: Event key claimed once per call by the answer given after the stream ends.
_AFTER_STREAM_KEY = "answer#after-stream"

# Outcomes (what the answer does); the handler turns them into metrics.
STREAM = "stream"
EMPTY = "empty"
FALLBACK = "fallback"
AFTER_HOURS = "after_hours"
TRANSFER = "transfer"
HANGUP = "hangup"
DIAL_FAILED = "dial_failed"
UNKNOWN_NUMBER = "unknown_number"
UNKNOWN_CALL = "unknown_call"

# Fallback reasons (a metric dimension: keep this set small and fixed).
NO_MEDIA_NODE = "no_media_node"
STREAM_FAILED = "stream_error"
STREAM_STOPPED = "stream_stopped"
NOT_CONFIGURED = "not_configured"

_FAILED_DIAL = re.compile(r"noanswer|busy|fail")


@dataclass(frozen=True)
class VoiceSettings:
    """What the voice flow needs from the environment."""

    media_stream_url: str
    public_base_url: str
    stream_token_secret: str | None
    heartbeat_max_age_seconds: int = 30
    cdr_delay_seconds: int = 30
    retention_days: int = 90
    token_ttl_seconds: int = tokens.DEFAULT_TTL_SECONDS


@dataclass(frozen=True)
class VoiceAnswer:
    """The XML to return and what it does."""

    xml: str
    outcome: str
    reason: str | None = None
    call_created: bool = False
    handoff_stranded: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


def handle_voice(
    request: VoiceRequest,
    *,
    table: Any,
    settings: VoiceSettings,
    now: Callable[[], datetime] = _utc_now,
    enqueue_cdr: cdr_jobs.Enqueue = cdr_jobs.enqueue_cdr_fetch,
) -> VoiceAnswer:
    """Answer one voice webhook POST.

    Args:
        request: the decoded POST.
        table: the calls table.
        settings: URLs, secrets and timings.
        now: clock for opening hours.
        enqueue_cdr: queues a CDR fetch (``enqueue_cdr_fetch``'s signature).

    Raises:
        WebhookError: the first POST of a call has no dialled number.
    """
    keyed_on, call = store.find_call(table, request.call_id, request.session_id)
    if keyed_on != request.call_id:
        request = replace(request, call_id=keyed_on)
    state = (request.state or "").strip()
    lowered = state.lower()
    if call is None and lowered in ("", "completed"):
        # A first POST that already says Completed has been seen carrying set-up fields:
        # treat it as the set-up, so the real hangup later is still recognised.
        return _set_up(request, None, table, settings, now)
    if call is None:
        logger.warning(
            "lifecycle POST for an unknown call", extra={"call_id": request.call_id, "state": state}
        )
        _record(table, request, state, settings.retention_days)
        return VoiceAnswer(empty_response(), UNKNOWN_CALL)
    if not state:
        _record(table, request, _SETUP_KEY, settings.retention_days)
        return _set_up(request, call, table, settings, now)
    _record(table, request, state, settings.retention_days)
    if lowered == "streamstarted":
        if (call.get("stream") or {}).get("state") not in ("stopped", "error"):
            store.set_stream_state(table, request.call_id, "started")
        return VoiceAnswer(empty_response(), EMPTY)
    if lowered == "completed":
        return _completed(request, call, table, settings, enqueue_cdr)
    if lowered == "dialcompleted":
        return _dial_completed(request, call, table)
    kind = stream_event_kind(state)
    if kind == "stopped" or kind == STREAM_ERROR:
        return _after_stream(request, call, table, settings, error=kind == STREAM_ERROR)
    return VoiceAnswer(empty_response(), EMPTY)


def _record(table: Any, request: VoiceRequest, key: str, retention_days: int) -> bool:
    """Store this POST once under ``key``; False when it was already stored (a retry)."""
    return store.record_event(
        table,
        request.call_id,
        source=EVENT_SOURCE,
        dedupe_key=key,
        payload=dict(request.fields),
        retention_days=retention_days,
    )


def _say(profile: Profile, text: str) -> Say:
    return Say(text, voice=profile.say.voice, language=profile.say.language)


def _dial(profile: Profile, number: str) -> Dial:
    return Dial(
        number,
        caller_id=profile.caller_id or profile.number,
        timeout_seconds=profile.dial_timeout_seconds,
    )


def fallback_verbs(profile: Profile) -> list[Verb]:
    """Speak the fallback line and dial the front desk."""
    return [_say(profile, profile.lines.fallback), _dial(profile, profile.front_desk)]


def after_hours_verbs(profile: Profile) -> list[Verb]:
    """Speak the after-hours line, then dial the after-hours number or hang up."""
    last: Verb = (
        _dial(profile, profile.after_hours_number) if profile.after_hours_number else Hangup()
    )
    return [_say(profile, profile.lines.after_hours), last]


def unknown_number_xml() -> str:
    """The polite answer for a dialled number with no profile."""
    return render([Say(UNKNOWN_NUMBER_TEXT, language=UNKNOWN_NUMBER_LANGUAGE), Hangup()])


def stream_url(media_stream_url: str, token: str) -> str:
    """The media socket URL carrying ``token`` in its query."""
    separator = "&" if "?" in media_stream_url else "?"
    return f"{media_stream_url}{separator}token={quote(token, safe='')}"


def _set_up(
    request: VoiceRequest,
    call: Mapping[str, Any] | None,
    table: Any,
    settings: VoiceSettings,
    now: Callable[[], datetime],
) -> VoiceAnswer:
    to = request.to or (call or {}).get("to")
    if not to:
        raise WebhookError("no dialled number (expected To, to or destinationNumber)")
    profile = store.get_profile(table, to)
    if profile is None:
        logger.warning("call to an unknown number", extra={"call_id": request.call_id, "to": to})
        return VoiceAnswer(unknown_number_xml(), UNKNOWN_NUMBER)
    created = False
    if call is None:
        attributes = {"session_id": request.session_id} if request.session_id else {}
        created = store.create_call(
            table,
            call_id=request.call_id,
            caller=request.caller or "unknown",
            to=to,
            retention_days=profile.retention_days,
            attributes=attributes,
        )
        if created:
            _record(table, request, _SETUP_KEY, profile.retention_days)
        else:  # a concurrent retry created it first
            call = store.get_call(table, request.call_id)
    if call is not None:
        retry = _retried_set_up(call, profile)
        if retry is not None:
            return retry
    answer = _fresh_answer(request, profile, table, settings, now)
    return VoiceAnswer(answer.xml, answer.outcome, answer.reason, call_created=created)


def _retried_set_up(call: Mapping[str, Any], profile: Profile) -> VoiceAnswer | None:
    """The answer to a repeated first POST, or None to answer it like a new one."""
    if call.get("status") == store.STATUS_ENDED:
        return VoiceAnswer(empty_response(), EMPTY)
    stream_state = (call.get("stream") or {}).get("state", "pending")
    claimed = "claimed_at" in (call.get("stream_token") or {})
    if stream_state == "error" and not claimed:
        return VoiceAnswer(render(fallback_verbs(profile)), FALLBACK, STREAM_FAILED)
    if stream_state != "pending" or claimed:
        # The media socket is (or was) up: another <Stream> would fork the call twice.
        return VoiceAnswer(empty_response(), EMPTY)
    return None


def _fresh_answer(
    request: VoiceRequest,
    profile: Profile,
    table: Any,
    settings: VoiceSettings,
    now: Callable[[], datetime],
) -> VoiceAnswer:
    if not profile.is_open(now()):
        return VoiceAnswer(render(after_hours_verbs(profile)), AFTER_HOURS)
    if not store.healthy_nodes(table, settings.heartbeat_max_age_seconds):
        logger.warning("no healthy media node; falling back", extra={"call_id": request.call_id})
        return VoiceAnswer(render(fallback_verbs(profile)), FALLBACK, NO_MEDIA_NODE)
    if not settings.stream_token_secret or not settings.media_stream_url:
        logger.error("STREAM_TOKEN_SECRET or MEDIA_STREAM_URL is not configured; falling back")
        return VoiceAnswer(render(fallback_verbs(profile)), FALLBACK, NOT_CONFIGURED)
    token, claims = tokens.mint_stream_token(
        settings.stream_token_secret,
        request.call_id,
        profile.number,
        ttl_seconds=settings.token_ttl_seconds,
    )
    # Replacing the nonce invalidates any token from an earlier, lost answer.
    store.set_stream_token(table, request.call_id, claims.nonce)
    stream = Stream(
        url=stream_url(settings.media_stream_url, token),
        track=profile.audio.track,
        sample_rate=profile.audio.sample_rate,
        status_callback=f"{settings.public_base_url}/stream-status",
    )
    return VoiceAnswer(render([stream]), STREAM)


def _profile_of(table: Any, call: Mapping[str, Any]) -> Profile | None:
    to = call.get("to")
    return store.get_profile(table, to) if to else None


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
        return VoiceAnswer(empty_response(), EMPTY)
    profile = _profile_of(table, call)
    handoff = store.take_pending_handoff(table, request.call_id)
    if handoff is not None:
        return _handoff_answer(request, handoff, profile)
    caller_gone = (
        call.get("status") == store.STATUS_ENDED
        or request.is_active is False
        or (call.get("media") or {}).get("outcome") == "caller_hangup"
    )
    if caller_gone:
        return VoiceAnswer(empty_response(), EMPTY)
    if profile is None:
        logger.warning("profile vanished during the call", extra={"call_id": request.call_id})
        return VoiceAnswer(unknown_number_xml(), UNKNOWN_NUMBER)
    reason = STREAM_FAILED if error or current == "error" else STREAM_STOPPED
    logger.warning(
        "stream ended with nothing pending; dialling the front desk",
        extra={"call_id": request.call_id, "reason": reason},
    )
    return VoiceAnswer(render(fallback_verbs(profile)), FALLBACK, reason)


def _handoff_answer(
    request: VoiceRequest, handoff: Mapping[str, Any], profile: Profile | None
) -> VoiceAnswer:
    if handoff.get("kind") == "hangup":
        return VoiceAnswer(render([Hangup()]), HANGUP, str(handoff.get("reason") or ""))
    if profile is None:
        logger.warning("handoff for a number with no profile", extra={"call_id": request.call_id})
        return VoiceAnswer(unknown_number_xml(), UNKNOWN_NUMBER)
    target = str(handoff.get("target") or "")
    if not E164.match(target):
        target = profile.transfer_target(handoff.get("department"))
    logger.info(
        "dialling handoff",
        extra={"call_id": request.call_id, "target": target, "reason": handoff.get("reason")},
    )
    verbs = [_say(profile, profile.lines.handoff), _dial(profile, target)]
    return VoiceAnswer(render(verbs), TRANSFER, str(handoff.get("reason") or ""))


def _completed(
    request: VoiceRequest,
    call: Mapping[str, Any],
    table: Any,
    settings: VoiceSettings,
    enqueue_cdr: cdr_jobs.Enqueue,
) -> VoiceAnswer:
    ended = cdr_jobs.finish_call(
        table,
        request.call_id,
        reason="completed",
        duration_seconds=request.duration_seconds,
        delay_seconds=settings.cdr_delay_seconds,
        enqueue=enqueue_cdr,
    )
    stranded = ended and (call.get("handoff") or {}).get("state") == store.HANDOFF_PENDING
    if stranded:
        # The handoff was written but no StreamStopped POST came to act on it.
        logger.warning(
            "call ended with a handoff still pending", extra={"call_id": request.call_id}
        )
    return VoiceAnswer(empty_response(), EMPTY, handoff_stranded=stranded)


def dial_failed(statuses: tuple[str, ...]) -> bool:
    """Whether any status field says the dial did not connect (no answer, busy, failed)."""
    return any(_FAILED_DIAL.search(re.sub(r"[^a-z]", "", s.lower())) for s in statuses)


def _dial_completed(request: VoiceRequest, call: Mapping[str, Any], table: Any) -> VoiceAnswer:
    if not dial_failed(request.dial_statuses):
        return VoiceAnswer(empty_response(), EMPTY)
    profile = _profile_of(table, call)
    say = _say(profile, DIAL_FAILED_TEXT) if profile else Say(DIAL_FAILED_TEXT, language="en-KE")
    return VoiceAnswer(render([say, Hangup()]), DIAL_FAILED, "dial_failed")
