"""One pacing clock for the node: frames on a shared 20 ms grid, exact slots, barge-in intact."""

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


def test_every_call_releases_exact_frames_in_consecutive_grid_slots() -> None:
    clock = NodePacing(origin=0.0)
    clock.add("a", _queued(30, "item_a"))
    clock.add("b", _queued(20, "item_b"))
    slots: dict[str, list[float]] = {"a": [], "b": []}
    due = 10.0
    for _ in range(40):
        # The timer fires up to 3 ms late; releases still happen at the grid time.
        for key, frame in clock.tick(due, now=due + 0.003):
            assert frame.frame == FRAME
            assert frame.timing_error_ms == 0.0
            slots[str(key)].append(round(frame.slot, 6))
        due = clock.next_tick(due)
    assert len(slots["a"]) == 30 and len(slots["b"]) == 20
    for found in slots.values():
        assert found[0] == 10.0  # timelines start on the grid
        assert all(round(b - a, 6) == 0.02 for a, b in zip(found, found[1:], strict=False))
    assert clock.stats.max_lateness_ms == pytest.approx(3.0)
    assert clock.stats.late_ticks == 0
    assert clock.stats.frames_released == 50


def test_the_lead_holds_frames_until_their_tick() -> None:
    clock = NodePacing()
    pacer = _queued(10)
    clock.add("a", pacer)
    first = clock.tick(1.0, now=1.0)
    assert len(first) == 4  # slot 1.0 plus the 60 ms lead: slots 1.00, 1.02, 1.04, 1.06
    assert len(clock.tick(1.02, now=1.02)) == 1  # then one frame per tick
    assert pacer.queued_frames == 5


def test_a_kick_between_ticks_sends_at_once_with_its_slots_on_the_grid() -> None:
    clock = NodePacing()
    pacer = Pacer()
    clock.add("a", pacer)
    assert clock.tick(2.0, now=2.0) == []
    assert "a" not in clock.pacers  # nothing queued: off the clock
    for _ in range(6):
        pacer.enqueue(FRAME, "item_a")
    kicked = clock.kick("a", pacer, now=2.007)  # audio arrived 7 ms after a tick
    assert [round(f.slot, 6) for f in kicked] == [2.02, 2.04, 2.06, 2.08]
    # The tick at 2.02 fires late, after the kick used its grid point: nothing goes back.
    assert [round(f.slot, 6) for _, f in clock.tick(2.02, now=2.025)] == []
    assert [round(f.slot, 6) for _, f in clock.tick(2.04, now=2.04)] == [2.1]
    assert "a" in clock.pacers  # one frame still queued
    assert [round(f.slot, 6) for _, f in clock.tick(2.06, now=2.06)] == [2.12]
    assert clock.pacers == {}  # its queue is empty: ticks no longer visit it


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


def test_the_ledger_counts_exact_slots() -> None:
    clock = NodePacing()
    pacer = _queued(25, "item_a")
    clock.add("a", pacer)
    due = 5.0
    for _ in range(30):
        clock.tick(due, now=due + 0.001)
        due = clock.next_tick(due)
    assert pacer.ledger.released_ms("item_a") == 500.0
    assert pacer.ledger.heard_ms("item_a", 5.2) == 200.0
    assert pacer.ledger.heard_ms("item_a", 6.0) == 500.0


def test_barge_in_stops_everything_queued_for_that_call_only() -> None:
    clock = NodePacing()
    talking, other = _queued(50, "item_a"), _queued(50, "item_b")
    clock.add("a", talking)
    clock.add("b", other)
    due = 1.0
    for _ in range(5):
        clock.tick(due, now=due)
        due = clock.next_tick(due)
    dropped = talking.clear(now=due - 0.01)  # killAudio mid-step
    assert dropped == 50 - 8  # 5 ticks released 4 + 1 + 1 + 1 + 1
    assert talking.ledger.heard_ms("item_a", due) == pytest.approx(90.0)
    released = clock.tick(due, now=due)
    assert [key for key, _ in released] == ["b"]
    clock.remove("b")
    assert clock.tick(clock.next_tick(due), now=clock.next_tick(due)) == []


def test_a_tick_later_than_a_whole_step_is_counted_and_catches_up() -> None:
    clock = NodePacing()
    clock.add("a", _queued(10))
    clock.tick(1.0, now=1.0)
    late = clock.tick(1.02, now=1.045)  # the loop stalled for 25 ms
    assert clock.stats.late_ticks == 1
    assert clock.stats.max_lateness_ms == pytest.approx(25.0)
    # Released as of the last grid point passed (1.04): the frames of both ticks, the first
    # of them counted late by its pacer.
    assert [round(f.slot, 6) for _, f in late] == [1.08, 1.1]
    assert [f.timing_error_ms for _, f in late] == [20.0, 0.0]
