"""Pure functions turning timestamps from a load run into latencies and timing errors.

All times are monotonic-clock seconds (comparable across processes on one machine); every
function returns milliseconds. Nothing here does I/O, so it is unit-tested directly.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

FRAME_MS = 20


def frame_timing_errors(
    arrivals: Sequence[float],
    *,
    lead_ms: float = 60.0,
    frame_ms: float = FRAME_MS,
    gap_ms: float = 1000.0,
    breaks: Sequence[float] = (),
    window: tuple[float, float] | None = None,
    skip_frames: int = 0,
    first_frames: int | None = None,
) -> list[float]:
    """How late each received frame came against its real-time slot, as the receiver sees it.

    A paced sender releases frame ``k`` of a timeline at ``start + max(0, k·frame − lead)``:
    the first ``lead`` of audio at once, then one frame per period. Arrivals are split into
    timelines at silences longer than `gap_ms` and at `breaks` (killAudio); within one, each
    frame's offset from that schedule is measured and the error is the offset minus the
    timeline's smallest offset (the frame that came closest to a perfect clock), so the figure
    includes the sender's lateness and the loopback transit, never a constant shift.

    Args:
        arrivals: Arrival times of one leg's frames, ascending.
        lead_ms: The sender's lead.
        frame_ms: Frame duration.
        gap_ms: A silence longer than this starts a new timeline (a new reply).
        breaks: Times after which a new timeline starts (killAudio received).
        window: Only frames arriving within ``[start, end)`` are reported.
        skip_frames: Frames at the start of each timeline left out of the result (they still
            set the reference): a reply's first frames can wait for the model's second delta,
            which is the model's delivery, not the sender's pacing.
        first_frames: Report only frames before this index of each timeline (with
            ``skip_frames=0``: the reply starts that `skip_frames` leaves out).

    Returns:
        Error in milliseconds of every reported frame, in arrival order.
    """
    frame_s = frame_ms / 1000
    lead_s = lead_ms / 1000
    gap_s = gap_ms / 1000
    cuts = sorted(breaks)
    errors: list[float] = []
    timeline: list[tuple[float, float]] = []  # (arrival, offset)

    def close() -> None:
        if not timeline:
            return
        reference = min(offset for _, offset in timeline)
        for arrival, offset in timeline[skip_frames:first_frames]:
            if window is None or window[0] <= arrival < window[1]:
                errors.append((offset - reference) * 1000)
        timeline.clear()

    previous: float | None = None
    index = 0
    for arrival in arrivals:
        new = previous is None or arrival - previous > gap_s
        if not new and previous is not None:
            cut = bisect_right(cuts, previous)
            new = cut < len(cuts) and cuts[cut] <= arrival
        if new:
            close()
            index = 0
        timeline.append((arrival, arrival - max(0.0, index * frame_s - lead_s)))
        index += 1
        previous = arrival
    close()
    return errors


def hop_latencies(
    sends: Sequence[float], appends: Sequence[float], window: tuple[float, float] | None = None
) -> list[float]:
    """Inbound hop: caller frame sent → the model socket received the audio it produced.

    Each append is attributed to the latest frame sent before it arrived, which is exact while
    the hop is shorter than the frame period (20 ms); longer hops would be under-reported, so
    callers should treat a p99 near 20 ms as a saturated node.

    Args:
        sends: Send times of one leg's frames, ascending.
        appends: Arrival times of that call's ``input_audio_buffer.append`` events at the model.
        window: Only appends within ``[start, end)`` are reported.
    """
    latencies: list[float] = []
    for arrival in appends:
        if window is not None and not window[0] <= arrival < window[1]:
            continue
        index = bisect_right(sends, arrival) - 1
        if index >= 0:
            latencies.append((arrival - sends[index]) * 1000)
    return latencies


def first_after(times: Sequence[float], start: float, limit_s: float) -> float | None:
    """The first of ascending `times` at or after `start` and within `limit_s`, else None."""
    index = bisect_left(times, start)
    if index < len(times) and times[index] - start <= limit_s:
        return times[index]
    return None


def delta_to_frame(
    first_deltas: Sequence[float], arrivals: Sequence[float], limit_s: float = 2.0
) -> list[float]:
    """Model's first audio delta of a response sent → that reply's first frame at the caller."""
    latencies = []
    for sent in first_deltas:
        arrived = first_after(arrivals, sent, limit_s)
        if arrived is not None:
            latencies.append((arrived - sent) * 1000)
    return latencies


def barge_in(
    speech_started: Sequence[float],
    kills: Sequence[float],
    arrivals: Sequence[float],
    limit_s: float = 1.0,
    tail_s: float = 0.1,
) -> tuple[list[float], list[float]]:
    """Barge-in stop times: speech_started sent → killAudio received, and → last stale frame.

    Only speech starts answered by a killAudio within `limit_s` count (a start while nothing
    plays gets no killAudio). The last stale frame is the last frame that arrived after the
    speech start and no later than `tail_s` after the killAudio; with none, the stop took 0 ms.

    Returns:
        ``(to_kill_ms, to_last_stale_frame_ms)``, one entry per barge-in.
    """
    to_kill: list[float] = []
    to_stale: list[float] = []
    for started in speech_started:
        kill = first_after(kills, started, limit_s)
        if kill is None:
            continue
        to_kill.append((kill - started) * 1000)
        first = bisect_left(arrivals, started)
        last = bisect_right(arrivals, kill + tail_s) - 1
        to_stale.append((arrivals[last] - started) * 1000 if last >= first else 0.0)
    return to_kill, to_stale
