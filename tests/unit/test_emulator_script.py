"""The emulated caller's script: waiting for a reply, with and without a person on the line."""

from __future__ import annotations

import pytest

from local.emulator.script import CallerTrack, Hangup, WaitReply
from local.emulator.timeline import HeardLog


def run_wait(person_joined_ms: float | None) -> CallerTrack:
    """A caller waits 1 s for a quiet reply while hold audio plays on, then hangs up."""
    track = CallerTrack([WaitReply(1.0, timeout_seconds=2.0), Hangup()], 16000)
    track.person_joined_ms = person_joined_ms
    heard = HeardLog()
    for index in range(200):  # 4 s of 20 ms ticks, all audible: never quiet
        heard.add_tick(index * 20.0, index * 20.0 + 20.0, audible=True)
        track.frame(index, heard)
    return track


def test_a_reply_that_never_ends_is_noted() -> None:
    track = run_wait(None)
    assert track.notes == ["no agent reply within 2 s"]
    assert track.hangup_requested


@pytest.mark.parametrize("joined_ms", [0.0, 1500.0])
def test_with_a_person_on_the_line_no_receptionist_reply_is_missed(joined_ms: float) -> None:
    track = run_wait(joined_ms)
    assert track.notes == []
    assert track.hangup_requested  # the wait still ends at its timeout
