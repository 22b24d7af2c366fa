"""The watchdog's next deadline and the playback's idle time: what lets a call sleep until due."""

from __future__ import annotations

import numpy as np

from media_node.call.watchdog import Deadline, Watchdog
from media_node.playback import Playback


def make_watchdog() -> Watchdog:
    return Watchdog(
        started=100.0,
        max_call_seconds=300,
        idle_prompt_seconds=15,
        idle_end_seconds=30,
        greeting_timeout=8,
        reply_timeout=10,
    )


def test_next_deadline_is_when_check_next_fires() -> None:
    dog = make_watchdog()
    assert dog.next_deadline() == 108.0  # the greeting bound
    assert dog.check(107.99) is None
    assert dog.check(108.0) == Deadline.GREETING
    assert dog.check(108.1) is None  # fires once, like every other deadline
    assert dog.next_deadline() == 340.0  # then the time warning (300 s limit, 60 s lead)
    dog.first_audio()
    dog.caller_stopped(150.0)
    assert dog.next_deadline() == 160.0
    dog.first_audio()  # the reply came: no reply is due
    dog.agent_finished(170.0)
    assert dog.next_deadline() == 185.0
    assert dog.check(185.0) == Deadline.IDLE_PROMPT
    assert dog.next_deadline() == 215.0  # the prompt restarts the silence: idle end next
    dog.caller_spoke()
    assert dog.next_deadline() == 340.0
    assert dog.check(340.0) == Deadline.TIME_WARNING
    assert dog.next_deadline() == 400.0
    assert dog.check(400.0) == Deadline.TIME_LIMIT
    assert dog.check(400.1) is None
    assert dog.next_deadline() is None


def test_every_deadline_is_reported_by_next_deadline_first() -> None:
    # Walking time from one next_deadline to the next meets every deadline check reports.
    dog = make_watchdog()
    dog.first_audio()
    dog.agent_finished(100.0)
    seen = []
    now = 100.0
    while (due := dog.next_deadline()) is not None:
        assert due >= now
        now = due
        fired = dog.check(now)
        assert fired is not None
        seen.append((fired, now))
    assert seen == [
        (Deadline.IDLE_PROMPT, 115.0),
        (Deadline.IDLE_END, 145.0),
        (Deadline.TIME_WARNING, 340.0),
        (Deadline.TIME_LIMIT, 400.0),
    ]


def test_playback_idle_at() -> None:
    playback = Playback(24000, 16000, lead_ms=60)
    assert playback.idle_at(10.0) == 10.0  # nothing queued or playing
    tone = (8000 * np.sin(np.arange(4800) * 2 * np.pi * 300 / 24000)).astype("<i2").tobytes()
    playback.push("item_1", tone, 10.0)
    assert playback.idle_at(10.0) is None  # the item is still arriving
    playback.end_item("item_1")
    queued = playback.pacer.queued_ms
    assert queued >= 180
    assert playback.idle_at(10.0) == 10.0 + queued / 1000  # nothing released yet
    released = playback.pacer.release(10.0)  # the lead goes out at once
    assert playback.idle_at(10.0) == playback.pacer.playout_end + playback.pacer.queued_ms / 1000
    assert playback.pacer.playout_end == 10.0 + len(released) * 0.02
    assert playback.busy(10.0) and playback.idle_at(10.0) > 10.0
