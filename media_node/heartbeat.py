"""The node's reports about itself: heartbeats in the calls table and the ActiveCalls metric.

Heartbeats (:func:`mapokezi.store.put_heartbeat`) let the voice webhook route calls only to live
nodes with room. The ActiveCalls metric is an Embedded Metric Format (EMF) log line that
CloudWatch turns into metric ``Mapokezi/ActiveCalls`` with dimension ``ServiceName``; the
service's target-tracking policy averages it across tasks, so it must be published per task,
once a minute, even when it is 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mapokezi import store

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

logger = logging.getLogger(__name__)
#: EMF lines go through this logger, which the node's log setup writes verbatim.
metrics_logger = logging.getLogger("media_node.metrics")

METRIC_NAMESPACE = "Mapokezi"
METRIC_NAME = "ActiveCalls"
METRIC_DIMENSION = "ServiceName"


class Heartbeat:
    """Writes this node's heartbeat every ``interval`` seconds; failures are logged, never fatal.

    Args:
        table: the calls table (boto3 Table resource).
        node_id: this node's id.
        capacity: ``MAX_CALLS``.
        active_calls: returns the number of live calls now.
        draining: returns whether the node is draining now.
        interval: seconds between heartbeats.
        ttl_seconds: how long the item lives in the table.
    """

    def __init__(
        self,
        table: Table,
        node_id: str,
        *,
        capacity: int,
        active_calls: Callable[[], int],
        draining: Callable[[], bool],
        interval: float = 10.0,
        ttl_seconds: int = 120,
    ) -> None:
        self.table = table
        self.node_id = node_id
        self.capacity = capacity
        self._active_calls = active_calls
        self._draining = draining
        self.interval = interval
        self.ttl_seconds = ttl_seconds
        self.written = 0
        self.failures = 0

    async def beat(self, *, draining: bool | None = None) -> bool:
        """Write one heartbeat now; True on success (a failure is logged)."""
        active = self._active_calls()
        is_draining = self._draining() if draining is None else draining
        try:
            await asyncio.to_thread(
                store.put_heartbeat,
                self.table,
                self.node_id,
                active_calls=active,
                capacity=self.capacity,
                draining=is_draining,
                ttl_seconds=self.ttl_seconds,
            )
        except Exception as exc:  # any AWS or network error: log it and try again later
            self.failures += 1
            logger.warning(
                "heartbeat failed", extra={"node_id": self.node_id, "error": repr(exc)[:500]}
            )
            return False
        self.written += 1
        logger.debug(
            "heartbeat",
            extra={"node_id": self.node_id, "active_calls": active, "draining": is_draining},
        )
        return True

    async def run(self) -> None:
        """Beat until cancelled; after a failure retry sooner than the normal interval."""
        while True:
            ok = await self.beat()
            await asyncio.sleep(self.interval if ok else min(self.interval, 2.0))


def active_calls_emf(
    active_calls: int, *, service_name: str, node_id: str, at: float | None = None
) -> dict[str, Any]:
    """The EMF document for one ActiveCalls sample (namespace Mapokezi, dimension ServiceName)."""
    return {
        "_aws": {
            "Timestamp": int((time.time() if at is None else at) * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [[METRIC_DIMENSION]],
                    "Metrics": [{"Name": METRIC_NAME, "Unit": "Count"}],
                }
            ],
        },
        METRIC_DIMENSION: service_name,
        METRIC_NAME: active_calls,
        "node_id": node_id,
    }


def write_line(document: dict[str, Any]) -> None:
    """Log one EMF document as a whole line (stdout, where the awslogs driver collects it)."""
    metrics_logger.info(json.dumps(document, separators=(",", ":")))


class ActiveCallsMetric:
    """Publishes the ActiveCalls EMF line every ``interval`` seconds, starting at once.

    Args:
        active_calls: returns the number of live calls now.
        service_name: value of the ``ServiceName`` dimension (env ``SERVICE_NAME``).
        node_id: added as a plain property, for finding a task's samples in the logs.
        interval: seconds between samples (60 for the autoscaling policy).
        emit: where documents go (default: :func:`write_line`).
    """

    def __init__(
        self,
        active_calls: Callable[[], int],
        *,
        service_name: str,
        node_id: str,
        interval: float = 60.0,
        emit: Callable[[dict[str, Any]], None] = write_line,
    ) -> None:
        self._active_calls = active_calls
        self.service_name = service_name
        self.node_id = node_id
        self.interval = interval
        self._emit = emit

    def publish(self) -> None:
        """Emit one sample now."""
        document = active_calls_emf(
            self._active_calls(), service_name=self.service_name, node_id=self.node_id
        )
        try:
            self._emit(document)
        except Exception:  # a broken stdout must not take the node down
            logger.exception("could not publish the ActiveCalls metric")

    async def run(self) -> None:
        """Publish until cancelled."""
        while True:
            self.publish()
            await asyncio.sleep(self.interval)
