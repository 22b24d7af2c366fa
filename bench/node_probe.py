"""``python -m media_node`` with a pacing-error histogram, for the capacity benchmark.

Runs the media node's own entry point unchanged, after wrapping ``Pacer.release`` so every
released frame's ``timing_error_ms`` (how long after its due time, ``slot − lead`` or its
arrival if later, the frame went out) lands in a 0.1 ms-bin histogram. The wrapper adds one
Python call per release and an integer increment per frame.

It also measures the inbound hop inside the node, in two histograms of the same bins: from the
moment a caller frame's bytes were parsed off the media socket (the server connection's
``process_event``, inside the transport's ``data_received``) to the moment the append carrying
its audio was written to the model socket. ``hop`` is that time for the frame that completes
an uplink block (the frame the bench's end-to-end hop attributes each append to);
``hop_block_start`` is it for the block's first frame, which also waits for the rest of its
block (about 20 ms at the default 40 ms appends). What this cannot see is the time a frame
waits in the kernel before the node's loop reads it (a busy or throttled node); the bench's
end-to-end hop includes that, and the probe's per-call timelines split it: for a sample of each
call's caller frames (every `TIMELINE_STRIDE`-th) and appends since the window started, when
each was parsed or written, by index since the call began, so the bench pairs them with the
generator's send times and the double's receive times (``bench.capacity``). Control by signal:

- ``SIGUSR1``: forget the frames counted so far (the measurement window starts);
- ``SIGUSR2``: write the histogram as JSON to ``$BENCH_PROBE_PATH``.

With ``BENCH_PROFILE_PATH`` set, the node also runs under cProfile and writes its statistics
there when it exits (for ``python -m bench --profile``).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
from array import array
from collections import deque
from typing import Any

import bench  # noqa: F401  (puts functions/ on sys.path)
from media_node import __main__ as node_main
from media_node import inbound
from media_node.audio import pacer
from media_node.models import gemini_session, openai_session

BIN_MS = 0.1
BINS = 2000
"""0.1 ms bins up to 200 ms; later frames count in the last bin."""

_histogram = [0] * BINS
_hop = [0] * BINS
_hop_block_start = [0] * BINS
_gc_pauses: list[tuple[int, float]] = []
_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _gc_pauses.append((info["generation"], (time.perf_counter() - _gc_started[0]) * 1000))


def _wrap_release() -> None:
    original = pacer.Pacer.release
    last = BINS - 1

    def release(self: pacer.Pacer, now: float, until: float | None = None) -> list[pacer.Released]:
        released = original(self, now, until)
        if released:
            histogram = _histogram
            for frame in released:
                histogram[min(int(frame.timing_error_ms * 10), last)] += 1
        return released

    pacer.Pacer.release = release  # type: ignore[method-assign]


TIMELINE_STRIDE = 8
APPEND_STRIDE = TIMELINE_STRIDE // 2
TIMELINE_SIZE = 250
"""Every 8th caller frame (and every 4th append: the same instants at 40 ms appends) is timed,
at most 250 of each per call after a reset: 40 s of a call at 8 bytes a time, about 4 KB per
call added to the memory the bench measures, and samples spread over the whole window."""


class _CallTimeline:
    """Times of one call's caller frames parsed and appends written since the window started,
    every `TIMELINE_STRIDE`-th by index since the call began (``first`` is the first index)."""

    __slots__ = (
        "appends",
        "appends_first",
        "appends_seen",
        "frames",
        "frames_first",
        "frames_seen",
    )

    def __init__(self) -> None:
        self.frames = array("d")
        self.frames_first = self.frames_seen = 0
        self.appends = array("d")
        self.appends_first = self.appends_seen = 0

    def frame(self, at: float) -> None:
        if self.frames_seen % TIMELINE_STRIDE == 0 and len(self.frames) < TIMELINE_SIZE:
            self.frames.append(at)
        self.frames_seen += 1

    def append(self, at: float) -> None:
        if self.appends_seen % APPEND_STRIDE == 0 and len(self.appends) < TIMELINE_SIZE:
            self.appends.append(at)
        self.appends_seen += 1

    def reset(self) -> None:
        self.frames = array("d")
        self.frames_first = -(-self.frames_seen // TIMELINE_STRIDE) * TIMELINE_STRIDE
        self.appends = array("d")
        self.appends_first = -(-self.appends_seen // APPEND_STRIDE) * APPEND_STRIDE

    def as_json(self) -> dict[str, Any]:
        return {
            "frames_first": self.frames_first,
            "frames_stride": TIMELINE_STRIDE,
            "frames": [round(t, 6) for t in self.frames],
            "appends_first": self.appends_first,
            "appends_stride": APPEND_STRIDE,
            "appends": [round(t, 6) for t in self.appends],
        }


_timelines: dict[str, _CallTimeline] = {}


def _wrap_inbound_hop() -> None:
    """Times each caller frame from its parse to the append that carries it (see above)."""
    from websockets.asyncio.server import ServerConnection
    from websockets.frames import Frame, Opcode

    from media_node.guarded_connection import GuardedConnection

    clock = time.monotonic
    process_event, recv = ServerConnection.process_event, GuardedConnection.recv
    feed = inbound.InboundAudio.feed
    last = BINS - 1
    # The caller frame being handled: when it was parsed, and its call's timeline.
    current: list[Any] = [None, None]
    # What `feed` just completed: (its last frame parsed, its first frame parsed, timeline).
    completed: list[tuple[float | None, float | None, _CallTimeline | None] | None] = [None]

    def timed_process_event(self: Any, event: Any) -> None:
        if type(event) is Frame and event.opcode is Opcode.BINARY:
            now = clock()
            self.__dict__.setdefault("bench_parsed", deque()).append(now)
            timeline = self.__dict__.get("bench_timeline")
            if timeline is None:
                timeline = self.bench_timeline = _CallTimeline()
            call_id = getattr(self, "call_id", None)
            if call_id is not None and call_id not in _timelines:
                _timelines[call_id] = timeline
            timeline.frame(now)
        process_event(self, event)

    async def timed_recv(self: Any, decode: bool | None = None) -> Any:
        message = await recv(self, decode)
        parsed = self.__dict__.get("bench_parsed")
        bytes_ = isinstance(message, bytes)
        current[0] = parsed.popleft() if parsed and bytes_ else None
        current[1] = self.__dict__.get("bench_timeline")
        completed[0] = None
        return message

    def timed_feed(self: Any, frame: bytes) -> bytes:
        if not self.pending_bytes:
            self.bench_block_start = current[0]
        block = feed(self, frame)
        if block:
            completed[0] = (current[0], getattr(self, "bench_block_start", None), current[1])
        return block

    def timed(send_audio: Any, on_wire: Any) -> Any:
        async def timed_send_audio(self: Any, pcm: bytes) -> None:
            sent = bool(pcm) and on_wire(self)
            await send_audio(self, pcm)
            now = clock()
            block, completed[0] = completed[0], None
            if block is None:
                # The caller's last words flushed at a turn end (by the call's performer, not
                # right after a frame): no frame completed them, so only the append is counted.
                timeline = self.__dict__.get("bench_timeline")
            else:
                received, start, timeline = block
                self.bench_timeline = timeline
                if received is not None:
                    _hop[min(int((now - received) * 10000), last)] += 1
                if start is not None:
                    _hop_block_start[min(int((now - start) * 10000), last)] += 1
            if sent and timeline is not None:
                timeline.append(now)

        return timed_send_audio

    openai, gemini = openai_session.OpenAIRealtimeSession, gemini_session.GeminiLiveSession
    ServerConnection.process_event = timed_process_event  # type: ignore[method-assign]
    GuardedConnection.recv = timed_recv  # type: ignore[method-assign]
    inbound.InboundAudio.feed = timed_feed  # type: ignore[method-assign]
    # What each adapter puts on the wire (an append, a realtimeInput) rather than drops or holds.
    openai.send_audio = timed(  # type: ignore[method-assign]
        openai.send_audio, lambda s: s._protocol.created and not s._closed
    )
    gemini.send_audio = timed(  # type: ignore[method-assign]
        gemini.send_audio,
        lambda s: s._protocol.setup_complete and s._held_audio is None and not s._closed,
    )


def _reset(*_: Any) -> None:
    _histogram[:] = [0] * BINS
    _hop[:] = [0] * BINS
    _hop_block_start[:] = [0] * BINS
    for timeline in _timelines.values():
        timeline.reset()
    _gc_pauses.clear()


def _write(*_: Any) -> None:
    path = os.environ.get("BENCH_PROBE_PATH")
    if path:
        counts = {str(i): n for i, n in enumerate(_histogram) if n}
        with open(path, "w") as out:
            pauses = {
                str(generation): sorted(ms for g, ms in _gc_pauses if g == generation)
                for generation in (0, 1, 2)
            }
            hop = {str(i): n for i, n in enumerate(_hop) if n}
            hop_block_start = {str(i): n for i, n in enumerate(_hop_block_start) if n}
            json.dump(
                {
                    "bin_ms": BIN_MS,
                    "counts": counts,
                    "gc_pause_ms": pauses,
                    "hop_counts": hop,
                    "hop_block_start_counts": hop_block_start,
                    "timelines": {
                        call_id: timeline.as_json() for call_id, timeline in _timelines.items()
                    },
                },
                out,
            )


def main() -> int:
    """Entry point: the node's ``main()`` with the probe installed."""
    _wrap_release()
    _wrap_inbound_hop()
    gc.callbacks.append(_on_gc)
    signal.signal(signal.SIGUSR1, _reset)
    signal.signal(signal.SIGUSR2, _write)
    profile_path = os.environ.get("BENCH_PROFILE_PATH")
    if not profile_path:
        return node_main.main()
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(node_main.main)
    finally:
        profiler.dump_stats(profile_path)


def histogram_summary(data: dict[str, Any], key: str = "counts") -> dict[str, Any]:
    """p50/p90/p99/max/mean (ms) and count from a histogram written by this probe.

    `key` picks the histogram: ``counts`` (pacing error), ``hop_counts`` or
    ``hop_block_start_counts``.
    """
    bin_ms = float(data["bin_ms"])
    counts = sorted((int(i), int(n)) for i, n in data.get(key, {}).items())
    total = sum(n for _, n in counts)
    if not total:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}

    def quantile(q: float) -> float:
        rank = q * (total - 1)
        seen = 0
        for index, n in counts:
            seen += n
            if seen > rank:
                return round((index + 1) * bin_ms, 2)  # upper edge of the bin: conservative
        return round((counts[-1][0] + 1) * bin_ms, 2)

    mean = sum((i + 0.5) * bin_ms * n for i, n in counts) / total
    return {
        "n": total,
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p99": quantile(0.99),
        "max": round((counts[-1][0] + 1) * bin_ms, 2),
        "mean": round(mean, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
