"""POST /stream-status: record a stream status event once and update the call's stream."""

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
from serverless.webhook import STREAM_ERROR, parse_body, parse_stream_status

logger = Logger()
tracer = tracing.make_tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Mapokezi"))
app = APIGatewayHttpResolver()
lambda_http.register_error_handlers(app, metrics)


@app.post("/stream-status")
@tracer.capture_method
def stream_status() -> Response:
    """Acknowledge a stream status callback (2xx even for unknown calls: no endless retries)."""
    event = app.current_event
    body = lambda_http.request_bytes(event)
    # Whether the platform signs these is undocumented; unsigned ones are accepted only when
    # VERIFY_STREAM_STATUS_SIGNATURES=false says this platform does not sign them.
    scheme = lambda_http.authenticate(
        event, body, header_required=lambda_http.stream_status_signatures_required()
    )
    status = parse_stream_status(parse_body(body, lambda_http.content_type(event)))
    logger.append_keys(call_id=status.call_id, stream_event=status.raw_event)
    settings = config.Settings.from_env()
    result = callbacks.handle_stream_status(
        status,
        table=config.dynamodb_table(settings.calls_table),
        retention_days=settings.retention_days,
        trusted=scheme != lambda_http.UNSIGNED,
    )
    if result.applied == STREAM_ERROR:
        metrics.add_metric(name="StreamErrors", unit=MetricUnit.Count, value=1)
    return lambda_http.json_response(200, {"ok": True, "duplicate": result.duplicate})


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point (``stream_status.app.lambda_handler``)."""
    return app.resolve(event, context)
