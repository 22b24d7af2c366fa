"""Media-node capacity: how many concurrent calls one core carries within the timing budget.

For each N of the sweep, a fresh media node (``python -m media_node`` under
``bench.node_probe``) is pinned to core 0; the load generator (this process), the model
double (OpenAI Realtime or Gemini Live, as ``provider`` says; every call dials that provider's
number) and moto (their own processes) are pinned to core 1. N legs connect one at a time (each
waits until its model session has opened, which also maps legs to model sessions), stream
caller audio in real time without pause (speech turns with line noise between them) and the
double answers every turn with bursty deltas (120 ms chunks at 4× real time). After a settle
period, a measurement window records:

- node CPU (``/proc/<pid>/stat``) and resident memory (``/proc/<pid>/status``), per call;
- outbound frame timing error: the node's pacer histogram (release time − due time, due being
  the frame's slot minus the lead, or its arrival if later), and the same seen at the caller
  (``analysis.frame_timing_errors``), which adds loopback and the generator's own loop;
- late frames (released after their slot began) in the window, and over whole calls;
- inbound hop latency: caller frame sent → the append carrying its audio received by the
  double, attributed to the frame that completes each append's block; split, for a sample of
  frames, into sent → parsed by the node, parsed → append written (the probe's histogram of
  every frame) and written → read by the double; and the hop of each block's first frame, which
  also waits for the rest of its block;
- garbage-collector pauses in the node, per generation;
- frames lost: caller frames sent but not counted by the node, frames the node released but the
  caller never received (callers hang up in a pause, so nothing is in flight);
- the generator side's health: its clock's lateness and how busy core 1 was, per process.

A step passes with p99 timing error ≤ 5 ms, no frames lost and every leg connected; it counts
towards the capacity only if the generator side was not saturated. The sweep stops at the first
failing or saturated step.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import analysis, harness
from bench import profile as profiling
from bench.cpu_quota import CpuQuota, throttling
from bench.harness import (
    BenchAws,
    DoubleProcess,
    NodeProcess,
    core_busy_seconds,
    core_plan,
    pin_to,
    proc_cpu_seconds,
    proc_rss_mb,
)
from bench.loadgen import CallerAudio, LegSpec, LoadGenerator
from bench.node_probe import histogram_summary
from bench.providers import NUMBERS
from bench.report import format_table
from bench.stats import median_of_runs, summarize

P99_BUDGET_MS = 5.0
GENERATOR_BUSY_LIMIT = 0.85
"""Above this share of core 1, the generator side may be what limits the step."""
SKIP = 6
"""Frames at the start of each reply left out of the timing error: with the default lead
(60 ms) and the double's pacing (a 120 ms delta every 30 ms), frames 4 and 5 can be due before
the model's second delta has arrived, which is delivery, not pacing. Reported separately."""


@dataclass(frozen=True)
class QuotaPlan:
    """The node's CPU quota for a sweep: `share` of a core per `period_ms` (cgroup v1)."""

    share: float
    period_ms: float = 10.0


@dataclass
class Target:
    """What the sweep runs against: our node (started per step) or a server already running.

    Attributes:
        stream_url: A foreign server's stream URL (``{n}`` is replaced by the leg number); None
            to start ``python -m media_node`` for every step.
        urls: Pre-minted stream URLs for a foreign server, one per leg (used before stream_url).
        metadata: Extra fields for every leg's metadata frame.
        server_pid: The foreign server's process id, for its CPU and memory.
    """

    stream_url: str | None = None
    urls: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    server_pid: int | None = None

    @property
    def foreign(self) -> bool:
        """Whether the server under test is not started by the benchmark."""
        return bool(self.stream_url or self.urls)

    def specs(self, n: int) -> list[LegSpec]:
        """N legs for a foreign server."""
        if self.urls and len(self.urls) < n:
            raise ValueError(f"{n} legs need {n} URLs, the URL file has {len(self.urls)}")
        urls = self.urls[:n] or [str(self.stream_url).replace("{n}", str(i)) for i in range(n)]
        return [LegSpec(url, dict(self.metadata)) for url in urls]


