"""End-of-call record writes against moto's DynamoDB, with outages injected at the boto3 client.

Failures are injected the way botocore's Stubber does it: a ``before-call`` handler on the
table's client answers chosen requests with an error response, so the store's code, the
resource layer and botocore's error parsing all run; only the wire is skipped.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mapokezi import store
from media_node.records import BackgroundWrites, CallRecords, RetryPolicy

FAST = RetryPolicy(first_delay=0.01, max_delay=0.04, give_up_after=1.0)
CALL = "CA-records"


class _Http:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


WRITES = frozenset({"UpdateItem", "PutItem", "BatchWriteItem"})


class Outage:
    """Answers DynamoDB writes with an error while ``failures`` lasts (a count or forever).

    Reads pass, so a test can look at the record meanwhile. It hooks itself onto the table's
    client when made, so a test that reads none of its attributes need not keep it.

    Attributes:
        attempts: Operation names of every write the client made, failed or not.
    """

    def __init__(
        self,
        table: Any,
        code: str = "ProvisionedThroughputExceededException",
        failures: float = 0,
    ) -> None:
        self.code = code
        self.failures = failures
        self.attempts: list[str] = []
        table.meta.client.meta.events.register("before-call.dynamodb.*", self._before_call)

    def _before_call(self, model: Any, **_: Any) -> tuple[_Http, dict[str, Any]] | None:
        if model.name not in WRITES:
            return None
        self.attempts.append(model.name)
        if self.failures <= 0:
            return None
        self.failures -= 1
        status = 400
        error = {"Code": self.code, "Message": f"injected {self.code}"}
        return _Http(status), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.fixture
def table(calls_table: Any) -> Any:
    store.create_call(
        calls_table, call_id=CALL, caller="+254711000001", to="+254700000100", retention_days=1
    )
    return calls_table


def records(table: Any, background: BackgroundWrites) -> CallRecords:
    return CallRecords(table, CALL, retention_days=1, policy=FAST, background=background)


TURNS = [
    {"role": "caller", "text": "habari", "at_ms": 1200},
    {"role": "agent", "text": "karibu", "at_ms": 2500},
]


async def test_writes_that_succeed_are_not_retried(table: Any) -> None:
    outage = Outage(table)
    background = BackgroundWrites()
    call = records(table, background)
    assert await call.handoff({"kind": "transfer", "reason": "asked", "summary": "s"}) is True
    await call.finish({"outcome": "handoff"}, TURNS, {"barge_ins": 1})
    assert len(background) == 0
    # The handoff first; the end-of-call writes run concurrently, in any order.
    assert outage.attempts[0] == "UpdateItem"
    assert sorted(outage.attempts[1:]) == ["BatchWriteItem", "UpdateItem", "UpdateItem"]


async def test_end_of_call_writes_are_retried_until_the_table_is_back(table: Any) -> None:
    outage = Outage(table, failures=6)  # the three first attempts and three retries fail
    background = BackgroundWrites()
    call = records(table, background)
    await call.finish({"outcome": "caller_hangup"}, TURNS, {"barge_ins": 2})
    # finish returned after the first attempts: the retries are still to come.
    assert len(background) == 3
    assert "media" not in store.get_call(table, CALL)
    assert await background.wait(within=5.0) == 0
    record = store.call_record(table, CALL)
    assert record is not None
    assert record["media"] == {"outcome": "caller_hangup"}
    assert record["metrics"] == {"barge_ins": 2}
    assert [(t["role"], t["text"]) for t in record["transcript"]] == [
        ("caller", "habari"),
        ("agent", "karibu"),
    ]
    assert len(outage.attempts) >= 9  # 3 first attempts + 3 failed retries + 3 that landed


async def test_a_handoff_is_attempted_first_and_then_retried(table: Any) -> None:
    Outage(table, failures=2)
    background = BackgroundWrites()
    call = records(table, background)
    handoff = {"kind": "transfer", "reason": "asked", "summary": "wants billing"}
    assert await call.handoff(handoff) is False  # the first attempt failed, at once
    retry = call.retrying("handoff")
    assert retry is not None
    assert await retry is True
    stored = store.get_call(table, CALL)["handoff"]
    assert (stored["summary"], stored["state"]) == ("wants billing", store.HANDOFF_PENDING)


async def test_a_newer_handoff_supersedes_one_being_retried(table: Any) -> None:
    Outage(table, failures=1)
    background = BackgroundWrites()
    call = records(table, background)
    first = {"kind": "transfer", "reason": "asked", "summary": "old summary"}
    assert await call.handoff(first) is False
    old_retry = call.retrying("handoff")
    assert old_retry is not None
    assert await call.handoff({**first, "summary": "caller's last words"}) is True
    assert call.retrying("handoff") is None
    assert await background.wait(within=5.0) == 0
    assert old_retry.cancelled()
    assert store.get_call(table, CALL)["handoff"]["summary"] == "caller's last words"


async def test_retries_stop_after_their_bound(table: Any, caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(table, failures=float("inf"))
    background = BackgroundWrites()
    call = CallRecords(
        table,
        CALL,
        1,
        policy=RetryPolicy(first_delay=0.01, max_delay=0.02, give_up_after=0.2),
        background=background,
    )
    with caplog.at_level(logging.INFO, "media_node.records"):
        assert await call.metrics({"barge_ins": 0}) is False
        retry = call.retrying("metrics")
        assert retry is not None
        assert await retry is False
    assert "metrics" not in store.get_call(table, CALL)
    assert any("gave up writing metrics" in r.getMessage() for r in caplog.records)
    assert 2 < len(outage.attempts) < 40


async def test_permanent_errors_are_not_retried(table: Any) -> None:
    outage = Outage(table, code="ValidationException", failures=1)
    background = BackgroundWrites()
    call = records(table, background)
    assert await call.media({"outcome": "failed"}) is False
    assert call.retrying("media") is None
    assert outage.attempts == ["UpdateItem"]


async def test_shutdown_gives_up_on_writes_still_pending(table: Any) -> None:
    Outage(table, failures=float("inf"))
    background = BackgroundWrites()
    call = CallRecords(
        table,
        CALL,
        1,
        policy=RetryPolicy(first_delay=0.05, give_up_after=60),
        background=background,
    )
    await call.media({"outcome": "drained"})
    assert await background.wait(within=0.1) == 1
    assert len(background) == 0


async def test_record_writes_never_raise_into_the_call() -> None:
    class BrokenTable:
        def update_item(self, **kwargs: object) -> None:
            raise ConnectionError("DynamoDB unreachable")

        def batch_writer(self) -> None:
            raise ConnectionError("DynamoDB unreachable")

    background = BackgroundWrites()
    call = CallRecords(BrokenTable(), "CA-1", 1, policy=FAST, background=background)
    assert await call.handoff({"kind": "hangup", "reason": "x", "summary": ""}) is False
    assert await call.turns([{"role": "caller", "text": "hi", "at_ms": 1}]) is False
    await call.finish({"outcome": "failed"}, [], {})  # logged, not raised
    assert await background.wait(within=5.0) == 0  # every retry gave up within its bound


def test_the_node_talks_to_dynamodb_with_short_timeouts(aws: None) -> None:
    from media_node.__main__ import node_table

    config = node_table("test-calls").meta.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 3.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


async def test_a_summary_rewrite_touches_only_the_summary_of_its_handoff(table: Any) -> None:
    call = records(table, BackgroundWrites())
    handoff = {"kind": "transfer", "reason": "asked", "summary": "asked.", "path": "supervise"}
    assert await call.handoff(handoff, state="requested")
    written = store.call_record(table, CALL)["handoff"]
    late = 'asked. Caller said: "On Saturday."'
    assert await call.handoff_summary(late, written["handoff_id"])
    rewritten = store.call_record(table, CALL)["handoff"]
    assert rewritten == {**written, "summary": late}  # same id, state and changes
    assert not await call.handoff_summary("stale", "another-handoff")
    assert store.call_record(table, CALL)["handoff"]["summary"] == late
