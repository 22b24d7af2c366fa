"""Media-node capacity: how many concurrent calls one core carries within the timing budget.

For each N of the sweep, a fresh ``python -m media_node`` is pinned to core 0; this process
(load generator, Realtime double, moto) is pinned to core 1. N legs connect one at a time (each
waits until its model session has opened, which also maps legs to model sessions), stream
caller audio in real time (speech turns with line noise between them, continuously) and the
double answers every turn with bursty deltas (120 ms chunks at 4× real time). After a settle
period, a measurement window records:

- node CPU (``/proc/<pid>/stat``) and resident memory (``/proc/<pid>/status``), per call;
- outbound frame timing error at the caller's side (see ``analysis.frame_timing_errors``);
- the node's own pacer counters from the call records (late frames, underruns, max error);
- inbound hop latency: caller frame sent → audio appended on the model socket;
- frames lost: caller frames sent but not counted by the node, frames the node released but the
  caller never received;
- the generator's own health: its clock's lateness and how busy core 1 was.

A step passes with p99 timing error ≤ 5 ms, no frames lost and every leg connected; the sweep
stops at the first step that fails (or when the generator side saturates).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bench import analysis
from bench.harness import (
    BenchAws,
    BenchResponder,
    ModelTap,
    NodeProcess,
    pin_to,
    proc_cpu_seconds,
)
from bench.loadgen import CallerAudio, LegSpec, LoadGenerator
from bench.report import format_table
from bench.stats import summarize

P99_BUDGET_MS = 5.0
GENERATOR_BUSY_LIMIT = 0.85
"""Above this share of core 1, the generator side may be what limits the step."""


async def _wait_for_sessions(tap: ModelTap, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(tap.sessions) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


async def run_step(
    n: int,
    *,
    aws: BenchAws | None,
    model_url: str,
    tap: ModelTap | None,
    node_cpu: int | None,
    window_s: float,
    settle_s: float,
    lead_ms: float,
    logs: Path,
    stream_url: str | None = None,
    specs: list[LegSpec] | None = None,
) -> dict[str, Any]:
    """One step of the sweep: N calls against a fresh node (or against `stream_url`)."""
    node: NodeProcess | None = None
    call_ids: list[str] = []
    if stream_url is None:
        assert aws is not None
        node = NodeProcess(aws, model_url, cpu=node_cpu, max_calls=n + 50)
        node.start(logs / f"media-node-{n}.log")
        await asyncio.sleep(1.0)
        rss_idle = node.rss_mb()
        specs = []
        for _ in range(n):
            call_id, spec = aws.new_call(node.media_url)
            call_ids.append(call_id)
            specs.append(spec)
    else:
        rss_idle = None
        assert specs is not None
    loop = asyncio.get_running_loop()
    generator = LoadGenerator(CallerAudio(speech_s=1.2, pause_s=5.0))
    base = len(tap.sessions) if tap else 0
    mapped = tap is not None
    ramp_started = loop.time()
    for index, spec in enumerate(specs[:n]):
        leg = await generator.open_leg(spec)
        if leg.error:
            continue
        if tap is not None and mapped:
            mapped = await _wait_for_sessions(tap, base + index + 1, timeout=5.0)
    ramp_s = loop.time() - ramp_started
    await asyncio.sleep(settle_s)

    generator.record_lag = True
    start = loop.time()
    node_cpu0 = node.cpu_seconds() if node else None
    gen_cpu0 = proc_cpu_seconds()
    rss: list[float] = []
    while loop.time() - start < window_s:
        await asyncio.sleep(min(1.0, window_s - (loop.time() - start)))
        if node:
            rss.append(node.rss_mb())
    end = loop.time()
    node_cpu_s = node.cpu_seconds() - node_cpu0 if node and node_cpu0 is not None else None
    gen_cpu_s = proc_cpu_seconds() - gen_cpu0
    generator.record_lag = False
    open_at_end = generator.open_legs()
    await generator.stop()

    records: list[dict[str, Any]] = []
    if aws is not None and call_ids:
        deadline = time.monotonic() + 20
        pending = list(call_ids)
        while pending and time.monotonic() < deadline:
            found = await asyncio.to_thread(lambda: [(c, aws.metrics_of(c)) for c in pending])
            records += [m for _, m in found if m]
            pending = [c for c, m in found if not m]
            if pending:
                await asyncio.sleep(0.5)
    exit_code = await node.stop() if node else None
    return _analyse(
        n=n,
        generator=generator,
        tap=tap if mapped else None,
        base=base,
        window=(start, end),
        lead_ms=lead_ms,
        node_cpu_s=node_cpu_s,
        gen_cpu_s=gen_cpu_s,
        rss_idle=rss_idle,
        rss=rss,
        records=records,
        extra={
            "ramp_s": round(ramp_s, 1),
            "legs_open_at_end": open_at_end,
            "node_exit_code": exit_code,
            "records_found": len(records),
        },
    )


def _analyse(
    *,
    n: int,
    generator: LoadGenerator,
    tap: ModelTap | None,
    base: int,
    window: tuple[float, float],
    lead_ms: float,
    node_cpu_s: float | None,
    gen_cpu_s: float,
    rss_idle: float | None,
    rss: list[float],
    records: list[dict[str, Any]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    window_s = window[1] - window[0]
    errors: list[float] = []
    hops: list[float] = []
    connected = [leg for leg in generator.legs if leg.error is None]
    for index, leg in enumerate(generator.legs):
        if leg.error is not None:
            continue
        errors += analysis.frame_timing_errors(
            leg.arrivals, lead_ms=lead_ms, breaks=leg.kills, window=window
        )
        if tap is not None and base + index < len(tap.sessions):
            hops += analysis.hop_latencies(leg.sends, tap.sessions[base + index].appends, window)
    sent = sum(len(leg.sends) for leg in connected)
    received = sum(len(leg.arrivals) for leg in connected)
    frames_in = sum(int(r.get("frames_in") or 0) for r in records)
    released = sum(int(r.get("frames_released") or 0) for r in records)
    complete = len(records) == len(connected) and bool(records)
    inbound_lost = max(0, sent - frames_in) if complete else None
    outbound_lost = max(0, released - received) if complete else None
    timing = summarize(errors)
    lag = summarize([x * 1000 for x in generator.tick_lag])
    gen_busy = gen_cpu_s / window_s if window_s else None
    result: dict[str, Any] = {
        "calls": n,
        "connected": len(connected),
        "connect_errors": sorted({leg.error for leg in generator.legs if leg.error})[:3],
        "window_s": round(window_s, 1),
        "node_cpu_core_share": None if node_cpu_s is None else round(node_cpu_s / window_s, 3),
        "cpu_per_call_pct": None
        if node_cpu_s is None
        else round(100 * node_cpu_s / window_s / max(1, len(connected)), 3),
        "rss_idle_mb": None if rss_idle is None else round(rss_idle, 1),
        "rss_mb": round(sorted(rss)[len(rss) // 2], 1) if rss else None,
        "mem_per_call_kb": None
        if rss_idle is None or not rss
        else round((sorted(rss)[len(rss) // 2] - rss_idle) * 1024 / max(1, len(connected)), 1),
        "frame_timing_error_ms": timing,
        "hop_latency_ms": summarize(hops),
        "frames_sent": sent,
        "frames_received": received,
        "node_frames_in": frames_in if records else None,
        "node_frames_released": released if records else None,
        "inbound_frames_lost": inbound_lost,
        "outbound_frames_lost": outbound_lost,
        "late_frames": sum(int(r.get("late_frames") or 0) for r in records) if records else None,
        "underruns": sum(int(r.get("underruns") or 0) for r in records) if records else None,
        "pacer_max_timing_error_ms": max(
            (float(r.get("max_timing_error_ms") or 0) for r in records), default=None
        ),
        "barge_ins": sum(int(r.get("barge_ins") or 0) for r in records) if records else None,
        "generator_clock_lag_ms": lag,
        "generator_core_share": None if gen_busy is None else round(gen_busy, 3),
        **extra,
    }
    p99 = timing["p99"]
    lost = (inbound_lost or 0) + (outbound_lost or 0)
    result["passed"] = (
        p99 is not None
        and p99 <= P99_BUDGET_MS
        and len(connected) == n
        and extra.get("legs_open_at_end") == n
        and (complete or not records)
        and lost == 0
    )
    result["generator_saturated"] = gen_busy is not None and gen_busy > GENERATOR_BUSY_LIMIT
    return result


async def sweep(
    steps: list[int],
    *,
    window_s: float,
    settle_s: float,
    logs: Path,
    lead_ms: float = 60.0,
    stream_url: str | None = None,
    foreign_specs: list[LegSpec] | None = None,
    profile_step: int | None = None,
) -> dict[str, Any]:
    """Runs the sweep; stops after the first failing step."""
    from tests.doubles.openai_realtime import Pacing, RealtimeDouble

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    node_cpu, gen_cpu = (0, 1) if cores >= 2 else (None, None)
    pin_to(gen_cpu)
    logs.mkdir(parents=True, exist_ok=True)
    aws = BenchAws().start() if stream_url is None else None
    tap = ModelTap()
    double = RealtimeDouble(
        BenchResponder(), api_key=None, pacing=Pacing(chunk_ms=120, speed=4.0), on_session=tap
    )
    await double.start()
    results: list[dict[str, Any]] = []
    try:
        for n in steps:
            step = await run_step(
                n,
                aws=aws,
                model_url=double.url,
                tap=tap,
                node_cpu=node_cpu,
                window_s=window_s,
                settle_s=settle_s,
                lead_ms=lead_ms,
                logs=logs,
                stream_url=stream_url,
                specs=foreign_specs,
            )
            results.append(step)
            print_step(step)
            if not step["passed"] or step["generator_saturated"]:
                break
    finally:
        await double.close()
        if aws is not None:
            aws.stop()
    passing = [s["calls"] for s in results if s["passed"]]
    last = results[-1] if results else {}
    return {
        "pinning": {"media_node_cpu": node_cpu, "generator_cpu": gen_cpu, "cores": cores},
        "budget": {"p99_frame_timing_error_ms": P99_BUDGET_MS, "frames_lost": 0},
        "steps": results,
        "max_calls_per_core": max(passing) if passing else 0,
        "limited_by": _limit(last, passing),
        "target_calls_per_core": 200,
    }


def _limit(last: dict[str, Any], passing: list[int]) -> str:
    if not last:
        return "no step ran"
    if last.get("passed") and last.get("generator_saturated"):
        return (
            f"generator side: core 1 was {last['generator_core_share']:.0%} busy at "
            f"{last['calls']} calls, so larger steps would measure the generator, not the node"
        )
    if last.get("passed"):
        return "sweep ended before any step failed (raise --steps to find the limit)"
    reasons = []
    p99 = last["frame_timing_error_ms"]["p99"]
    if p99 is None or p99 > P99_BUDGET_MS:
        reasons.append(f"p99 frame timing error {p99} ms > {P99_BUDGET_MS} ms")
    if last.get("inbound_frames_lost") or last.get("outbound_frames_lost"):
        reasons.append(
            f"frames lost (in {last.get('inbound_frames_lost')}, "
            f"out {last.get('outbound_frames_lost')})"
        )
    if last["connected"] < last["calls"] or last.get("legs_open_at_end") != last["calls"]:
        reasons.append(f"{last['calls'] - last['connected']} legs failed to connect or dropped")
    if last.get("generator_saturated"):
        reasons.append(f"generator core {last['generator_core_share']:.0%} busy")
    return f"at {last['calls']} calls: " + "; ".join(reasons or ["see the step's figures"])


COLUMNS = [
    ("calls", "calls"),
    ("node_cpu_core_share", "node core"),
    ("cpu_per_call_pct", "CPU%/call"),
    ("mem_per_call_kb", "KB/call"),
    ("t_p50", "err p50"),
    ("t_p99", "err p99"),
    ("t_max", "err max"),
    ("late_frames", "late"),
    ("lost", "lost"),
    ("h_p50", "hop p50"),
    ("h_p99", "hop p99"),
    ("g_lag", "gen lag p99"),
    ("generator_core_share", "gen core"),
    ("passed", "pass"),
]


def _row(step: dict[str, Any]) -> dict[str, Any]:
    timing, hop = step["frame_timing_error_ms"], step["hop_latency_ms"]
    lost = None
    if step["inbound_frames_lost"] is not None:
        lost = step["inbound_frames_lost"] + (step["outbound_frames_lost"] or 0)
    return {
        **step,
        "t_p50": timing["p50"],
        "t_p99": timing["p99"],
        "t_max": timing["max"],
        "h_p50": hop["p50"],
        "h_p99": hop["p99"],
        "g_lag": step["generator_clock_lag_ms"]["p99"],
        "lost": lost,
    }


def print_step(step: dict[str, Any]) -> None:
    """One progress line per finished step."""
    row = _row(step)
    print(
        f"  step {row['calls']:>4} calls: node core {row['node_cpu_core_share']}, "
        f"err p99 {row['t_p99']} ms, hop p99 {row['h_p99']} ms, lost {row['lost']}, "
        f"late {row['late_frames']}, gen core {row['generator_core_share']}, "
        f"{'pass' if row['passed'] else 'FAIL'}",
        flush=True,
    )


def print_table(results: dict[str, Any]) -> None:
    """The sweep as a table, then the verdict."""
    pin = results["pinning"]
    print(
        f"Media-node capacity (node on core {pin['media_node_cpu']}, generator + model double "
        f"+ moto on core {pin['generator_cpu']}; err = outbound frame timing error ms at the "
        "caller; hop = caller frame → model append ms; lost = frames lost in + out)"
    )
    print(format_table(COLUMNS, [_row(step) for step in results["steps"]]))
    print(
        f"  max calls per core within budget (p99 ≤ {P99_BUDGET_MS} ms, 0 lost): "
        f"{results['max_calls_per_core']} (target {results['target_calls_per_core']})"
    )
    print(f"  limited by: {results['limited_by']}")
    saturated = [s["calls"] for s in results["steps"] if s["generator_saturated"]]
    if saturated:
        print(f"  generator side saturated (> {GENERATOR_BUSY_LIMIT:.0%} of core 1) at {saturated}")
    else:
        busiest = max((s["generator_core_share"] or 0 for s in results["steps"]), default=0)
        print(
            f"  generator was not the bottleneck: core 1 at most {busiest:.0%} busy, "
            f"clock lag p99 ≤ {max((s['generator_clock_lag_ms']['p99'] or 0 for s in results['steps']), default=0)} ms"
        )