class _Process:
    """CPU and memory readings of a process that is not ours to start or stop."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return proc_rss_mb(self.pid)


async def run_step(
    n: int,
    *,
    target: Target,
    aws: BenchAws | None,
    double: DoubleProcess,
    node_cpu: int | None,
    window_s: float,
    settle_s: float,
    lead_ms: float,
    logs: Path,
    helpers: dict[str, Any],
    profile: bool = False,
    quota: QuotaPlan | None = None,
    node_env: dict[str, str] | None = None,
    provider: str = "openai",
) -> dict[str, Any]:
    """One step of the sweep: N concurrent calls, measured over `window_s` seconds.

    Every call dials `provider`'s number, so the node relays it to `double` (which speaks
    that provider's protocol).

    With `profile`, py-spy samples the node during the window (which disturbs its timing, so
    such a step is reported only for its profile).
    """
    node: NodeProcess | None = None
    server: NodeProcess | _Process | None = None
    call_ids: list[str] = []
    await double.reset()
    if target.foreign:
        specs = target.specs(n)
        server = _Process(target.server_pid) if target.server_pid else None
    else:
        assert aws is not None
        node = NodeProcess(
            aws,
            double.url,
            cpu=node_cpu,
            max_calls=n + 50,
            quota=CpuQuota(quota.share, quota.period_ms, realtime=harness.realtime)
            if quota
            else None,
            extra_env=node_env,
            provider=provider,
        )
        await asyncio.to_thread(node.start, logs / f"media-node-{provider}-{n}.log")
        server = node
        specs = []
        for _ in range(n):
            call_id, spec = await asyncio.to_thread(
                aws.new_call, node.media_url, number=NUMBERS[provider]
            )
            call_ids.append(call_id)
            specs.append(spec)
    await asyncio.sleep(1.0)
    rss_idle = server.rss_mb() if server else None
    loop = asyncio.get_running_loop()
    generator = LoadGenerator(CallerAudio(speech_s=1.2, pause_s=5.0))
    mapped = True
    ramp_started = loop.time()
    for index, spec in enumerate(specs):
        leg = await generator.open_leg(spec)
        if leg.error is None and mapped:
            # Waiting for the leg's model session keeps legs and sessions in the same order.
            mapped = await double.wait_sessions(index + 1, limit_s=5.0)
    ramp_s = loop.time() - ramp_started
    await asyncio.sleep(settle_s)

    generator.record_lag = True
    start = loop.time()
    if node is not None:
        node.probe_reset()
    server_cpu0 = server.cpu_seconds() if server else None
    quota_stat0 = node.quota.stat() if node is not None and node.quota is not None else {}
    helper_cpu0 = {name: read() for name, read in helpers.items()}
    cores0 = core_busy_seconds()
    sampler = None
    if profile and node is not None and node.process is not None:
        sampler = asyncio.create_task(
            profiling.record(node.process.pid, window_s, logs / f"py-spy-{provider}-{n}.txt")
        )
    rss: list[float] = []
    while loop.time() - start < window_s:
        await asyncio.sleep(min(1.0, window_s - (loop.time() - start)))
        if server:
            rss.append(server.rss_mb())
    end = loop.time()
    server_cpu_s = (
        server.cpu_seconds() - server_cpu0 if server and server_cpu0 is not None else None
    )
    helper_split = {
        name: round((read() - helper_cpu0[name]) / max(1e-9, loop.time() - start), 3)
        for name, read in helpers.items()
    }
    helper_cpu_s = sum(helper_split.values()) * (loop.time() - start)
    throttled = None
    if node is not None and node.quota is not None:
        throttled = throttling(quota_stat0, node.quota.stat(), loop.time() - start)
    cores1 = core_busy_seconds()
    core_busy = {
        core: round((cores1[core] - cores0.get(core, 0.0)) / max(1e-9, loop.time() - start), 3)
        for core in cores1
    }
    stacks = await sampler if sampler is not None else None
    pacing = await node.probe_histogram() if node is not None else None
    generator.record_lag = False
    open_at_end = generator.open_legs()
    await generator.hang_up_in_pauses()
    await generator.stop()

    records: list[dict[str, Any]] = []
    if aws is not None and call_ids:
        records = await _collect_records(aws, call_ids)
    exit_code = await node.stop() if node else None
    taps = await double.taps(logs / f"model-taps-{provider}-{n}.json") if mapped else None
    if profile:
        return {"calls": n, **(profiling.summarize_stacks(stacks) if stacks else {})}
    return _analyse(
        n=n,
        generator=generator,
        taps=taps,
        window=(start, end),
        lead_ms=lead_ms,
        server_cpu_s=server_cpu_s,
        helper_cpu_s=helper_cpu_s,
        rss_idle=rss_idle,
        rss=rss,
        records=records,
        pacing=pacing,
        call_ids=call_ids,
        expect_records=not target.foreign,
        extra={
            "ramp_s": round(ramp_s, 1),
            "legs_open_at_end": open_at_end,
            "node_exit_code": exit_code,
            "records_found": len(records),
            "core_busy_share": core_busy,
            "node_core": node_cpu,
            "generator_side_core_share": helper_split,
            "cpu_quota": None if quota is None else quota.share,
            "node_env": node_env or {},
            "provider": provider,
            "cpu_quota_period_ms": None if quota is None else quota.period_ms,
            "throttling": throttled,
        },
    )


async def _collect_records(aws: BenchAws, call_ids: list[str]) -> list[dict[str, Any]]:
    """The metrics of every call, waiting up to 20 s for the node to write them."""
    records: list[dict[str, Any]] = []
    pending = list(call_ids)
    deadline = time.monotonic() + 20
    while pending and time.monotonic() < deadline:
        found = await asyncio.to_thread(_metrics_of, aws, list(pending))
        records += [metrics for _, metrics in found if metrics]
        pending = [call_id for call_id, metrics in found if not metrics]
        if pending:
            await asyncio.sleep(0.5)
    return records


def _metrics_of(aws: BenchAws, call_ids: list[str]) -> list[tuple[str, dict[str, Any] | None]]:
    return [(call_id, aws.metrics_of(call_id)) for call_id in call_ids]


def _analyse(
    *,
    n: int,
    generator: LoadGenerator,
    taps: list[dict[str, Any]] | None,
    window: tuple[float, float],
    lead_ms: float,
    server_cpu_s: float | None,
    helper_cpu_s: float,
    rss_idle: float | None,
    rss: list[float],
    records: list[dict[str, Any]],
    pacing: dict[str, Any] | None,
    call_ids: list[str],
    expect_records: bool,
    extra: dict[str, Any],
) -> dict[str, Any]:
    window_s = window[1] - window[0]
    errors: list[float] = []
    startup: list[float] = []
    hops: list[float] = []
    connected = [leg for leg in generator.legs if leg.error is None]
    for index, leg in enumerate(connected):
        steady = analysis.frame_timing_errors(
            leg.arrivals, lead_ms=lead_ms, breaks=leg.kills, window=window, skip_frames=SKIP
        )
        errors += steady
        startup += analysis.frame_timing_errors(
            leg.arrivals, lead_ms=lead_ms, breaks=leg.kills, window=window, first_frames=SKIP
        )
        if taps is not None and index < len(taps):
            hops += analysis.hop_latencies(leg.sends, taps[index]["appends"], window)
    sent = sum(len(leg.sends) for leg in connected)
    received = sum(len(leg.arrivals) for leg in connected)
    frames_in = sum(int(r.get("frames_in") or 0) for r in records)
    released = sum(int(r.get("frames_released") or 0) for r in records)
    complete = bool(records) and len(records) == len(connected)
    inbound_lost = max(0, sent - frames_in) if complete else None
    outbound_lost = max(0, released - received) if complete else None
    timing = summarize(errors)
    pacer_timing = histogram_summary(pacing) if pacing else None
    lag = summarize([x * 1000 for x in generator.tick_lag])
    side_busy = helper_cpu_s / window_s if window_s else None
    median_rss = sorted(rss)[len(rss) // 2] if rss else None
    result: dict[str, Any] = {
        "calls": n,
        "connected": len(connected),
        "connect_errors": sorted({leg.error for leg in generator.legs if leg.error})[:3],
        "window_s": round(window_s, 1),
        "node_cpu_core_share": None if server_cpu_s is None else round(server_cpu_s / window_s, 3),
        "cpu_per_call_pct": None
        if server_cpu_s is None
        else round(100 * server_cpu_s / window_s / max(1, len(connected)), 3),
        "rss_idle_mb": None if rss_idle is None else round(rss_idle, 1),
        "rss_mb": None if median_rss is None else round(median_rss, 1),
        "mem_per_call_kb": None
        if rss_idle is None or median_rss is None
        else round((median_rss - rss_idle) * 1024 / max(1, len(connected)), 1),
        "frame_timing_error_ms": pacer_timing or timing,
        "frame_timing_error_source": "node pacer" if pacer_timing else "caller side",
        "pacer_timing_error_ms": pacer_timing,
        "caller_frame_timing_error_ms": timing,
        "caller_reply_start_timing_error_ms": summarize(startup),
        "hop_latency_ms": summarize(hops),
        "node_hop_ms": histogram_summary(pacing, "hop_counts") if pacing else None,
        "node_hop_block_start_ms": histogram_summary(pacing, "hop_block_start_counts")
        if pacing
        else None,
        "gc_pauses": _gc_pauses(pacing),
        **_hop_parts(generator, taps, call_ids, pacing, window),
        "frames_sent": sent,
        "frames_received": received,
        "node_frames_in": frames_in if records else None,
        "node_frames_released": released if records else None,
        "inbound_frames_lost": inbound_lost,
        "outbound_frames_lost": outbound_lost,
        "late_frames": _late_in_window(pacing, lead_ms),
        "late_frames_whole_calls": sum(int(r.get("late_frames") or 0) for r in records)
        if records
        else None,
        "underruns": sum(int(r.get("underruns") or 0) for r in records) if records else None,
        "pacer_max_timing_error_ms": max(
            (float(r.get("max_timing_error_ms") or 0) for r in records), default=None
        ),
        "barge_ins": sum(int(r.get("barge_ins") or 0) for r in records) if records else None,
        "generator_clock_lag_ms": lag,
        "generator_core_share": None if side_busy is None else round(side_busy, 3),
        **extra,
    }
    node_core = extra.get("node_core")
    busy = extra.get("core_busy_share", {})
    if node_core is not None and node_core in busy and result["node_cpu_core_share"] is not None:
        result["node_core_other_load"] = round(
            max(0.0, busy[node_core] - result["node_cpu_core_share"]), 3
        )
    share = extra.get("cpu_quota")
    if share and result["node_cpu_core_share"] is not None:
        result["quota_used"] = round(result["node_cpu_core_share"] / share, 3)
        result["calls_per_core"] = round(n / share)
    p99 = result["frame_timing_error_ms"]["p99"]
    lost = (inbound_lost or 0) + (outbound_lost or 0)
    result["passed"] = (
        p99 is not None
        and p99 <= P99_BUDGET_MS
        and len(connected) == n
        and extra.get("legs_open_at_end") == n
        and (complete or not expect_records)
        and lost == 0
    )
    result["generator_saturated"] = side_busy is not None and side_busy > GENERATOR_BUSY_LIMIT
    return result


def combine_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One step from repeated runs: field-wise medians (every run's value kept in ``*_runs``).

    A step passes only if every run passed, and is saturated if any run was.
    """
    if len(runs) == 1:
        return runs[0]
    combined = median_of_runs(runs)
    combined["passed"] = all(run["passed"] for run in runs)
    combined["generator_saturated"] = any(run["generator_saturated"] for run in runs)
    combined["runs"] = len(runs)
    return combined


