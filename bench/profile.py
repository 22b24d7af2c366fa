"""Where the media node's CPU goes under load: py-spy samples summarised by function.

``py-spy record --format raw`` writes one line per distinct stack (``frame;frame;... count``).
:func:`summarize_stacks` turns that into self and inclusive shares per function, which is how
the per-frame hot path is found and kept lean. Sampling a process briefly pauses it, so the
profile is taken in its own run, never during a measured window.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

IDLE_FRAMES = ("EpollSelector.select", "_worker (concurrent/futures/thread.py")
"""Leaf frames where a sampled thread is waiting, not working (Python frames only)."""
IDLE_NATIVE = ("PyThread_acquire_lock_timed", "internal_select", "epoll_wait")
"""Native frames that mean the same when py-spy samples C code too (``--native``): a worker
thread waiting for work or for a socket, the loop waiting for events."""


PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mask draws for the model socket (os.urandom)", ("token_bytes (secrets.py",)),
    ("garbage collection", ("gc_collect_main",)),
    ("resampling: soxr and the numpy conversions around it", ("StreamResampler.",)),
    (
        "uplink appends: JSON, base64, framing, socket write",
        ("OpenAIRealtimeSession.send_audio", "GeminiLiveSession.send_audio"),
    ),
    ("caller frames: parsing the media socket's frames", ("ServerProtocol.parse",)),
    ("caller frames: hand-off to the call (recv chain, limits)", ("GuardedConnection.recv",)),
    ("model events: parsing, JSON, base64, playback", ("CallSession._model_loop",)),
    ("outbound frames: pacing tick and socket writes", ("PacingClock.", "PacedSender.")),
    ("the call's other work (core, timers, records)", ("CallSession.",)),
)
"""Where a busy sample's time goes, by the first part (in this order) with a frame in its
stack; samples matching none are the event loop's own work (epoll, reads, timers, callbacks)."""
LOOP_PART = "event loop: epoll, socket reads, timers, callbacks"


def _part_of(frames: list[str]) -> str:
    for part, markers in PARTS:
        if any(marker in frame for frame in frames for marker in markers):
            return part
    return LOOP_PART


def _is_native(frame: str) -> bool:
    return frame.startswith("(native)") or bool(re.search(r"\.(so[.\d]*|c:\d+|h:\d+)\)$", frame))


def _function(frame: str) -> str:
    # Inclusive shares are per function, whichever of its lines was running.
    return re.sub(r":\d+\)$", ")", frame)


def _frame_name(frame: str) -> str:
    # An unresolved native address says only which library it is in.
    return f"(native) {frame.split(' ', 1)[1]}" if frame.startswith("0x") else frame


def summarize_stacks(raw: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw output.

    Args:
        raw: ``py-spy record --format raw`` output.
        top: How many functions to keep in each list.

    Returns:
        ``{"samples", "idle_share", "parts": [[share, part]...], "self": [[share, frame]...],
        "inclusive": [...]}``, shares in percent of the busy (non-idle) samples: ``parts`` by
        `PARTS`, ``self`` per frame (line), ``inclusive`` per Python function.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        if any(frames[-1].startswith(name) for name in IDLE_FRAMES) or any(
            marker in frame for frame in frames for marker in IDLE_NATIVE
        ):
            idle += samples
            continue
        frames = [_frame_name(frame) for frame in frames]
        parts[_part_of(frames)] += samples
        own[frames[-1]] += samples
        for frame in {_function(frame) for frame in frames if not _is_native(frame)}:
            inclusive[frame] += samples
    busy = max(1, total - idle)
    return {
        "samples": total,
        "idle_share": round(100 * idle / max(1, total), 1),
        "parts": [[round(100 * n / busy, 1), part] for part, n in parts.most_common()],
        "self": [[round(100 * n / busy, 1), frame] for frame, n in own.most_common(top)],
        "inclusive": [
            [round(100 * n / busy, 1), frame]
            for frame, n in inclusive.most_common(top + 12)
            if not any(skip in frame for skip in ("asyncio", "runpy", "__main__", "bench/"))
        ][:top],
    }


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, output: Path, rate: int = 250) -> str | None:
    """Samples `pid` for `seconds`; returns the raw stacks, or None if py-spy is unavailable.

    Native frames (uvloop's and soxr's C code, system calls) are sampled too where py-spy can
    unwind them (``--native``); where it cannot, the profile is taken without them.
    """
    executable = py_spy()
    if executable is None:
        return None
    for native in (["--native"], []):
        process = await asyncio.create_subprocess_exec(
            executable,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(output),
            *native,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        if process.returncode == 0:
            break
    else:
        return None
    try:
        return await asyncio.to_thread(output.read_text)
    except OSError:
        return None


def print_table(profile: dict[str, Any]) -> None:
    """The hottest functions of the node."""
    print(
        f"Node profile at {profile.get('calls')} calls (py-spy, {profile['samples']} samples, "
        f"{profile['idle_share']}% idle); % of busy samples"
    )
    for share, part in profile.get("parts", []):
        print(f"  part {share:5.1f}%  {part}")
    for share, frame in profile["self"][:12]:
        print(f"  self {share:5.1f}%  {frame[:110]}")
    for share, frame in profile["inclusive"][:12]:
        print(f"  incl {share:5.1f}%  {frame[:110]}")
