"""GET /calls and GET /calls/{call_id}: the operator's read-only view of call records.

Routes are IAM-authorised at the HTTP API. Filters are validated by :mod:`calls_api.filters`;
reads go through :mod:`mapokezi.store`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from calls_api.filters import FilterError, parse_filters
from mapokezi import config, store
from serverless import tracing

logger = Logger()
tracer = tracing.make_tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()


def _table() -> Any:
    return config.calls_table()


def _error(status: int, message: str) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": message},
    )


@app.get("/calls")
@tracer.capture_method
def list_calls() -> Any:
    """List call records, newest first, with filters and an opaque cursor."""
    params = app.current_event.query_string_parameters or {}
    try:
        filters = parse_filters(params)
    except FilterError as exc:
        return _error(400, str(exc))
    try:
        calls, next_cursor = store.query_calls(_table(), **filters.query_kwargs())
    except ClientError as exc:
        # A well-formed cursor from another listing does not fit this index.
        if filters.cursor and exc.response.get("Error", {}).get("Code") == "ValidationException":
            return _error(400, "cursor: does not belong to this listing")
        raise
    return {"calls": calls, "next_cursor": next_cursor}


@app.get("/calls/<call_id>")
@tracer.capture_method
def show_call(call_id: str) -> Any:
    """The whole record of one call (transcript, handoff, metrics, cdr, events)."""
    record = store.call_record(_table(), call_id)
    if record is None:
        return _error(404, f"call {call_id!r} not found")
    return record


@app.not_found
def not_found(_exc: Exception) -> Response[dict[str, Any]]:
    """Unknown routes answer JSON like the rest of the API."""
    return _error(404, "no such route")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """HTTP API (payload v2) entry point."""
    metrics.add_metric(name="CallsApiRequests", unit=MetricUnit.Count, value=1)
    return app.resolve(event, context)