def _late_in_window(pacing: dict[str, Any] | None, lead_ms: float) -> int | None:
    """Frames the node released later than their slot (error above the lead) in the window."""
    if not pacing:
        return None
    first = round(lead_ms / float(pacing["bin_ms"]))
    return sum(int(n) for i, n in pacing["counts"].items() if int(i) >= first)


async def sweep(
    steps: list[int],
    *,
    window_s: float,
    settle_s: float,
    logs: Path,
    lead_ms: float = 60.0,
    target: Target | None = None,
    model_port: int = 0,
    profile_calls: int | None = None,
    repeats: int = 1,
    quota: QuotaPlan | None = None,
    node_env: dict[str, str] | None = None,
    provider: str = "openai",
) -> dict[str, Any]:
    """Runs the sweep; stops after the first failing step.

    Args:
        repeats: Runs per step (each against a fresh node); figures are their medians.
        profile_calls: After the sweep, profile the node at this many calls (0: at the
            largest step that passed); None skips profiling.
        quota: Run the node under this CPU quota (`bench.cpu_quota`); capacity is then
            reported per core as calls ÷ quota.
        node_env: Extra environment for the node (e.g. ``EVENT_LOOP=asyncio`` to compare).
        provider: The model every call is relayed to (``openai`` or ``gemini``): the double
            speaks its protocol and the calls dial its number.
    """
    target = target or Target()
    node_cpu, gen_cpu = core_plan()
    pin_to(gen_cpu, "generator")
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    aws = None if target.foreign else await asyncio.to_thread(BenchAws().start, gen_cpu)
    double = await DoubleProcess(cpu=gen_cpu, port=model_port, provider=provider).start()
    if target.foreign:
        print(f"  model double for the server under test: OPENAI_REALTIME_URL={double.url}")
    helpers = {"load_generator": proc_cpu_seconds, "model_double": double.cpu_seconds}
    if aws is not None and aws.process is not None:
        pid = aws.process.pid
        helpers["moto"] = lambda: proc_cpu_seconds(pid)
    results: list[dict[str, Any]] = []
    try:
        for n in steps:
            runs = []
            for _ in range(repeats):
                runs.append(
                    await run_step(
                        n,
                        target=target,
                        aws=aws,
                        double=double,
                        node_cpu=node_cpu,
                        window_s=window_s,
                        settle_s=settle_s,
                        lead_ms=lead_ms,
                        logs=logs,
                        helpers=helpers,
                        quota=quota,
                        node_env=node_env,
                        provider=provider,
                    )
                )
            step = combine_runs(runs)
            results.append(step)
            print_step(step)
            if not step["passed"] or step["generator_saturated"]:
                break
        passed = [s["calls"] for s in results if s["passed"] and not s["generator_saturated"]]
        if profile_calls is not None and not target.foreign:
            calls = profile_calls or (max(passed) if passed else steps[0])
            profiled = await run_step(
                calls,
                target=target,
                aws=aws,
                double=double,
                node_cpu=node_cpu,
                window_s=min(window_s, 10.0),
                settle_s=settle_s,
                lead_ms=lead_ms,
                logs=logs,
                helpers=helpers,
                profile=True,
                quota=quota,
                node_env=node_env,
                provider=provider,
            )
    finally:
        await double.stop()
        if aws is not None:
            await asyncio.to_thread(aws.stop)
    passing = [s["calls"] for s in results if s["passed"] and not s["generator_saturated"]]
    last = results[-1] if results else {}
    if profile_calls is None or target.foreign:
        profiled = None
    return {
        "profile": profiled,
        "provider": provider,
        "target": "python -m media_node" if not target.foreign else "foreign server",
        "pinning": {"media_node_cpu": node_cpu, "generator_cpu": gen_cpu},
        "budget": {"p99_frame_timing_error_ms": P99_BUDGET_MS, "frames_lost": 0},
        "timing_error_excludes_first_frames": SKIP,
        "runs_per_step": repeats,
        "steps": results,
        "cpu_quota": None
        if quota is None
        else {
            "share": quota.share,
            "period_ms": quota.period_ms,
            "kind": "real-time bandwidth" if harness.realtime else "CFS",
        },
        "max_calls": max(passing) if passing else 0,
        "max_calls_per_core": round(
            (max(passing) if passing else 0) / (quota.share if quota else 1)
        ),
        "limited_by": _limit(last, passing),
        "target_calls_per_core": 400,
    }


