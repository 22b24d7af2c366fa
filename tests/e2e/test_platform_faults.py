"""Faults on the platform's side: the media socket dropped without a close frame while the caller
is still on the line, and the first POST retried at once (in parallel) and again later.

The caller must reach a person after the drop, and the retries must leave one call whose stream
works: every copy of the first POST answered alike, the late one with nothing new.
"""

from __future__ import annotations

import pytest

from doubles.openai_realtime import Script
from local.emulator.script import Hangup, WaitReply
from tests.e2e.harness import E2E, FRONT_DESK, labels, scenario, verbs

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

GREETING = "Karibu, how can I help?"
LONG_GREETING = (
    "Karibu to the clinic, we are open six days a week and we are always happy to help you."
)
DROPPED = scenario("dropped", greeting=LONG_GREETING, script=Script())
RETRIED = scenario("retried", greeting=GREETING, script=Script())


async def test_dropped_media_socket_with_the_caller_on_the_line_reaches_the_front_desk(
    e2e: E2E,
) -> None:
    result = await e2e.call(DROPPED, [], drop_media_after=2.0)
    assert result.ok, result.errors
    media = result.media
    assert media is not None and media.ended_by == "dropped"
    assert media.first_audio_heard_ms is not None  # the greeting was playing
    assert labels(result)[:3] == ["initial", "stream-started", "stream-error"]
    assert "StreamStopped" in labels(result)
    # Never silence: the platform's re-POST is answered with a line and the front desk.
    assert verbs(result) == ["Stream", "Say", "Dial"]
    assert result.handoff is not None and result.handoff["number"] == FRONT_DESK
    record = result.call_record
    assert record is not None
    assert record["answer"] == "stream" and record["status"] == "ended"
    assert record["stream"]["state"] == "error"
    # The node saw a broken socket, not a hang-up.
    assert record["media"]["outcome"] == "stream_lost"
    assert record["media"]["close"] == {"code": 1006, "by": "network", "reason": "no close frame"}


async def test_first_post_retried_in_parallel_and_later_keeps_one_working_call(
    e2e: E2E,
) -> None:
    result = await e2e.call(
        RETRIED, [WaitReply(0.6), Hangup(0.5)], first_post_copies=3, first_post_retry_after=0.4
    )
    assert result.ok, result.errors
    sent = {x.label: x for x in result.exchanges}
    copies = [sent["initial"], sent["initial-copy-1"], sent["initial-copy-2"]]
    assert len({x.body for x in copies}) == 1  # the same <Stream>, the same token
    late = sent["initial-late-copy"]
    assert late.status == 200
    assert late.body in (copies[0].body, "<Response />")  # never a new token
    media = result.media
    assert media is not None and media.connected and media.first_audio_heard_ms is not None
    record = result.call_record
    assert record is not None and record["answer"] == "stream"
    set_ups = [
        e for e in record["events"] if e["source"] == "voice" and "callSessionState" not in e
    ]
    assert len(set_ups) == 1
