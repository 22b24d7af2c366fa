"""One pacing clock for the node: exact frames and slots, nothing late, barge-in intact."""

from __future__ import annotations

import pytest

from media_node.audio import Pacer
from media_node.audio.node_pacing import NodePacing

FRAME = bytes(640)


def _queued(frames: int, item: str = "item_a") -> Pacer:
    pacer = Pacer()
    for _ in range(frames):
        pacer.enqueue(FRAME, item)
    pacer.end_reply()
    return pacer


def test_grid_arithmetic() -> None:
    clock = NodePacing(origin=100.0)
    assert clock.grid_at_or_after(100.0) == 100.0
    assert clock.grid_at_or_after(100.0001) == 100.02
    assert clock.next_tick(100.0) == 100.02
    assert clock.next_tick(100.039) == 100.04
    with pytest.raises(ValueError):
        clock.add("x", Pacer(frame_ms=10))


def test_every_call_keeps_its_own_exact_timeline_and_no_frame_is_late() -> None:
    clock = NodePacing()
    a, b = _queued(30, "item_a"), _queued(20, "item_b")
    first_a = clock.kick("a", a, now=10.003)  # a reply starting 3 ms after a grid point
    first_b = clock.kick("b", b, now=10.011)
    slots: dict[str, list[float]] = {
        "a": [f.slot for f in first_a],
        "b": [f.slot for f in first_b],
    }
    # The first frame plays when it leaves, the lead's worth with it; the next (due at 10.023)
    # is left to the tick at 10.02, which comes before it falls due.
    assert [round(s, 6) for s in slots["a"]] == [10.003, 10.023, 10.043, 10.063]
    assert [round(s, 6) for s in slots["b"]] == [10.011, 10.031, 10.051, 10.071]
    due = 10.02
    for _ in range(40):
        for key, frame in clock.tick(due, now=due + 0.001):  # each timer 1 ms late
            assert frame.frame == FRAME
            # Released before its due time (slot − lead) or at most the tick's lateness after.
            assert frame.released_at - (frame.slot - 0.06) <= 0.001 + 1e-9
            assert frame.slot - frame.released_at <= 0.06 + 0.02 + 1e-9  # at most a tick early
            slots[str(key)].append(frame.slot)
        due = clock.next_tick(due)
    assert len(slots["a"]) == 30 and len(slots["b"]) == 20
    for found in slots.values():
        assert all(round(y - x, 6) == 0.02 for x, y in zip(found, found[1:], strict=False))
    assert a.stats.max_timing_error_ms <= 1.0 and b.stats.max_timing_error_ms <= 1.0
    assert clock.stats.max_lateness_ms == pytest.approx(1.0)
    assert clock.stats.late_ticks == 0
    assert clock.stats.frames_released == 50
    assert clock.pacers == {}  # every queue ran out: ticks no longer visit them


def test_a_tick_releases_only_what_falls_due_before_the_next_tick() -> None:
    clock = NodePacing()
    pacer = _queued(10)
    first = clock.kick("a", pacer, now=1.0)
    # Slots 1.00 … 1.06 are due now; 1.08 falls due at 1.02, the next tick, so it waits.
    assert [round(f.slot, 6) for f in first] == [1.0, 1.02, 1.04, 1.06]
    assert [round(f.slot, 6) for _, f in clock.tick(1.02, now=1.02)] == [1.08]
    assert pacer.queued_frames == 5
    assert "a" in clock.pacers


def test_a_kick_that_sends_everything_leaves_the_call_off_the_clock() -> None:
    clock = NodePacing()
    pacer = _queued(2)
    assert len(clock.kick("a", pacer, now=3.001)) == 2
    assert clock.pacers == {}
    assert clock.stats.frames_released == 2


def test_a_call_refused_by_ready_leaves_the_clock_with_nothing_released() -> None:
    clock = NodePacing()
    closed, open_ = _queued(10, "item_a"), _queued(10, "item_b")
    clock.add("closed", closed)
    clock.add("open", open_)
    released = clock.tick(1.0, now=1.0, ready=lambda key: key != "closed")
    assert {key for key, _ in released} == {"open"}
    assert closed.stats.frames_released == 0 and closed.queued_frames == 10
    assert list(clock.pacers) == ["open"]


def test_the_ledger_counts_exact_slots_from_the_first_frame() -> None:
    clock = NodePacing()
    pacer = _queued(25, "item_a")
    clock.kick("a", pacer, now=5.007)
    due = 5.02
    for _ in range(30):
        clock.tick(due, now=due + 0.001)
        due = clock.next_tick(due)
    assert pacer.ledger.released_ms("item_a") == 500.0
    assert pacer.ledger.heard_ms("item_a", 5.207) == 200.0  # heard from the first release on
    assert pacer.ledger.heard_ms("item_a", 6.0) == 500.0


def test_barge_in_stops_everything_queued_for_that_call_only() -> None:
    clock = NodePacing()
    talking, other = _queued(50, "item_a"), _queued(50, "item_b")
    clock.kick("a", talking, now=1.0)
    clock.kick("b", other, now=1.0)
    due = 1.02
    for _ in range(4):
        clock.tick(due, now=due)
        due = clock.next_tick(due)
    dropped = talking.clear(now=due - 0.01)  # killAudio mid-step, at 1.09
    assert dropped == 50 - 8  # the kick released 4, then 1 per tick
    assert talking.ledger.heard_ms("item_a", due) == pytest.approx(90.0)  # cut at the barge-in
    released = clock.tick(due, now=due)
    assert [key for key, _ in released] == ["b"]
    assert "a" not in clock.pacers
    clock.remove("b")
    assert clock.tick(clock.next_tick(due), now=clock.next_tick(due)) == []


def test_a_late_tick_counts_its_lateness_and_does_not_burst() -> None:
    clock = NodePacing()
    pacer = _queued(10)
    clock.kick("a", pacer, now=1.0)
    late = clock.tick(1.02, now=1.045)  # the loop stalled for 25 ms
    assert clock.stats.late_ticks == 1
    assert clock.stats.max_lateness_ms == pytest.approx(25.0)
    # Slot 1.08 was due at 1.02, 1.10 at 1.04: both late; 1.12 falls due at the next grid
    # point (1.06), whose tick sends it: nothing more goes out now.
    assert [round(f.slot, 6) for _, f in late] == [1.08, 1.1]
    assert [round(f.timing_error_ms, 3) for _, f in late] == [25.0, 5.0]
    assert pacer.stats.late_frames == 0  # their slots had not started yet


def test_a_forty_ms_clock_releases_two_frames_per_call_per_tick() -> None:
    clock = NodePacing(frames_per_tick=2)
    pacer = _queued(20)
    first = clock.kick("a", pacer, now=2.0)
    # Slots 2.00 … 2.06 are due now, 2.08 at 2.02, before the next tick (2.04): five frames.
    assert [round(f.slot, 6) for f in first] == [2.0, 2.02, 2.04, 2.06, 2.08]
    due, counts = 2.04, []
    while clock.pacers:
        counts.append(len(clock.tick(due, now=due)))
        due = clock.next_tick(due)
    assert counts == [2] * 7 + [1]
    assert pacer.stats.max_timing_error_ms == 0.0
    with pytest.raises(ValueError):
        NodePacing(frames_per_tick=0)
