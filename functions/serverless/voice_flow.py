"""What the voice webhook answers: one decoded POST in, XML plus call-table writes out.

The first POST of a call answers ``<Stream>`` to the media node (or a spoken fallback when no
node is healthy or the business is closed, or a polite refusal for an unknown number). The kind
of that first answer is written once, conditionally, on the call record (``answer``) together
with the stream token's nonce and expiry, so concurrent or retried first POSTs all give the same
answer and the same token: a retry never invalidates the answer the platform acted on.

Later POSTs are lifecycle edges (``callSessionState``), handled in :mod:`serverless.voice_edges`.

Opening hours use the injected ``now`` clock; tokens and heartbeats use real time, because the
media node checks them against its own clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools import Logger

from mapokezi import store, tokens
from mapokezi.profiles import Profile
from serverless import cdr_jobs, profile_cache, voice_edges
from serverless.sautikit_xml import Stream, render
from serverless.voice_answers import (
    AFTER_HOURS,
    DIAL_FAILED,
    EMPTY,
    FALLBACK,
    HANGUP,
    NO_MEDIA_NODE,
    NOT_CONFIGURED,
    STREAM,
    STREAM_FAILED,
    TRANSFER,
    UNKNOWN_CALL,
    UNKNOWN_NUMBER,
    VoiceAnswer,
    after_hours_verbs,
    empty,
    fallback,
    unknown_number_xml,
)
from serverless.webhook import VoiceRequest, WebhookError

logger = Logger(child=True)

__all__ = [
    "AFTER_HOURS",
    "DIAL_FAILED",
    "EMPTY",
    "FALLBACK",
    "HANGUP",
    "STREAM",
    "TRANSFER",
    "UNKNOWN_CALL",
    "UNKNOWN_NUMBER",
    "VoiceAnswer",
    "VoiceSettings",
    "handle_voice",
    "stream_url",
]

#: A stored token this close to expiry is renewed before it is handed out again.
_RENEW_MARGIN_SECONDS = 15


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
    fallback_front_desk: str | None = None


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
    if call is None and (not state or (lowered == "completed" and not _hangs_up(request))):
        # A first POST that already says Completed has been seen carrying set-up fields:
        # treat it as the set-up, so the real hangup later is still recognised.
        return _set_up(request, None, table, settings, now)
    if call is None:
        return voice_edges.unknown_call(request, table, settings, enqueue_cdr)
    if not state:
        voice_edges.record_post(table, request, voice_edges.SETUP_KEY, settings.retention_days)
        return _set_up(request, call, table, settings, now)
    return voice_edges.lifecycle(request, call, table, settings, enqueue_cdr)


def _hangs_up(request: VoiceRequest) -> bool:
    """Whether a ``Completed`` POST reports a hangup (not set-up fields under that state)."""
    if request.is_active is not None:
        return not request.is_active
    return request.duration_seconds is not None


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
    profile = profile_cache.get_profile(table, to)
    created = False
    if call is None:
        retention = profile.retention_days if profile else settings.retention_days
        attributes = {"session_id": request.session_id} if request.session_id else {}
        created = store.create_call(
            table,
            call_id=request.call_id,
            caller=request.caller or "unknown",
            to=to,
            retention_days=retention,
            attributes=attributes,
        )
        if created:
            voice_edges.record_post(table, request, voice_edges.SETUP_KEY, retention)
        call = store.get_call(table, request.call_id) or {}
    if call.get("status") == store.STATUS_ENDED:
        return empty()
    if not call.get("answer"):
        kind, reason, token = _first_answer(request, profile, table, settings, now)
        call = store.claim_first_answer(
            table, request.call_id, kind, reason=reason, stream_token=token
        )
    answer = _answer_for(request, call, profile, table, settings)
    return replace(answer, call_created=created)


def _first_answer(
    request: VoiceRequest,
    profile: Profile | None,
    table: Any,
    settings: VoiceSettings,
    now: Callable[[], datetime],
) -> tuple[str, str | None, dict[str, Any] | None]:
    """The kind of the call's first answer, its reason, and the stream token to store."""
    if profile is None:
        logger.warning(
            "call to an unknown number", extra={"call_id": request.call_id, "to": request.to}
        )
        return UNKNOWN_NUMBER, None, None
    if not profile.is_open(now()):
        return AFTER_HOURS, None, None
    if not store.healthy_nodes(table, settings.heartbeat_max_age_seconds):
        logger.warning("no healthy media node; falling back", extra={"call_id": request.call_id})
        return FALLBACK, NO_MEDIA_NODE, None
    if not settings.stream_token_secret or not settings.media_stream_url:
        logger.error("STREAM_TOKEN_SECRET or MEDIA_STREAM_URL is not configured; falling back")
        return FALLBACK, NOT_CONFIGURED, None
    token = {
        "nonce": tokens.new_nonce(),
        "expires_at": int(time.time()) + settings.token_ttl_seconds,
        "minted_at": store.now_iso(),
    }
    return STREAM, None, token


def _answer_for(
    request: VoiceRequest,
    call: Mapping[str, Any],
    profile: Profile | None,
    table: Any,
    settings: VoiceSettings,
) -> VoiceAnswer:
    """The answer the stored first answer calls for (the same for every retry)."""
    kind = call.get("answer")
    if kind == UNKNOWN_NUMBER or profile is None:
        return VoiceAnswer(unknown_number_xml(), UNKNOWN_NUMBER)
    if kind == AFTER_HOURS:
        return VoiceAnswer(render(after_hours_verbs(profile)), AFTER_HOURS)
    if kind != STREAM:
        return fallback(profile, str(call.get("answer_reason") or NO_MEDIA_NODE))
    stream_state = (call.get("stream") or {}).get("state", "pending")
    token = call.get("stream_token") or {}
    claimed = "claimed_at" in token
    if stream_state == "error" and not claimed:
        return fallback(profile, STREAM_FAILED)
    if stream_state != "pending" or claimed or not token.get("nonce"):
        # The media socket is (or was) up: another <Stream> would fork the call twice.
        return empty()
    if not settings.stream_token_secret or not settings.media_stream_url:
        return fallback(profile, NOT_CONFIGURED)
    expires_at = int(token.get("expires_at") or 0)
    if expires_at - time.time() < _RENEW_MARGIN_SECONDS:
        # A retry long after the first answer: same nonce (so one token stays single use),
        # later expiry. Renewal fails only when the token was claimed meanwhile.
        expires_at = int(time.time()) + settings.token_ttl_seconds
        if not store.renew_stream_token(table, request.call_id, token["nonce"], expires_at):
            return empty()
    minted, _claims = tokens.mint_stream_token(
        settings.stream_token_secret,
        request.call_id,
        profile.number,
        nonce=str(token["nonce"]),
        expires_at=expires_at,
    )
    stream = Stream(
        url=stream_url(settings.media_stream_url, minted),
        track=profile.audio.track,
        sample_rate=profile.audio.sample_rate,
        status_callback=f"{settings.public_base_url}/stream-status",
    )
    return VoiceAnswer(render([stream]), STREAM)
