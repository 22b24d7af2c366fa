"""``python -m media_node`` with a pacing-error histogram, for the capacity benchmark.

Runs the media node's own entry point unchanged, after wrapping ``Pacer.release`` so every
released frame's ``timing_error_ms`` (how long after its due time, ``slot − lead`` or its
arrival if later, the frame went out) lands in a 0.1 ms-bin histogram. The wrapper adds one
Python call per release and an integer increment per frame. Control by signal:

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
from typing import Any

import bench  # noqa: F401  (puts functions/ on sys.path)
from media_node import __main__ as node_main
from media_node.audio import pacer

BIN_MS = 0.1
BINS = 2000
"""0.1 ms bins up to 200 ms; later frames count in the last bin."""

_histogram = [0] * BINS
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


def _reset(*_: Any) -> None:
    _histogram[:] = [0] * BINS
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
            json.dump({"bin_ms": BIN_MS, "counts": counts, "gc_pause_ms": pauses}, out)


def main() -> int:
    """Entry point: the node's ``main()`` with the probe installed."""
    _wrap_release()
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


def histogram_summary(data: dict[str, Any]) -> dict[str, Any]:
    """p50/p90/p99/max/mean (ms) and count from a histogram written by this probe."""
    bin_ms = float(data["bin_ms"])
    counts = sorted((int(i), int(n)) for i, n in data["counts"].items())
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
