"""POST /events: the number's events_url; each event is stored once, hangups end the call."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mapokezi import config
from serverless import callbacks, lambda_http, tracing
from serverless.webhook import WebhookError, parse_body, parse_platform_event

logger = Logger()
tracer = tracing.make_tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Mapokezi"))
app = APIGatewayHttpResolver()
lambda_http.register_error_handlers(app, metrics)


@app.post("/events")
@tracer.capture_method
def events() -> Response:
    """Acknowledge one event delivery (the platform expects 2xx within 10 s)."""
    event = app.current_event
    body = lambda_http.request_bytes(event)
    lambda_http.authenticate(event, body)
    kind = (lambda_http.content_type(event) or "").lower()
    if kind and "json" not in kind and not body.lstrip().startswith(b"{"):
        raise WebhookError("events must be JSON")
    delivery = parse_platform_event(parse_body(body, "application/json"))
    logger.append_keys(call_id=delivery.call_id, event_kind=delivery.kind)
    settings = config.Settings.from_env()
    result = callbacks.handle_platform_event(
        delivery,
        table=config.dynamodb_table(settings.calls_table),
        retention_days=settings.retention_days,
        cdr_delay_seconds=settings.cdr_delay_seconds,
    )
    if result.applied == "ended":
        metrics.add_metric(name="CallsEndedByEvent", unit=MetricUnit.Count, value=1)
    return lambda_http.json_response(
        200, {"ok": True, "event_id": delivery.event_id, "duplicate": result.duplicate}
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point (``events.app.lambda_handler``)."""
    return app.resolve(event, context)
