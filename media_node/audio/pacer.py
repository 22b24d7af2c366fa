"""Sans-I/O outbound pacer: releases fixed-size frames at real time with a small lead.

Frames sent to the platform faster than real time pile up in its playout buffer, where they can
no longer be taken back cheaply and where the bridge loses track of what the caller has heard.
The pacer instead gives every frame a playout slot on the caller's side and releases it only
`lead` before that slot starts:

- the first frame of a timeline gets `slot = now`, each next frame `slot = previous + frame`;
- a frame may be released when `now >= slot - lead`;
- if nothing is playing at `now` (the previous timeline's last slot already ended), the next
  frame starts a new timeline at `now`, so a gap never turns into a burst.

The I/O loop calls `release(now)` after enqueuing and whenever `next_wakeup(now)` comes due, and
sends what it returns in order. Time is a float of monotonic-clock seconds, passed in; inside,
times are integer microseconds so slot arithmetic is exact.

A gap is an *underrun* when it falls inside a reply: the reply is in progress from its first
enqueued frame until `end_reply()`. A gap is a *late frame* when the frame was already queued at
the previous `release` call and the loop came back only after its slot had started (an event-loop
stall longer than the lead).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from media_node.audio.ledger import DEFAULT_MAX_ITEMS, PlayoutLedger, to_us
from media_node.audio.pcm import FRAME_MS

DEFAULT_LEAD_MS = 60
"""How far ahead of its playout slot a frame may be sent."""


class Released(NamedTuple):
    """One frame released for sending."""

    frame: bytes
    item_id: str | None
    slot: float
    """Monotonic time at which the frame starts playing on the caller's side."""
    released_at: float
    timing_error_ms: float
    """How long after it became due (`slot - lead`, or its arrival if later) it was released."""


@dataclass(slots=True)
class PacerStats:
    """Counters for metrics and benchmarks; all cumulative since the pacer was created."""

    frames_released: int = 0
    frames_dropped: int = 0
    """Frames discarded by `clear` (barge-in, or the hold loop cut when a person answers)."""
    timelines: int = 0
    """Timelines started: the first frame, and every restart after a gap."""
    underruns: int = 0
    """Gaps inside a reply: the queue ran dry before `end_reply`."""
    late_frames: int = 0
    """Frames released after their slot had started (the loop called back too late)."""
    max_timing_error_ms: float = 0.0
    total_timing_error_ms: float = 0.0
    """Sum over released frames; divide by `frames_released` for the mean."""


