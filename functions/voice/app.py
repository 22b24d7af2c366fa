"""POST /voice: decode the POST, let :mod:`serverless.voice_flow` decide, answer XML."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mapokezi import config
from serverless import lambda_http, voice_flow
from serverless.sautikit_xml import CONTENT_TYPE
from serverless.webhook import parse_body, parse_voice_request

logger = Logger()
tracer = Tracer()
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
        stream_token_secret=config.get_secret("STREAM_TOKEN_SECRET"),
        heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
        cdr_delay_seconds=settings.cdr_delay_seconds,
        retention_days=settings.retention_days,
    )


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
    logger.info("voice answer", extra={"outcome": answer.outcome, "reason": answer.reason})
    _count(answer)
    return Response(200, CONTENT_TYPE, answer.xml)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point (``voice.app.lambda_handler``)."""
    return app.resolve(event, context)
