"""SQS consumer of the rescue queue: checks and follows rescues of stranded transfers.

Thin: parse the job and run it (:mod:`serverless.rescue`), turn what it decided into metrics,
report partial batch failures (a malformed job, or the table failing, is redelivered and then
dead-lettered).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from mapokezi import config
from mapokezi import handoff as h
from mapokezi.sautikit_api import SautikitApiError, SautikitClient
from serverless import rescue, tracing

logger = Logger()
tracer = tracing.make_tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def _metrics_of(outcome: rescue.RescueOutcome) -> None:
    if outcome.action == "rescued":
        metrics.add_metric(name="HandoffsRescued", unit=MetricUnit.Count, value=1)
    for decision in outcome.decisions:
        if isinstance(decision, h.PersonConnected):
            metrics.add_metric(name="HandoffsConnected", unit=MetricUnit.Count, value=1)
            metrics.add_metric(
                name="TimeToPersonMs",
                unit=MetricUnit.Milliseconds,
                value=decision.time_to_person_ms,
            )
        elif isinstance(decision, h.NobodyAvailable):
            metrics.add_metric(name="HandoffsFailed", unit=MetricUnit.Count, value=1)


class _Unconfigured:
    """Stands in for the client when no API key is configured: every request fails as such."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise SautikitApiError(None, "config.invalid", self.reason)

        return fail


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    """Run one rescue step; raise to have SQS redeliver the message."""
    try:
        job = rescue.parse_message(record.body)
    except ValueError as exc:
        logger.error("malformed rescue job; leaving it for the dead-letter queue", reason=str(exc))
        raise
    try:
        client: Any = SautikitClient.from_env()
    except config.ConfigError as exc:
        # Without a key nobody can be rung: the step records it (and notifies) instead.
        logger.error("SAUTIKIT_API_KEY is not configured; rescues cannot ring anyone")
        client = _Unconfigured(str(exc))
    else:
        if lambda_context is not None:  # leave time to record what happened
            left = lambda_context.get_remaining_time_in_millis() / 1000 - 3
            client.timeout = max(1.0, min(client.timeout, left))
    outcome = rescue.run_job(
        job,
        table=config.dynamodb_table(os.environ.get("CALLS_TABLE", "mapokezi-calls")),
        client=client,
    )
    logger.info(f"rescue step {outcome.action}", call_id=job.call_id, step=job.step)
    _metrics_of(outcome)
    return outcome.action


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch entry point; returns ``{"batchItemFailures": [...]}``."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