class Pacer:
    """Releases queued frames on the caller's playout schedule and keeps the playout ledger.

    Args:
        frame_ms: Duration of every enqueued frame in milliseconds.
        lead_ms: How long before its slot a frame may be released (default 60 ms).
        ledger_items: Items the playout ledger remembers before forgetting the oldest.

    Attributes:
        ledger: What the caller heard per model item; see `PlayoutLedger.heard_ms`.
        stats: Cumulative counters, see `PacerStats`.
    """

    __slots__ = (
        "_consumed",
        "_enqueued",
        "_frame_us",
        "_lead_us",
        "_next_slot_us",
        "_queue",
        "_reply_end",
        "_timeline_start_us",
        "_waiting",
        "frame_ms",
        "lead_ms",
        "ledger",
        "stats",
    )

    def __init__(
        self,
        frame_ms: int = FRAME_MS,
        lead_ms: float = DEFAULT_LEAD_MS,
        ledger_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, got {frame_ms}")
        if lead_ms < 0:
            raise ValueError(f"lead_ms must not be negative, got {lead_ms}")
        self.frame_ms = frame_ms
        self.lead_ms = lead_ms
        self.ledger = PlayoutLedger(ledger_items)
        self.stats = PacerStats()
        self._frame_us = frame_ms * 1000
        self._lead_us = round(lead_ms * 1000)
        self._queue: deque[tuple[bytes, str | None]] = deque()
        # End of the last released slot: where the next frame continues the timeline.
        self._next_slot_us: int | None = None
        self._timeline_start_us = 0
        # Frames at the head of the queue that were already queued at the last release() call.
        self._waiting = 0
        # Sequence positions: frames enqueued, frames released or dropped, and the enqueued
        # count when the last reply ended. A gap with _consumed != _reply_end is an underrun.
        self._enqueued = 0
        self._consumed = 0
        self._reply_end = 0

    @property
    def queued_frames(self) -> int:
        """Frames waiting to be released."""
        return len(self._queue)

    @property
    def queued_ms(self) -> int:
        """Milliseconds of audio waiting to be released."""
        return len(self._queue) * self.frame_ms

    @property
    def playout_end(self) -> float | None:
        """When the last released frame finishes playing (None before the first release)."""
        return None if self._next_slot_us is None else self._next_slot_us / 1_000_000

    def is_idle(self, now: float) -> bool:
        """True when nothing is queued and the caller has heard everything released by `now`."""
        return not self._queue and (self._next_slot_us is None or self._next_slot_us <= to_us(now))

    def enqueue(self, frame: bytes, item_id: str | None = None) -> None:
        """Queues one frame of exactly `frame_ms`; call `release` afterwards to send what is due.

        Args:
            frame: The frame's PCM bytes (from a `Framer`).
            item_id: The model item the audio belongs to, for the ledger; None for audio that is
                not a model item (it is paced but not recorded).
        """
        self._queue.append((frame, item_id))
        self._enqueued += 1

    def end_reply(self) -> None:
        """Marks the end of a reply: a gap after the frames enqueued so far is not an underrun.

        Call it after enqueuing the reply's final (flushed) frame.
        """
        self._reply_end = self._enqueued

    def release(self, now: float, until: float | None = None) -> list[Released]:
        """Releases every frame that is due at `now` (or by `until`), in order.

        Args:
            now: Monotonic time in seconds; never earlier than a previous call's `now`.
            until: Also release the frames that fall due before this time (the next tick of
                a clock that calls `release` only at its ticks, so none of them waits for it).
                New timelines still start at `now`, and the ledger settles at `now`.

        Returns:
            The frames to send now, with their slots; empty if none is due.
        """
        queue = self._queue
        if not queue:
            return []
        now_us = to_us(now)
        until_us = now_us if until is None else max(now_us, to_us(until) - 1)
        lead_us = self._lead_us
        frame_us = self._frame_us
        stats = self.stats
        ledger = self.ledger
        released: list[Released] = []
        while queue:
            waited = self._waiting > 0
            slot_us = self._next_slot_us
            if slot_us is None or slot_us < now_us:
                error_us = 0
                if slot_us is not None:
                    if waited:
                        stats.late_frames += 1
                        error_us = now_us - (slot_us - lead_us)
                    elif self._consumed != self._reply_end:
                        stats.underruns += 1
                stats.timelines += 1
                slot_us = self._timeline_start_us = now_us
            elif slot_us - lead_us > until_us:
                break
            elif waited:
                error_us = max(0, now_us - max(slot_us - lead_us, self._timeline_start_us))
            else:
                error_us = 0
            frame, item_id = queue.popleft()
            if waited:
                self._waiting -= 1
            self._consumed += 1
            self._next_slot_us = slot_us + frame_us
            if item_id is not None:
                ledger.record(item_id, slot_us, frame_us, now_us)
            error_ms = error_us / 1000
            stats.frames_released += 1
            stats.total_timing_error_ms += error_ms
            if error_ms > stats.max_timing_error_ms:
                stats.max_timing_error_ms = error_ms
            released.append(Released(frame, item_id, slot_us / 1_000_000, now, error_ms))
        self._waiting = len(queue)
        return released

    def next_wakeup(self, now: float) -> float | None:
        """When `release` should next be called.

        Args:
            now: Monotonic time in seconds.

        Returns:
            The monotonic time at which the next queued frame becomes due (`now` if it already
            is), or None when the queue is empty: wait for the next `enqueue` instead.
        """
        if not self._queue:
            return None
        slot_us = self._next_slot_us
        now_us = to_us(now)
        if slot_us is None or slot_us < now_us:
            return now
        due_us = slot_us - self._lead_us
        return now if due_us <= now_us else due_us / 1_000_000

    def drop_unnamed_tail(self) -> int | None:
        """Drops the queued frames after the last one of a model item (a pre-rendered line or
        hold audio queued behind a reply), keeping the reply whole; returns how many.

        Nothing already released is touched, so no killAudio is needed and the ledger is
        unchanged. Returns None, dropping nothing, when no model item's frame is queued (use
        `clear` then).
        """
        queue = self._queue
        keep = len(queue)
        while keep and queue[keep - 1][1] is None:
            keep -= 1
        if keep == 0:
            return None
        dropped = len(queue) - keep
        for _ in range(dropped):
            queue.pop()
        self._waiting = min(self._waiting, keep)
        self._enqueued -= dropped
        self._reply_end = min(self._reply_end, self._enqueued)
        self.stats.frames_dropped += dropped
        return dropped

    def clear(self, now: float) -> int:
        """Barge-in: drops every queued frame and stops the playout timeline at `now`.

        Frames already released but scheduled after `now` are taken as not heard (the bridge
        sends killAudio with this call), so the ledger stops counting at `now`.

        Args:
            now: Monotonic time in seconds.

        Returns:
            The number of queued frames dropped.
        """
        dropped = len(self._queue)
        self._queue.clear()
        self._waiting = 0
        now_us = to_us(now)
        if self._next_slot_us is not None and self._next_slot_us > now_us:
            self._next_slot_us = now_us
        self._consumed = self._reply_end = self._enqueued
        self.ledger.cut(now_us)
        self.stats.frames_dropped += dropped
        return dropped
