"""Writes of one call's media-node facts to the call record, off the event loop, retried.

boto3 is blocking, so every write runs in a worker thread (`asyncio.to_thread`): a slow
DynamoDB call must never delay audio frames of this or any other call. Each write is attempted
once at once, and its result returned, so the handoff the voice webhook reads on StreamStopped
is in the table as early as it can be. A write that failed for a reason that may pass (throttling,
a network error, the table briefly unavailable) is then retried in the background with
exponential backoff for up to :attr:`RetryPolicy.give_up_after` seconds; the call, its audio
and its socket close never wait for those retries. A newer write of the same record (a handoff
whose summary was rewritten) supersedes an older one still being retried.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from mapokezi import store

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

log = logging.getLogger(__name__)

#: DynamoDB errors that the same request will meet again: retrying them cannot help.
PERMANENT_ERRORS = frozenset(
    {"ValidationException", "SerializationException", "ItemCollectionSizeLimitExceededException"}
)


def is_permanent(error: BaseException) -> bool:
    """Whether retrying the write that raised ``error`` is pointless."""
    if isinstance(error, ParamValidationError | TypeError | ValueError):
        return True
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in PERMANENT_ERRORS
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for record writes that failed.

    Attributes:
        first_delay: Seconds before the first retry.
        max_delay: Longest pause between two retries.
        give_up_after: Seconds after the first attempt when retrying stops.
    """

    first_delay: float = 0.5
    max_delay: float = 15.0
    give_up_after: float = 120.0

    def delay(self, retry: int, jitter: float) -> float:
        """Pause before retry number ``retry`` (0, 1, ...); ``jitter`` in [0, 1) spreads calls.

        Doubling from ``first_delay`` up to ``max_delay``, scaled into its upper half by
        ``jitter`` so many calls failing together do not retry together.
        """
        base = min(self.max_delay, self.first_delay * 2.0 ** min(retry, 30))
        return base * (0.5 + jitter / 2)


class BackgroundWrites:
    """The node's record writes still being retried; the server waits for them on shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[bool]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, retrying: Any, name: str) -> asyncio.Task[bool]:
        """Run the coroutine ``retrying`` as a tracked task."""
        task = asyncio.create_task(retrying, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self, within: float) -> int:
        """Wait up to ``within`` seconds for pending writes; returns how many are still pending.

        Those still pending are cancelled (the process is about to exit) and logged.
        """
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=within)
        for task in pending:
            log.error("giving up on record write %s at shutdown", task.get_name())
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)


#: Retries of every call on this node (one event loop per process).
BACKGROUND = BackgroundWrites()


class CallRecords:
    """The call record of one call, as the media node writes it.

    Args:
        table: boto3 Table resource of the calls table.
        call_id: The call's id.
        retention_days: Days to keep transcript turns (the profile's retention).
        policy: How failed writes are retried.
        background: Where retries run (default: the node-wide :data:`BACKGROUND`).
        clock: Monotonic clock in seconds.
        jitter: Source of numbers in [0, 1) for spreading retries.
    """

    def __init__(
        self,
        table: Table,
        call_id: str,
        retention_days: int,
        *,
        policy: RetryPolicy | None = None,
        background: BackgroundWrites | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.table = table
        self.call_id = call_id
        self.retention_days = retention_days
        self.policy = policy or RetryPolicy()
        self.background = background if background is not None else BACKGROUND
        self.clock = clock
        self.jitter = jitter
        self._retrying: dict[str, asyncio.Task[bool]] = {}

    def retrying(self, what: str) -> asyncio.Task[bool] | None:
        """The background retry of record ``what`` (``handoff``, ``media``, ...), if one runs."""
        return self._retrying.get(what)

    async def _attempt(self, what: str, func: Any, args: tuple[Any, ...]) -> Any:
        """One attempt; returns the store function's result, or raises what it raised."""
        return await asyncio.to_thread(func, self.table, self.call_id, *args)

    async def _write(self, what: str, func: Any, *args: Any) -> Any:
        """Attempt a write now; on a failure that may pass, keep retrying it in the background."""
        superseded = self._retrying.pop(what, None)
        if superseded is not None:
            superseded.cancel()
        started = self.clock()
        try:
            return await self._attempt(what, func, args)
        except Exception as exc:  # a record write must never take the call down
            if is_permanent(exc):
                log.exception("call %s: writing %s failed for good", self.call_id, what)
                return False
            log.warning(
                "call %s: writing %s failed (%s); retrying in the background",
                self.call_id,
                what,
                exc,
            )
        task = self.background.start(
            self._retry(what, func, args, started), f"call {self.call_id} {what}"
        )
        self._retrying[what] = task
        task.add_done_callback(lambda done: self._forget(what, done))
        return False

    def _forget(self, what: str, task: asyncio.Task[bool]) -> None:
        if self._retrying.get(what) is task:
            del self._retrying[what]

    async def _retry(self, what: str, func: Any, args: tuple[Any, ...], started: float) -> bool:
        deadline = started + self.policy.give_up_after
        retry = 0
        while True:
            pause = self.policy.delay(retry, self.jitter())
            if self.clock() + pause > deadline:
                log.error(
                    "call %s: gave up writing %s after %d retries over %.0f s",
                    self.call_id,
                    what,
                    retry,
                    self.clock() - started,
                )
                return False
            await asyncio.sleep(pause)
            retry += 1
            try:
                result = await self._attempt(what, func, args)
            except Exception as exc:
                if is_permanent(exc):
                    log.exception("call %s: writing %s failed for good", self.call_id, what)
                    return False
                log.info("call %s: retry %d of %s failed: %s", self.call_id, retry, what, exc)
                continue
            log.info("call %s: %s attempt %d answered %r", self.call_id, what, retry + 1, result)
            return bool(result)

    async def handoff(
        self, handoff: Mapping[str, Any], *, state: str = store.HANDOFF_PENDING
    ) -> bool:
        """Writes the handoff (read by the voice webhook on StreamStopped); ``state`` is
        ``requested`` when the node rings the person itself (a supervised transfer)."""
        write = functools.partial(store.record_handoff, state=state)
        written = await self._write("handoff", write, dict(handoff))
        if written:
            log.info("call %s: handoff %s written", self.call_id, dict(handoff))
        return bool(written)

    async def handoff_summary(self, summary: str, handoff_id: str | None) -> bool:
        """Rewrites the summary of the written handoff `handoff_id` (nothing else of it)."""
        write = functools.partial(store.record_handoff_change, handoff_id=handoff_id)
        return bool(await self._write("handoff summary", write, {}, {"summary": summary}))

    async def media(self, media: Mapping[str, Any]) -> bool:
        """Writes the media node's view of the call (node, outcome, rates, times)."""
        return bool(await self._write("media", store.record_media, dict(media)))

    async def metrics(self, metrics: Mapping[str, Any]) -> bool:
        """Writes the call's metrics."""
        return bool(await self._write("metrics", store.put_metrics, dict(metrics)))

    async def turns(self, turns: list[dict[str, Any]]) -> bool:
        """Writes the transcript turns (idempotent: each turn has its own key)."""
        if not turns:
            return True
        count = await self._write("transcript", store.add_turns, turns, self.retention_days)
        return bool(count == len(turns))

    async def finish(
        self, media: Mapping[str, Any], turns: list[dict[str, Any]], metrics: Mapping[str, Any]
    ) -> None:
        """Writes media outcome, transcript and metrics at the end of the call, concurrently.

        Returns after the first attempts; failed ones go on being retried in the background.
        """
        await asyncio.gather(self.media(media), self.turns(turns), self.metrics(metrics))