def _limit(last: dict[str, Any], passing: list[int]) -> str:
    if not last:
        return "no step ran"
    if last.get("passed") and last.get("generator_saturated"):
        share = last["generator_side_core_share"]
        return (
            f"the generator side, not the node: core 1 was {last['generator_core_share']:.0%} "
            f"busy at {last['calls']} calls (model double {share.get('model_double')}, load "
            f"generator {share.get('load_generator')}), so that step and larger ones measure "
            f"the generator; the node was at {last['node_cpu_core_share']} of its core"
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
    ("c_p99", "caller err p99"),
    ("late_frames", "late"),
    ("lost", "lost"),
    ("h_p50", "hop p50"),
    ("h_p99", "hop p99"),
    ("nh_p99", "node hop p99"),
    ("nb_p99", "block hop p99"),
    ("node_core_other_load", "other load"),
    ("g_lag", "gen lag p99"),
    ("generator_core_share", "gen core"),
    ("passed", "pass"),
]
QUOTA_COLUMNS = [
    ("calls_per_core", "calls/core"),
    ("quota_used", "quota used"),
    ("throttled_pct", "throttled %"),
    ("throttled_ms", "thr ms/s"),
]


def _hop_parts(
    generator: LoadGenerator,
    taps: list[dict[str, Any]] | None,
    call_ids: list[str],
    pacing: dict[str, Any] | None,
    window: tuple[float, float],
) -> dict[str, Any]:
    """The end-to-end hop split where it is spent, from the node's per-call timelines.

    All three processes read the same monotonic clock, and the k-th caller frame a leg sent is
    the k-th binary frame the node parsed on that call's socket (TCP keeps order, nothing is
    dropped), as the k-th append the node wrote is the k-th the double received on that call's
    session (legs and sessions are opened in the same order); the probe times every
    ``stride``-th of each, from index ``first``. So: ``hop_read_wait_ms`` = frame
    sent → parsed by the node (the kernel, and the node's loop busy with other work or stopped
    by its quota), ``node_hop_ms`` (the probe's histogram) = parsed → append written, and
    ``hop_double_wait_ms`` = append written → read by the double (its process and core).
    """
    timelines = (pacing or {}).get("timelines")
    if not timelines or not call_ids:
        return {}
    read_wait: list[float] = []
    double_wait: list[float] = []
    for index, (leg, call_id) in enumerate(zip(generator.legs, call_ids, strict=False)):
        timeline = timelines.get(call_id)
        if timeline is None or leg.error is not None:
            continue
        sends = leg.sends
        first, stride = timeline["frames_first"], timeline.get("frames_stride", 1)
        for j, parsed in enumerate(timeline["frames"]):
            k = first + j * stride
            if k < len(sends) and window[0] <= sends[k] < window[1]:
                read_wait.append((parsed - sends[k]) * 1000)
        arrived = taps[index]["appends"] if taps is not None and index < len(taps) else []
        first, stride = timeline["appends_first"], timeline.get("appends_stride", 1)
        for j, written in enumerate(timeline["appends"]):
            k = first + j * stride
            if k < len(arrived) and window[0] <= written < window[1]:
                double_wait.append((arrived[k] - written) * 1000)
    return {
        "hop_read_wait_ms": {**summarize(read_wait), "min": min(read_wait, default=None)},
        "hop_double_wait_ms": {**summarize(double_wait), "min": min(double_wait, default=None)},
    }


