"""POST /voice: decode the POST, let :mod:`serverless.voice_flow` decide, answer XML.

A 500 on this route is dead air for a live caller, so the route has a last-resort guard: a body
that is not a call is a 4xx with a reason; anything else that goes wrong (the table, Secrets
Manager, a bug) is logged and answered with the fallback line and a ``<Dial>`` to the front desk,
from the profile remembered in the function or ``FALLBACK_FRONT_DESK``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mapokezi import config
from serverless import (
    cdr_jobs,
    lambda_http,
    profile_cache,
    tracing,
    voice_answers,
    voice_flow,
)
from serverless.sautikit_xml import CONTENT_TYPE
from serverless.signature import SignatureError
from serverless.webhook import (
    STREAM_ERROR,
    STREAM_STOPPED,
    VoiceRequest,
    WebhookError,
    parse_body,
    parse_voice_request,
    stream_event_kind,
)

logger = Logger()
tracer = tracing.make_tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Mapokezi"))
app = APIGatewayHttpResolver()
lambda_http.register_error_handlers(app, metrics)

_COUNTED = {
    voice_flow.STREAM: "StreamsAnswered",
    voice_flow.TRANSFER: "HandoffsDialled",
    voice_flow.UNKNOWN_NUMBER: "UnknownNumbers",
    voice_flow.AFTER_HOURS: "AfterHoursAnswers",
    voice_flow.DIAL_FAILED: "DialsFailed",
}


def clock() -> datetime:
    """Now, for opening hours (a module attribute so tests can fix the time)."""
    return datetime.now(UTC)


def settings_for(event: Any) -> voice_flow.VoiceSettings:
    """Voice settings from the environment; the public base URL may come from the request."""
    settings = config.Settings.from_env()
    return voice_flow.VoiceSettings(
        media_stream_url=settings.media_stream_url,
        public_base_url=lambda_http.public_base_url(os.environ.get("PUBLIC_BASE_URL", ""), event),
        stream_token_secret=_stream_token_secret(),
        heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
        cdr_delay_seconds=settings.cdr_delay_seconds,
        retention_days=settings.retention_days,
        fallback_front_desk=settings.fallback_front_desk,
    )


def _stream_token_secret() -> str | None:
    """The token secret, or None when Secrets Manager cannot give it: the call then gets the
    profile's fallback (and is recorded as such) instead of failing as a whole."""
    try:
        return config.get_secret("STREAM_TOKEN_SECRET")
    except config.ConfigError:
        logger.exception("cannot read STREAM_TOKEN_SECRET; answering the fallback")
        return None


def _count(answer: voice_flow.VoiceAnswer) -> None:
    if answer.call_created:
        metrics.add_metric(name="CallsStarted", unit=MetricUnit.Count, value=1)
    if answer.outcome in _COUNTED:
        metrics.add_metric(name=_COUNTED[answer.outcome], unit=MetricUnit.Count, value=1)
    if answer.handoff_stranded:
        metrics.add_metric(name="HandoffsStranded", unit=MetricUnit.Count, value=1)
    if answer.outcome == voice_flow.FALLBACK:
        # Its own EMF blob, so the reason dimension does not spread to the other metrics.
        with single_metric(
            name="Fallbacks",
            unit=MetricUnit.Count,
            value=1,
            namespace=metrics.namespace,
            default_dimensions={**metrics.default_dimensions, "reason": answer.reason or "other"},
        ):
            pass


@app.post("/voice")
@tracer.capture_method
def voice() -> Response:
    """Answer one voice webhook POST with Sautikit XML."""
    event = app.current_event
    request: VoiceRequest | None = None
    try:
        body = lambda_http.request_bytes(event)
        lambda_http.authenticate(event, body)
        request = parse_voice_request(parse_body(body, lambda_http.content_type(event)))
        logger.append_keys(call_id=request.call_id, call_state=request.state or "setup")
        answer = voice_flow.handle_voice(
            request,
            table=config.dynamodb_table(config.Settings.from_env().calls_table),
            settings=settings_for(event),
            now=clock,
        )
    except (WebhookError, SignatureError):
        raise
    except Exception:
        logger.exception("voice webhook failed; answering from what is known")
        metrics.add_metric(name="VoiceDegraded", unit=MetricUnit.Count, value=1)
        answer = last_resort_answer(request)
    logger.info("voice answer", extra={"outcome": answer.outcome, "reason": answer.reason})
    _count(answer)
    return Response(200, CONTENT_TYPE, answer.xml)


def _front_desk() -> str | None:
    try:
        return config.Settings.from_env().fallback_front_desk
    except config.ConfigError:
        return os.environ.get("FALLBACK_FRONT_DESK") or None


def last_resort_answer(request: VoiceRequest | None) -> voice_answers.VoiceAnswer:
    """The answer when deciding failed: reach a person if a caller may be waiting.

    A first POST (or one that could not even be read) and a stream that ended with the caller
    still there get the fallback line and the front desk; a ``Completed`` gets its CDR fetch
    queued (the fetcher reconciles the record once the table is back) and an empty answer.
    """
    state = ((request.state if request else None) or "").strip().lower()
    if request is not None and state == "completed" and request.is_active is not True:
        try:
            cdr_jobs.enqueue_cdr_fetch(
                request.call_id, delay_seconds=config.Settings.from_env().cdr_delay_seconds
            )
        except Exception:
            logger.exception("could not queue the CDR fetch either")
        return voice_answers.empty()
    setup = request is None or state in ("", "completed")
    stream_ended = stream_event_kind(state) in (STREAM_STOPPED, STREAM_ERROR)
    if not setup and not (stream_ended and request.is_active is not False):
        return voice_answers.empty()
    profile = profile_cache.remembered(request.to if request else None)
    return voice_answers.front_desk_answer(profile, _front_desk())


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point (``voice.app.lambda_handler``)."""
    return app.resolve(event, context)
