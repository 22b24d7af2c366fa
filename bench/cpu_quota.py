"""A CPU quota for the media node, the way Fargate hands out CPU: a cgroup v1 CFS quota.

A Fargate task of 0.25 vCPU is not a quarter of a dedicated core: it may run on any core for
25 % of every CFS period and is throttled for the rest of the period once that is spent. Under
such a quota the node's frame timing suffers as soon as a period's budget runs out with frames
still due, which a pinned whole core never shows. :class:`CpuQuota` creates
``/sys/fs/cgroup/cpu/<name>/`` with ``cpu.cfs_period_us`` and ``cpu.cfs_quota_us``, moves a
process into it (from the child itself, before it executes the node, via
:meth:`CpuQuota.enter` as ``preexec_fn``), reads the throttling counters of ``cpu.stat`` and
removes the group afterwards. It needs root and a cgroup v1 ``cpu`` hierarchy; `available`
says whether both are there.

On a machine shared with other work a node at normal priority also competes with that work
for its core, which spoils the frame timing whatever the quota. With ``realtime`` the quota is
a real-time bandwidth limit instead (``cpu.rt_period_us`` / ``cpu.rt_runtime_us``, the group
scheduling of SCHED_FIFO tasks): the node runs at SCHED_FIFO, so unrelated work cannot delay
it, and is still stopped for the rest of each period once `share` of it is spent. The kernel
keeps no throttling counters for that limit, so `stat` is empty then.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPU_ROOT = Path("/sys/fs/cgroup/cpu")


def available() -> str | None:
    """None when a quota can be set here, else the reason it cannot."""
    if not (CPU_ROOT / "cpu.cfs_quota_us").exists():
        return f"no cgroup v1 cpu controller at {CPU_ROOT}"
    if not os.access(CPU_ROOT, os.W_OK):
        return f"{CPU_ROOT} is not writable (needs root)"
    return None


@dataclass
class CpuQuota:
    """A cgroup holding one process to `share` of a core per `period_ms`.

    Args:
        share: Fraction of one core, e.g. 0.25 (Fargate's 256 CPU units).
        period_ms: CFS period; the budget is ``share × period`` per period. Fargate leaves the
            kernel default (100 ms); a shorter period spreads the budget more evenly, so a
            throttled process waits at most ``(1 − share) × period`` at a time.
        name: Name of the cgroup under ``/sys/fs/cgroup/cpu``.
    """

    share: float
    period_ms: float = 10.0
    name: str = ""
    realtime: bool = False

    def __post_init__(self) -> None:
        if not 0.01 <= self.share <= 64:
            raise ValueError(f"CPU quota must be between 0.01 and 64 cores, got {self.share}")
        if self.realtime and self.share > 0.95:
            raise ValueError("a real-time quota is at most 0.95 of a core (the kernel's limit)")
        if not 1 <= self.period_ms <= 1000:
            raise ValueError(f"CFS period must be 1..1000 ms, got {self.period_ms}")
        self.name = self.name or f"mapokezi-bench-{os.getpid()}-{time.monotonic_ns()}"
        self.path = CPU_ROOT / self.name

    @property
    def period_us(self) -> int:
        """``cpu.cfs_period_us``."""
        return round(self.period_ms * 1000)

    @property
    def quota_us(self) -> int:
        """``cpu.cfs_quota_us``: the CPU time allowed per period, over all cores."""
        return round(self.share * self.period_us)

    def create(self) -> CpuQuota:
        """Creates the cgroup with its period and quota."""
        reason = available()
        if reason:
            raise RuntimeError(f"cannot set a CPU quota: {reason}")
        self.path.mkdir(exist_ok=True)
        kind = "rt" if self.realtime else "cfs"
        runtime = "rt_runtime_us" if self.realtime else "cfs_quota_us"
        (self.path / f"cpu.{kind}_period_us").write_text(str(self.period_us))
        (self.path / f"cpu.{runtime}").write_text(str(self.quota_us))
        return self

    def enter(self) -> None:
        """Moves the calling process into the cgroup (use as a child's ``preexec_fn``)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def stat(self) -> dict[str, int]:
        """``cpu.stat``: nr_periods, nr_throttled, throttled_time (ns), ... (CFS only)."""
        values: dict[str, int] = {}
        if self.realtime:
            return values
        with contextlib.suppress(OSError):
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    values[key] = int(value)
        return values

    def remove(self) -> None:
        """Removes the cgroup; any process still in it goes back to the root group first."""
        if not self.path.exists():
            return
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                (CPU_ROOT / "cgroup.procs").write_text(pid)
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # the last task is still leaving the group


def throttling(before: dict[str, int], after: dict[str, int], window_s: float) -> dict[str, Any]:
    """Throttling between two `CpuQuota.stat` readings: periods throttled and time lost."""
    periods = after.get("nr_periods", 0) - before.get("nr_periods", 0)
    throttled = after.get("nr_throttled", 0) - before.get("nr_throttled", 0)
    lost_ns = after.get("throttled_time", 0) - before.get("throttled_time", 0)
    return {
        "periods": periods,
        "throttled_periods": throttled,
        "throttled_share": round(throttled / periods, 4) if periods else None,
        "throttled_ms_per_s": round(lost_ns / 1e6 / window_s, 2) if window_s else None,
    }
