"""PlayoutLedger: heard-milliseconds arithmetic, through the pacer and directly."""

from __future__ import annotations

import pytest

from media_node.audio import Pacer, PlayoutLedger

T0 = 500.0


def released_pacer(count: int, item_id: str = "a") -> Pacer:
    pacer = Pacer()
    for _ in range(count):
        pacer.enqueue(b"\x00" * 640, item_id)
    pacer.release(T0)
    return pacer


@pytest.mark.parametrize(
    ("offset_ms", "heard"),
    [(-5, 0.0), (0, 0.0), (7, 7.0), (20, 20.0), (31, 31.0), (79.5, 79.5), (80, 80.0), (500, 80.0)],
)
def test_heard_is_clamped_per_frame(offset_ms: float, heard: float) -> None:
    pacer = released_pacer(4)  # slots T0 .. T0+60 ms, 80 ms in all

    assert pacer.ledger.heard_ms("a", T0 + offset_ms / 1000) == pytest.approx(heard)
    assert pacer.ledger.released_ms("a") == 80.0


def test_gap_between_timelines_is_not_heard() -> None:
    pacer = released_pacer(2)  # T0 .. T0+40 ms
    pacer.enqueue(b"\x00" * 640, "a")
    pacer.enqueue(b"\x00" * 640, "a")
    pacer.release(T0 + 0.100)  # underrun: T0+100 .. T0+140 ms

    ledger = pacer.ledger
    assert ledger.heard_ms("a", T0 + 0.070) == pytest.approx(40.0)
    assert ledger.heard_ms("a", T0 + 0.130) == pytest.approx(70.0)
    assert ledger.heard_ms("a", T0 + 9.0) == pytest.approx(80.0)


def test_items_are_accounted_separately() -> None:
    pacer = Pacer()
    for item in ("a", "a", "b", "b", "b"):
        pacer.enqueue(b"\x00" * 640, item)
    pacer.release(T0)
    pacer.release(T0 + 0.020)

    assert pacer.ledger.heard_ms("a", T0 + 0.050) == pytest.approx(40.0)
    assert pacer.ledger.heard_ms("b", T0 + 0.050) == pytest.approx(10.0)
    assert pacer.ledger.heard_ms("b", T0 + 1) == pytest.approx(60.0)
    assert pacer.ledger.heard_ms("unknown", T0 + 1) == 0.0


def test_cut_freezes_what_was_heard() -> None:
    ledger = PlayoutLedger()
    ledger.record("a", 1_000_000, 20_000, 1_000_000)
    ledger.record("a", 1_020_000, 20_000, 1_000_000)

    ledger.cut(1_025_000)

    assert ledger.heard_ms("a", 5.0) == pytest.approx(25.0)
    assert ledger.released_ms("a") == 40.0


def test_long_reply_stays_small_and_exact() -> None:
    pacer = Pacer()
    now = T0
    for second in range(30):
        for _ in range(40):  # 800 ms of audio each second: underruns split it into timelines
            pacer.enqueue(b"\x00" * 640, "a")
        now = T0 + second
        while (wakeup := pacer.next_wakeup(now)) is not None:
            now = wakeup
            pacer.release(now)

    ledger = pacer.ledger
    assert pacer.stats.timelines == 30
    assert pacer.stats.underruns == 29
    assert ledger.heard_ms("a", T0 + 100) == pytest.approx(30 * 800.0)
    assert ledger.heard_ms("a", T0 + 29.5) == pytest.approx(29 * 800.0 + 500.0)
    assert ledger.heard_ms("a", T0 + 29.9) == pytest.approx(30 * 800.0)
    # Finished segments are folded into one total: memory does not grow with the reply.
    assert len(ledger._items["a"].segments) <= 2


def test_forget_and_eviction_bound_the_items() -> None:
    ledger = PlayoutLedger(max_items=2)
    for index, item in enumerate(("a", "b", "c")):
        ledger.record(item, index * 20_000, 20_000, 0)

    assert "a" not in ledger
    assert len(ledger) == 2
    ledger.forget("b")
    ledger.forget("never-seen")
    assert list(filter(ledger.__contains__, ("a", "b", "c"))) == ["c"]
    assert ledger.heard_ms("b", 10.0) == 0.0
