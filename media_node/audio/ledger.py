"""Playout ledger: how much of each model item the caller has actually heard.

The pacer records every released frame with its playout slot (the time, on the caller's side,
at which the frame starts playing). The milliseconds of an item heard by `now` are the sum over
its frames of `clamp(now - slot_start, 0, frame_ms)`; that figure drives
`conversation.item.truncate` on barge-in and the heard-versus-generated transcript.

Frames of one item that play back to back are merged into one segment, and segments that have
finished playing are folded into a running total, so an item costs a few integers however long
it is. Times are integer microseconds inside, so the sums are exact.
"""

from __future__ import annotations

DEFAULT_MAX_ITEMS = 32
"""Items remembered before the oldest is forgotten; a call rarely needs more than the last one."""


def to_us(seconds: float) -> int:
    """Converts monotonic-clock seconds to integer microseconds."""
    return round(seconds * 1_000_000)


class _ItemPlayout:
    """Playout of one item: settled heard time plus segments that may still be playing."""

    __slots__ = ("released_us", "segments", "settled_us")

    def __init__(self) -> None:
        self.released_us = 0
        self.settled_us = 0
        self.segments: list[list[int]] = []  # [start_us, end_us], in time order


class PlayoutLedger:
    """Per-item record of released and heard audio, bounded in memory.

    Args:
        max_items: Items kept; recording a new item beyond this forgets the oldest.
    """

    __slots__ = ("_items", "max_items")

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.max_items = max_items
        self._items: dict[str, _ItemPlayout] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def record(self, item_id: str, slot_us: int, frame_us: int, now_us: int) -> None:
        """Records one released frame (called by the pacer).

        Args:
            item_id: The model item the frame belongs to.
            slot_us: Playout start of the frame on the caller's side, in microseconds.
            frame_us: Frame duration in microseconds.
            now_us: Current time in microseconds; segments that ended by then are settled.
        """
        playout = self._items.get(item_id)
        if playout is None:
            if len(self._items) >= self.max_items:
                del self._items[next(iter(self._items))]
            playout = self._items[item_id] = _ItemPlayout()
        playout.released_us += frame_us
        segments = playout.segments
        if segments and segments[-1][1] == slot_us:
            segments[-1][1] = slot_us + frame_us
        else:
            segments.append([slot_us, slot_us + frame_us])
        while segments and segments[0][1] <= now_us:
            start, end = segments.pop(0)
            playout.settled_us += end - start

    def cut(self, now_us: int) -> None:
        """Stops playout at `now_us` (barge-in): nothing scheduled after it will be heard."""
        for playout in self._items.values():
            kept = []
            for start, end in playout.segments:
                if start < now_us:
                    kept.append([start, min(end, now_us)])
            playout.segments = kept

    def heard_ms(self, item_id: str, now: float) -> float:
        """Milliseconds of `item_id` the caller has heard by `now`.

        The slot model assumes a frame starts playing when its slot begins; to allow for a known
        playout buffer on the platform's side, pass `now` minus that buffer.

        Args:
            item_id: A model item id.
            now: Monotonic time in seconds; must not precede times already given to the pacer.

        Returns:
            Heard milliseconds (0.0 for an unknown or forgotten item). Round down before sending
            it as `audio_end_ms`, and clamp it to the audio received for the item: the last frame
            of a reply is padded with silence.
        """
        playout = self._items.get(item_id)
        if playout is None:
            return 0.0
        now_us = to_us(now)
        heard = playout.settled_us
        for start, end in playout.segments:
            if now_us > start:
                heard += min(now_us, end) - start
        return heard / 1000

    def released_ms(self, item_id: str) -> float:
        """Milliseconds of `item_id` released towards the caller (0.0 if unknown)."""
        playout = self._items.get(item_id)
        return 0.0 if playout is None else playout.released_us / 1000

    def forget(self, item_id: str) -> None:
        """Drops an item after its reply ended or its truncation was sent; ignores unknown ids."""
        self._items.pop(item_id, None)
