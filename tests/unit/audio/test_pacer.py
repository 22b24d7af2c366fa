"""Pacer: real-time release with a lead, driven by an explicit fake clock."""

from __future__ import annotations

import pytest

from media_node.audio import Pacer

T0 = 1000.0
MS = 0.001


def frames(count: int, tag: str = "f") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(count)]


def loaded(count: int, item_id: str | None = "a", **kwargs: float) -> Pacer:
    pacer = Pacer(**kwargs)
    for frame in frames(count):
        pacer.enqueue(frame, item_id)
    return pacer


def test_first_frames_are_released_up_to_the_lead_at_once() -> None:
    pacer = loaded(10)

    released = pacer.release(T0)

    assert [r.frame for r in released] == frames(4)
    assert [r.slot for r in released] == pytest.approx([T0, T0 + 0.02, T0 + 0.04, T0 + 0.06])
    assert all(r.released_at == T0 and r.timing_error_ms == 0 for r in released)
    assert all(r.item_id == "a" for r in released)
    assert pacer.queued_frames == 6
    assert pacer.queued_ms == 120


@pytest.mark.parametrize(("lead_ms", "expected"), [(0, 1), (19, 1), (20, 2), (100, 6)])
def test_lead_sets_how_much_goes_out_ahead(lead_ms: float, expected: int) -> None:
    assert len(loaded(10, lead_ms=lead_ms).release(T0)) == expected


def test_then_exactly_one_frame_per_20_ms() -> None:
    pacer = loaded(30)
    pacer.release(T0)

    released = []
    now = T0
    while (wakeup := pacer.next_wakeup(now)) is not None:
        assert pacer.release(wakeup - 1 * MS) == []  # nothing is due early
        now = wakeup
        batch = pacer.release(now)
        assert len(batch) == 1
        assert batch[0].slot - 0.060 == pytest.approx(now)
        released += batch

    assert [r.frame for r in released] == frames(30)[4:]
    gaps = [b.released_at - a.released_at for a, b in zip(released, released[1:], strict=False)]
    assert gaps == pytest.approx([0.020] * len(gaps))
    assert pacer.stats.frames_released == 30
    assert pacer.stats.underruns == pacer.stats.late_frames == 0
    assert pacer.stats.max_timing_error_ms == 0


def test_next_wakeup() -> None:
    pacer = Pacer()
    assert pacer.next_wakeup(T0) is None

    pacer.enqueue(b"x", "a")
    assert pacer.next_wakeup(T0) == T0  # a new timeline starts now

    pacer.release(T0)
    assert pacer.next_wakeup(T0) is None  # empty: wait for the next enqueue
    for _ in range(5):
        pacer.enqueue(b"y", "a")
    pacer.release(T0)  # slots T0+20..T0+60 ms go out, T0+80 ms waits
    assert pacer.next_wakeup(T0) == pytest.approx(T0 + 0.020)
    assert pacer.next_wakeup(T0 + 0.025) == T0 + 0.025  # overdue: call release now
    assert pacer.next_wakeup(T0 + 1.0) == T0 + 1.0  # the timeline ended: restart now


def test_catching_up_within_the_lead_keeps_the_timeline() -> None:
    pacer = loaded(10)
    pacer.release(T0)

    released = pacer.release(T0 + 0.050)  # woke 30 ms late; the T0+80 ms slot has not started

    assert [r.slot for r in released] == pytest.approx([T0 + 0.080, T0 + 0.100])
    assert [r.timing_error_ms for r in released] == pytest.approx([30.0, 10.0])
    assert pacer.stats.late_frames == 0
    assert pacer.stats.timelines == 1
    assert pacer.stats.max_timing_error_ms == pytest.approx(30.0)


def test_no_burst_after_a_stall_longer_than_the_lead() -> None:
    pacer = loaded(50)
    pacer.release(T0)

    released = pacer.release(T0 + 1.0)

    assert len(released) == 4
    assert [r.slot for r in released] == pytest.approx([T0 + 1.0, T0 + 1.02, T0 + 1.04, T0 + 1.06])
    assert released[0].timing_error_ms == pytest.approx(980.0)  # due at T0+20 ms
    assert [r.timing_error_ms for r in released[1:]] == [0, 0, 0]
    assert pacer.stats.late_frames == 1
    assert pacer.stats.underruns == 0
    assert pacer.stats.timelines == 2


def test_running_dry_inside_a_reply_is_an_underrun_and_starts_a_new_timeline() -> None:
    pacer = loaded(3)
    pacer.release(T0)
    assert pacer.playout_end == pytest.approx(T0 + 0.060)

    for frame in frames(2, "late"):
        pacer.enqueue(frame, "a")
    released = pacer.release(T0 + 0.200)

    assert [r.slot for r in released] == pytest.approx([T0 + 0.200, T0 + 0.220])
    assert all(r.timing_error_ms == 0 for r in released)
    assert pacer.stats.underruns == 1
    assert pacer.stats.late_frames == 0
    assert pacer.stats.timelines == 2


