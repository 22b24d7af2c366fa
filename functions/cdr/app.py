"""SQS consumer that fetches each ended call's detail record (CDR) from Sautikit.

Thin: parse the job (:mod:`serverless.cdr_jobs`), run it (:func:`serverless.cdr_fetch.run_fetch`),
report partial batch failures. Platform failures are re-queued by the fetch itself with a growing
delay; a record fails (and SQS redelivers it, then dead-letters it after ``maxReceiveCount``)
only when this invocation runs out of time, the table fails, or the message is malformed. On the
last receive before the dead-letter queue the call record is marked ``cdr.fetch_state =
"failed"`` with the reason, so the loss is visible on the call itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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

from mapokezi import config, store
from mapokezi.sautikit_api import SautikitApiError, SautikitClient
from serverless import cdr_fetch, cdr_jobs, tracing

logger = Logger()
tracer = tracing.make_tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)

_METRIC_BY_ACTION = {
    "stored": "CdrStored",
    "retried": "CdrRetried",
    "dropped": "CdrDropped",
    "duplicate": "CdrDuplicate",
}


#: Seconds kept back from the Lambda's remaining time for storing and reporting a record.
_TIME_RESERVE_SECONDS = 2.0


def _fetcher(context: LambdaContext | None) -> Callable[[str], dict[str, Any]]:
    """``get_call`` with a timeout that also fits in the invocation's remaining time.

    Records are processed one after another, so ten slow platform answers could otherwise
    outlast the function timeout and lose the whole batch's results.
    """

    def get_call(call_id: str) -> dict[str, Any]:
        try:
            client = SautikitClient.from_env()
        except config.ConfigError as exc:
            raise SautikitApiError(None, "config.invalid", str(exc)) from None
        if context is not None:
            left = context.get_remaining_time_in_millis() / 1000 - _TIME_RESERVE_SECONDS
            if left < 1:
                raise SautikitApiError(None, cdr_fetch.OUT_OF_TIME, "no invocation time left")
            client.timeout = min(client.timeout, left)
        return client.get_call(call_id)

    return get_call


def _max_receives() -> int:
    """The queue's ``maxReceiveCount`` (``CDR_MAX_RECEIVE_COUNT``; template.yaml sets both)."""
    try:
        return config.env_int(os.environ, "CDR_MAX_RECEIVE_COUNT", 5, low=1)
    except config.ConfigError:
        return 5  # a bad setting must not stop the failure from being recorded


def _last_receive_failed(record: SQSRecord, job: cdr_jobs.CdrJob, exc: Exception) -> None:
    receives = int(record.attributes.approximate_receive_count or "1")
    if receives < _max_receives():
        return
    reason = f"dead-lettered after {receives} receives: {type(exc).__name__}: {exc}"
    logger.error("CDR fetch goes to the dead-letter queue", call_id=job.call_id, reason=reason)
    metrics.add_metric(name="CdrDeadLettered", unit=MetricUnit.Count, value=1)
    try:
        cdr_fetch.mark_failed(
            config.calls_table(),
            job.call_id,
            reason,
            attempts=job.attempt + 1,
            at=store.now_iso(),
        )
    except Exception:
        logger.exception("could not mark the call's CDR fetch failed", call_id=job.call_id)


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    """Run one CDR fetch job; raise to have SQS redeliver the message."""
    try:
        job = cdr_jobs.parse_message(record.body)
    except ValueError as exc:
        logger.error("malformed CDR job; leaving it for the dead-letter queue", reason=str(exc))
        metrics.add_metric(name="CdrMalformedJobs", unit=MetricUnit.Count, value=1)
        raise
    try:
        outcome = cdr_fetch.run_fetch(
            job,
            table=config.calls_table(),
            get_call=_fetcher(lambda_context),
            enqueue=cdr_jobs.enqueue_cdr_fetch,
            policy=cdr_fetch.FetchPolicy.from_env(),
        )
    except Exception as exc:
        logger.warning("CDR fetch failed; SQS will redeliver", call_id=job.call_id, reason=str(exc))
        metrics.add_metric(name="CdrRedelivered", unit=MetricUnit.Count, value=1)
        _last_receive_failed(record, job, exc)
        raise
    fields = {"call_id": job.call_id, "attempt": job.attempt, "detail": outcome.detail}
    if outcome.fetch_state == cdr_fetch.STATE_FAILED:
        logger.error("CDR fetch failed for good (the platform kept failing)", **fields)
    elif outcome.fetch_state == cdr_fetch.STATE_ERROR:
        logger.error(
            "CDR fetch needs an operator (check SAUTIKIT_API_KEY and its scopes)", **fields
        )
    elif outcome.fetch_state == cdr_fetch.STATE_GAVE_UP:
        logger.warning("gave up fetching the CDR", **fields)
    elif outcome.action == "dropped":
        logger.warning("CDR job for a call not in our table; dropped", **fields)
    else:
        logger.info(f"CDR job {outcome.action}", fetch_state=outcome.fetch_state, **fields)
    metrics.add_metric(name=_METRIC_BY_ACTION[outcome.action], unit=MetricUnit.Count, value=1)
    return outcome.action


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch entry point; returns ``{"batchItemFailures": [...]}``."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