def _gc_pauses(pacing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Garbage-collector pauses in the window, per generation: count, total and longest (ms)."""
    if not pacing or "gc_pause_ms" not in pacing:
        return None
    return {
        generation: {
            "n": len(pauses),
            "total_ms": round(sum(pauses), 2),
            "max_ms": round(max(pauses), 2) if pauses else None,
        }
        for generation, pauses in pacing["gc_pause_ms"].items()
    }


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
        "c_p99": step["caller_frame_timing_error_ms"]["p99"],
        "h_p50": hop["p50"],
        "h_p99": hop["p99"],
        "nh_p99": (step.get("node_hop_ms") or {}).get("p99"),
        "nb_p99": (step.get("node_hop_block_start_ms") or {}).get("p99"),
        "g_lag": step["generator_clock_lag_ms"]["p99"],
        "lost": lost,
        **_throttling_cells(step.get("throttling")),
    }


def _throttling_cells(throttled: dict[str, Any] | None) -> dict[str, Any]:
    if not throttled or throttled.get("throttled_share") is None:
        return {}
    return {
        "throttled_pct": round(100 * throttled["throttled_share"], 1),
        "throttled_ms": throttled["throttled_ms_per_s"],
    }


def print_step(step: dict[str, Any]) -> None:
    """One progress line per finished step."""
    row = _row(step)
    quota = ""
    if row.get("cpu_quota"):
        quota = (
            f"quota used {row.get('quota_used')}, throttled {row.get('throttled_pct')} % of "
            "periods, "
        )
    print(
        f"  step {row['calls']:>4} calls: node core {row['node_cpu_core_share']}, "
        f"err p99 {row['t_p99']} ms, hop p99 {row['h_p99']} ms (in the node {row['nh_p99']}, "
        f"block's first frame {row['nb_p99']}; before the node read it "
        f"{(step.get('hop_read_wait_ms') or {}).get('p99')}, at the double "
        f"{(step.get('hop_double_wait_ms') or {}).get('p99')}), lost {row['lost']}, "
        f"late {row['late_frames']}, gen core {row['generator_core_share']}, {quota}"
        f"{'pass' if row['passed'] else 'FAIL'}",
        flush=True,
    )


def print_table(results: dict[str, Any]) -> None:
    """The sweep as a table, then the verdict."""
    pin = results["pinning"]
    print(
        f"Media-node capacity, {results.get('provider', 'openai')} model (node on core "
        f"{pin['media_node_cpu']}, generator + model double "
        f"+ moto on core {pin['generator_cpu']}, all ms)\n"
        "  err = outbound frame timing error (node pacer: release − due); caller err = the same"
        " seen at the caller (adds loopback and the generator's own loop)\n"
        "  hop = caller frame sent → audio appended at the model (the frame completing each"
        " append's block); node hop = that frame parsed by the node → append written;"
        " block hop = the same for the block's first frame, which also waits for the rest of"
        " its block; lost = frames lost in + out; gen = load generator side"
    )
    quota = results.get("cpu_quota")
    if quota:
        print(
            f"  node under a CPU quota of {quota['share']} core per {quota['period_ms']} ms "
            f"(cgroup v1, {quota.get('kind', 'CFS')}); calls/core = calls ÷ quota; "
            "throttled % = CFS periods whose budget ran out"
        )
    columns = COLUMNS + QUOTA_COLUMNS if quota else COLUMNS
    print(format_table(columns, [_row(step) for step in results["steps"]]))
    within = f"{results.get('max_calls', results['max_calls_per_core'])} calls" + (
        f" in {quota['share']} core = {results['max_calls_per_core']} per core" if quota else ""
    )
    print(
        f"  max calls within budget (p99 ≤ {P99_BUDGET_MS} ms, 0 lost, generator not "
        f"saturated): {within} (target {results['target_calls_per_core']} per core)"
    )
    print(f"  limited by: {results['limited_by']}")
    saturated = [s["calls"] for s in results["steps"] if s["generator_saturated"]]
    if saturated:
        print(f"  generator side saturated (> {GENERATOR_BUSY_LIMIT:.0%} of core 1) at {saturated}")
    else:
        steps = results["steps"]
        busiest = max((s["generator_core_share"] or 0 for s in steps), default=0)
        lag = max((s["generator_clock_lag_ms"]["p99"] or 0 for s in steps), default=0)
        print(
            f"  generator was not the bottleneck: core 1 at most {busiest:.0%} busy, "
            f"its clock lag p99 at most {lag} ms"
        )
