"""Call-experience latencies the bridge adds, at light load (each p50/p99 over many samples).

Calls run in rounds of a few concurrent legs against one node (pinned like the capacity run),
with the Realtime double answering at once (no first-audio delay; 120 ms deltas at 4× real
time). Each caller stays quiet while the greeting plays, then repeats: speak 1 s, pause 1.3 s.
The model answers each turn with 3 s of speech, so the next turn interrupts it: every cycle
gives one reply start and one barge-in. Measured from timestamps on both sides of the node
(one monotonic clock, loopback sockets, so each figure includes two loopback hops):

- connect → greeting's first frame: media socket open → first audio frame at the caller
  (covers the node opening its model session, ``session.update``, ``response.create``);
  also the node's own ``time_to_first_audio_ms`` from the call records;
- model delta → first frame: the double sends a response's first audio delta → that reply's
  first frame reaches the caller;
- barge-in: the double sends ``speech_started`` → killAudio reaches the caller, and → the last
  stale frame (released after the speech start) reaches it; also the node's own
  ``barge_in_stop_ms``.

With the Gemini Live double (``provider="gemini"``) the same taps read its messages: the
greeting is asked for with ``clientContent``, a reply's first ``serverContent.modelTurn`` audio
is its first delta, and ``interrupted`` is the barge-in signal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench import analysis
from bench.harness import BenchAws, DoubleProcess, NodeProcess, core_plan, pin_to
from bench.loadgen import CallerAudio, LoadGenerator
from bench.providers import NUMBERS
from bench.report import format_table
from bench.stats import summarize


async def _round(
    aws: BenchAws,
    node: NodeProcess,
    double: DoubleProcess,
    calls: int,
    seconds: float,
    logs: Path,
    provider: str = "openai",
) -> dict[str, list[float]]:
    await double.reset()
    audio = CallerAudio(speech_s=1.0, pause_s=1.3, lead_in_s=2.6)
    generator = LoadGenerator(audio)
    call_ids = []
    legs = []
    for index in range(calls):
        call_id, spec = await asyncio.to_thread(
            aws.new_call, node.media_url, number=NUMBERS[provider]
        )
        call_ids.append(call_id)
        leg = await generator.open_leg(spec, start_frame=0)
        legs.append(leg)
        if leg.error is None:
            await double.wait_sessions(index + 1, limit_s=5.0)
    await asyncio.sleep(seconds)
    await generator.stop()
    taps = await double.taps(logs / f"latency-taps-{provider}.json")
    found: dict[str, list[float]] = {
        "greeting": [],
        "delta_to_frame": [],
        "barge_in_to_kill": [],
        "barge_in_to_last_stale": [],
        "node_time_to_first_audio": [],
        "node_barge_in_stop": [],
    }
    for index, leg in enumerate(legs):
        if leg.error is not None or not leg.arrivals or leg.connected_at is None:
            continue
        found["greeting"].append((leg.arrivals[0] - leg.connected_at) * 1000)
        if index < len(taps):
            tap = taps[index]
            found["delta_to_frame"] += analysis.delta_to_frame(tap["first_deltas"], leg.arrivals)
            to_kill, to_stale = analysis.barge_in(tap["speech_started"], leg.kills, leg.arrivals)
            found["barge_in_to_kill"] += to_kill
            found["barge_in_to_last_stale"] += to_stale
    for call_id in call_ids:
        metrics = await asyncio.to_thread(_wait_metrics, aws, call_id)
        if metrics:
            if metrics.get("time_to_first_audio_ms") is not None:
                found["node_time_to_first_audio"].append(float(metrics["time_to_first_audio_ms"]))
            found["node_barge_in_stop"] += [float(v) for v in metrics.get("barge_in_stop_ms", [])]
    return found


def _wait_metrics(aws: BenchAws, call_id: str) -> dict[str, Any] | None:
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        metrics = aws.metrics_of(call_id)
        if metrics:
            return metrics
        time.sleep(0.2)
    return None


async def measure(
    *, rounds: int = 3, calls: int = 10, seconds: float = 15.0, logs: Path, provider: str = "openai"
) -> dict[str, Any]:
    """Runs the rounds with calls relayed to `provider` and summarises every latency (ms)."""
    node_cpu, gen_cpu = core_plan()
    pin_to(gen_cpu, "generator")
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    aws = await asyncio.to_thread(BenchAws().start, gen_cpu)
    double = await DoubleProcess(cpu=gen_cpu, provider=provider, first_audio_delay=0.0).start()
    node = NodeProcess(aws, double.url, cpu=node_cpu, max_calls=calls + 10, provider=provider)
    await asyncio.to_thread(node.start, logs / f"media-node-latency-{provider}.log")
    samples: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            found = await _round(aws, node, double, calls, seconds, logs, provider)
            for name, values in found.items():
                samples.setdefault(name, []).extend(values)
    finally:
        await node.stop()
        await double.stop()
        await asyncio.to_thread(aws.stop)
    return {
        "provider": provider,
        "setup": {"rounds": rounds, "concurrent_calls": calls, "seconds_per_call": seconds},
        "connect_to_greeting_first_frame_ms": summarize(samples["greeting"]),
        "node_time_to_first_audio_ms": summarize(samples["node_time_to_first_audio"]),
        "model_delta_to_first_frame_ms": summarize(samples["delta_to_frame"]),
        "speech_started_to_kill_audio_ms": summarize(samples["barge_in_to_kill"]),
        "speech_started_to_last_stale_frame_ms": summarize(samples["barge_in_to_last_stale"]),
        "node_barge_in_stop_ms": summarize(samples["node_barge_in_stop"]),
    }


ROWS = [
    ("connect_to_greeting_first_frame_ms", "connect → greeting's first frame (at the caller)"),
    ("node_time_to_first_audio_ms", "  same, the node's own time_to_first_audio"),
    ("model_delta_to_first_frame_ms", "model's first delta → its first frame (at the caller)"),
    ("speech_started_to_kill_audio_ms", "speech_started → killAudio (at the caller)"),
    ("speech_started_to_last_stale_frame_ms", "speech_started → last stale frame"),
    ("node_barge_in_stop_ms", "  node's own speech_started → killAudio sent"),
]


def print_table(results: dict[str, Any]) -> None:
    """The latencies as a table."""
    setup = results["setup"]
    print(
        f"Call-experience latency added by the bridge, {results.get('provider', 'openai')} "
        f"model, ms ({setup['rounds']} rounds of {setup['concurrent_calls']} calls, model "
        "double answering at once)"
    )
    rows = [{"what": label, **results[key]} for key, label in ROWS]
    print(
        format_table(
            [("what", "latency"), ("n", "n"), ("p50", "p50"), ("p99", "p99"), ("max", "max")],
            rows,
        )
    )