def test_a_gap_between_replies_is_not_an_underrun() -> None:
    pacer = loaded(3)
    pacer.end_reply()
    pacer.release(T0)

    pacer.enqueue(b"next", "b")
    released = pacer.release(T0 + 0.200)

    assert released[0].slot == pytest.approx(T0 + 0.200)
    assert pacer.stats.underruns == 0
    assert pacer.stats.timelines == 2


def test_audio_arriving_before_playout_ends_continues_the_timeline() -> None:
    pacer = loaded(3)
    pacer.release(T0)

    pacer.enqueue(b"more", "a")
    released = pacer.release(T0 + 0.050)

    assert released[0].slot == pytest.approx(T0 + 0.060)
    assert released[0].timing_error_ms == 0  # it was released the moment it arrived
    assert pacer.stats.timelines == 1
    assert pacer.stats.underruns == 0


def test_underrun_in_a_reply_queued_back_to_back_is_counted() -> None:
    pacer = loaded(3)
    pacer.end_reply()
    pacer.enqueue(b"b0", "b")  # the next reply follows before the first finished playing
    pacer.release(T0)

    pacer.enqueue(b"b1", "b")  # ...and then stalls mid-reply
    pacer.release(T0 + 0.5)

    assert pacer.stats.underruns == 1


def test_clear_on_barge_in() -> None:
    pacer = loaded(10)
    pacer.release(T0)

    dropped = pacer.clear(T0 + 0.030)

    assert dropped == 6
    assert pacer.queued_frames == 0
    assert pacer.next_wakeup(T0 + 0.030) is None
    assert pacer.release(T0 + 0.040) == []
    assert pacer.stats.frames_dropped == 6
    assert pacer.playout_end == pytest.approx(T0 + 0.030)
    assert pacer.ledger.heard_ms("a", T0 + 1.0) == pytest.approx(30.0)
    assert pacer.ledger.released_ms("a") == 80.0

    pacer.enqueue(b"reply", "b")
    released = pacer.release(T0 + 0.300)
    assert released[0].slot == pytest.approx(T0 + 0.300)
    assert pacer.stats.underruns == 0


def test_dropping_the_unnamed_tail_keeps_the_reply_whole() -> None:
    pacer = loaded(10)  # a reply of 200 ms ...
    pacer.end_reply()
    for frame in frames(50, "hold"):  # ... with a second of hold audio queued behind it
        pacer.enqueue(frame)
    pacer.end_reply()
    released = pacer.release(T0)

    assert pacer.drop_unnamed_tail() == 50
    assert pacer.stats.frames_dropped == 50
    later = [r for t in range(1, 20) for r in pacer.release(T0 + t * 0.020)]
    assert [r.frame for r in released + later] == frames(10)  # every frame of it, in order
    assert [r.slot for r in later] == pytest.approx([T0 + 0.080 + i * 0.020 for i in range(6)])
    assert pacer.ledger.released_ms("a") == 200.0
    assert pacer.stats.underruns == 0
    assert pacer.drop_unnamed_tail() is None  # nothing of a model item queued any more


def test_dropping_the_unnamed_tail_without_a_reply_queued_drops_nothing() -> None:
    pacer = loaded(5, item_id=None)
    assert pacer.drop_unnamed_tail() is None
    assert pacer.queued_frames == 5 and pacer.stats.frames_dropped == 0


def test_is_idle_waits_for_playout_to_finish() -> None:
    pacer = loaded(2)
    assert not pacer.is_idle(T0)

    pacer.release(T0)

    assert not pacer.is_idle(T0 + 0.039)
    assert pacer.is_idle(T0 + 0.040)


def test_frames_without_an_item_are_paced_but_not_recorded() -> None:
    pacer = loaded(2, item_id=None)

    assert len(pacer.release(T0)) == 2
    assert len(pacer.ledger) == 0


def test_bursty_producer_is_smoothed_to_real_time() -> None:
    """Model deltas of 100 ms every 100 ms, arriving 50 ms early: never a gap, never a burst."""
    pacer = Pacer()
    now, produced, released = T0, 0, []
    next_delta = T0
    while produced < 100 or pacer.queued_frames:
        wakeup = pacer.next_wakeup(now)
        if produced < 100 and (wakeup is None or next_delta <= wakeup):
            now = next_delta
            for frame in frames(5, f"d{produced}-"):
                pacer.enqueue(frame, "a")
            produced += 5
            next_delta += 0.100
        else:
            now = wakeup
        released += pacer.release(now)

    slots = [r.slot for r in released]
    assert slots == pytest.approx([T0 + 0.020 * i for i in range(100)])
    assert all(r.slot - r.released_at <= 0.060 + 1e-9 for r in released)
    assert pacer.stats.underruns == 0
    assert pacer.stats.timelines == 1


@pytest.mark.parametrize("kwargs", [{"frame_ms": 0}, {"lead_ms": -1}])
def test_invalid_configuration_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        Pacer(**kwargs)
