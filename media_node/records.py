"""Writes of one call's media-node facts to the call record, off the event loop.

boto3 is blocking, so every write runs in a worker thread (`asyncio.to_thread`): a slow
DynamoDB call must never delay audio frames of this or any other call. Failures are logged and
reported as False; a call keeps going (and its caller keeps hearing audio) when the table does not
answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from mapokezi import store

log = logging.getLogger(__name__)


class CallRecords:
    """The call record of one call, as the media node writes it.

    Args:
        table: boto3 Table resource of the calls table.
        call_id: The call's id.
        retention_days: Days to keep transcript turns (the profile's retention).
    """

    def __init__(self, table: Any, call_id: str, retention_days: int) -> None:
        self.table = table
        self.call_id = call_id
        self.retention_days = retention_days

    async def _run(self, what: str, func: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(func, self.table, self.call_id, *args)
        except Exception:  # a record write must never take the call down
            log.exception("call %s: writing %s failed", self.call_id, what)
            return False

    async def handoff(self, handoff: Mapping[str, Any]) -> bool:
        """Writes the pending handoff (read by the voice webhook on StreamStopped)."""
        written = await self._run("handoff", store.record_handoff, dict(handoff))
        if written:
            log.info("call %s: handoff %s written", self.call_id, dict(handoff))
        return bool(written)

    async def media(self, media: Mapping[str, Any]) -> bool:
        """Writes the media node's view of the call (node, outcome, rates, times)."""
        return bool(await self._run("media", store.record_media, dict(media)))

    async def metrics(self, metrics: Mapping[str, Any]) -> bool:
        """Writes the call's metrics."""
        return bool(await self._run("metrics", store.put_metrics, dict(metrics)))

    async def turns(self, turns: list[dict[str, Any]]) -> bool:
        """Writes the transcript turns."""
        if not turns:
            return True
        count = await self._run("transcript", store.add_turns, turns, self.retention_days)
        return count == len(turns)

    async def finish(
        self, media: Mapping[str, Any], turns: list[dict[str, Any]], metrics: Mapping[str, Any]
    ) -> None:
        """Writes media outcome, transcript and metrics at the end of the call, concurrently."""
        await asyncio.gather(self.media(media), self.turns(turns), self.metrics(metrics))
