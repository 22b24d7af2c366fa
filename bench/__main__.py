"""``python -m bench`` (``make bench``): every benchmark, a table on the terminal, a JSON file.

Parts, in order: the serverless half (handler import and warm invocation times), audio quality
of the resampling path, the per-frame cost of the node's audio path and of its event loop
(``frames``: load-independent figures to judge levers by), call-experience latencies, and the
media-node capacity sweep with a profile of the node at the largest passing step
(``--cpu-quota`` runs the node under a Fargate-like CFS quota instead of a whole core). The
capacity part runs for each model provider of ``--provider`` (default both): the full sweep for
the first, a few steps for the others (``--steps`` sets them for all), and a table of the
providers side by side at the call counts they share; the latency part runs for each too.
``--quick`` runs a smaller version of each (about two minutes); ``--only`` picks parts.
Results go to ``bench/results/<UTC time>.json`` and ``bench/results/latest.json``.

Against another implementation of the media server (anything speaking Sautikit's side of the
media WebSocket): ``--stream-url`` (``{n}`` is replaced by the leg number, for servers that
need a distinct URL per call) or ``--urls-file`` (one pre-minted URL per line, e.g. with
tokens), ``--metadata`` for extra metadata-frame fields, ``--server-pid`` for its CPU and
memory, ``--model-port`` to pin the Realtime double's port so the server can be pointed at it
(its hop latency needs that). Only the capacity part runs in that mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bench  # noqa: F401  (puts functions/ on sys.path)
from bench import harness, report
from bench.providers import PROVIDERS, parse_providers

if TYPE_CHECKING:
    from bench.capacity import QuotaPlan

PARTS = ("serverless", "audio", "frames", "latency", "capacity")
FULL_STEPS = (50, 100, 125, 150, 175, 200, 250, 300)
QUICK_STEPS = (20, 50)
QUOTA_STEPS = (100, 200, 300, 400, 500)
"""Calls per core of the sweep under ``--cpu-quota`` (scaled by the quota)."""
QUICK_QUOTA_STEPS = (100, 200)
SIDE_BY_SIDE_STEPS = (50, 100)
"""Capacity steps of the providers after the first, unless ``--steps`` is given: enough to
compare CPU per call and hop latency at the same load without doubling the run time."""
QUICK_SIDE_BY_SIDE_STEPS = (20,)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (about two minutes)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}"
    )
    parser.add_argument("--steps", help="capacity sweep, e.g. 50,100,200 (calls per step)")
    parser.add_argument(
        "--provider",
        default=",".join(PROVIDERS),
        help="capacity and latency: the models the calls are relayed to, in order, e.g. "
        "openai,gemini (the first gets the full capacity sweep and the profile)",
    )
    parser.add_argument("--window", type=float, help="seconds measured per capacity step")
    parser.add_argument("--settle", type=float, help="seconds after the ramp before measuring")
    parser.add_argument("--repeats", type=int, help="runs per capacity step (default 2, quick 1)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="frames: also count instructions per frame with valgrind's callgrind (slow: "
        "about a minute per variant; apt-get install valgrind); serverless: also count each "
        "cold start's instructions with cachegrind (about ten minutes)",
    )
    parser.add_argument(
        "--lambda-python",
        help="serverless: the interpreter to time handler imports with, e.g. a Python 3.12 "
        "venv holding only boto3 and Powertools (as Lambda has)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the node profile")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run the node and the generator side at SCHED_FIFO priority (needs root; for "
        "machines shared with other work)",
    )
    parser.add_argument(
        "--cpu-quota",
        type=float,
        help="run the node under a CFS CPU quota of this share of a core (cgroup v1, root; "
        "e.g. 0.25 as a 256-unit Fargate task); default steps then scale with the quota",
    )
    parser.add_argument(
        "--cpu-period-ms", type=float, default=10.0, help="CFS period for --cpu-quota (ms)"
    )
    parser.add_argument(
        "--node-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="capacity: extra environment for the node, e.g. EVENT_LOOP=asyncio (repeatable)",
    )
    parser.add_argument("--stream-url", help="a foreign media server's stream URL ({n}: leg)")
    parser.add_argument("--urls-file", type=Path, help="one stream URL per leg, one per line")
    parser.add_argument("--metadata", default="{}", help="JSON merged into each metadata frame")
    parser.add_argument("--server-pid", type=int, help="the foreign server's pid (CPU, memory)")
    parser.add_argument("--model-port", type=int, default=0, help="port of the Realtime double")
    parser.add_argument(
        "--out", type=Path, default=report.RESULTS_DIR, help="where results are written"
    )
    args = parser.parse_args(argv)
    args.parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    try:
        args.providers = parse_providers(args.provider)
    except ValueError as exc:
        parser.error(f"--provider: {exc}")
    if args.stream_url or args.urls_file:
        args.parts = ["capacity"]
        args.providers = ["openai"]  # the foreign server is pointed at the Realtime double
    return args


async def run_capacity(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """The capacity sweep for each provider, with the options given.

    Returns:
        The first provider's sweep (as ``bench.capacity.sweep`` returns it), with the other
        providers' sweeps under ``other_providers`` and the comparison rows under
        ``side_by_side`` when there is more than one.
    """
    from bench import capacity, cpu_quota, providers

    quota = None
    if args.cpu_quota:
        reason = cpu_quota.available()
        if reason:
            raise SystemExit(f"--cpu-quota: {reason}")
        quota = capacity.QuotaPlan(args.cpu_quota, args.cpu_period_ms)
    target = capacity.Target(
        stream_url=args.stream_url,
        urls=(
            [u.strip() for u in args.urls_file.read_text().splitlines() if u.strip()]
            if args.urls_file
            else []
        ),
        metadata=json.loads(args.metadata),
        server_pid=args.server_pid,
    )
    sweeps: dict[str, dict[str, Any]] = {}
    for index, provider in enumerate(args.providers):
        print(f"  -- {provider} --", flush=True)
        sweeps[provider] = await capacity.sweep(
            capacity_steps(args, quota, first=index == 0),
            window_s=args.window or (8.0 if args.quick else 20.0),
            settle_s=args.settle or (2.0 if args.quick else 3.0),
            logs=logs,
            target=target,
            model_port=args.model_port,
            profile_calls=None if args.no_profile or index else 0,
            repeats=args.repeats or (1 if args.quick else 2),
            quota=quota,
            node_env=dict(item.split("=", 1) for item in args.node_env),
            provider=provider,
        )
    results = providers.first_with_others(sweeps)
    if len(sweeps) > 1:
        results["side_by_side"] = providers.side_by_side(sweeps)
    return results


def capacity_steps(args: argparse.Namespace, quota: QuotaPlan | None, *, first: bool) -> list[int]:
    """The call counts of one provider's sweep: ``--steps``, else the full or short default."""
    if args.steps:
        return [int(n) for n in args.steps.split(",")]
    if quota:
        per_core = QUICK_QUOTA_STEPS if args.quick else QUOTA_STEPS
        return [max(1, round(n * quota.share)) for n in per_core]
    if not first:
        return list(QUICK_SIDE_BY_SIDE_STEPS if args.quick else SIDE_BY_SIDE_STEPS)
    return list(QUICK_STEPS if args.quick else FULL_STEPS)


def main(argv: list[str] | None = None) -> int:
    """Runs the chosen parts, prints their tables, writes the JSON; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    harness.realtime = args.realtime
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = Path("/tmp") / f"mapokezi-bench-{stamp}"
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": report.command_line(),
        "quick": args.quick,
        "priority": "SCHED_FIFO" if args.realtime else "nice -10 when permitted",
        "machine": report.machine_info(),
        "logs": str(logs),
    }
    print(report.header(results), flush=True)
    for part in args.parts:
        watch = report.Stopwatch()
        print(f"\n== {part} ==", flush=True)
        results[part] = run_part(part, args, logs)
        results.setdefault("runtime_s", {})[part] = watch.seconds()
        print_part(part, results[part])
    results["total_runtime_s"] = round(time.monotonic() - started, 1)
    path = report.write_results(results, args.out, stamp)
    print("\n" + report.header(results))
    for part in args.parts:
        print()
        print_part(part, results[part])
    print(f"\ntotal {results['total_runtime_s']} s; results: {path} (and latest.json)")
    return 0


def run_part(part: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """Runs one part and returns its figures."""
    if part == "serverless":
        from bench import serverless

        return serverless.run(
            quick=args.quick, python=args.lambda_python, instructions=args.instructions
        )
    if part == "audio":
        from bench import audio_quality

        return audio_quality.run()
    if part == "frames":
        from bench import frame_cost, loop_cost

        return {
            "frame_loop": frame_cost.run(instructions=args.instructions, quick=args.quick),
            "event_loop": loop_cost.run(quick=args.quick),
        }
    if part == "latency":
        return run_latency(args, logs)
    return asyncio.run(run_capacity(args, logs))


def run_latency(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """The latency rounds for each provider: the first's figures, the others' under
    ``other_providers``."""
    from bench import latency, providers

    rounds, calls, seconds = (1, 5, 12.0) if args.quick else (3, 10, 15.0)
    found = {
        provider: asyncio.run(
            latency.measure(
                rounds=rounds, calls=calls, seconds=seconds, logs=logs, provider=provider
            )
        )
        for provider in args.providers
    }
    return providers.first_with_others(found)


def print_part(part: str, figures: dict[str, Any]) -> None:
    """Prints one part's table."""
    if part == "serverless":
        from bench import serverless

        serverless.print_table(figures)
    elif part == "audio":
        from bench import audio_quality

        audio_quality.print_table(figures)
    elif part == "frames":
        from bench import frame_cost, loop_cost

        frame_cost.print_table(figures["frame_loop"])
        loop_cost.print_table(figures["event_loop"])
    elif part == "latency":
        from bench import latency

        latency.print_table(figures)
        for other in (figures.get("other_providers") or {}).values():
            print()
            latency.print_table(other)
    else:
        from bench import capacity, providers
        from bench import profile as profiling

        capacity.print_table(figures)
        if figures.get("profile") and figures["profile"].get("samples"):
            profiling.print_table(figures["profile"])
        others = figures.get("other_providers") or {}
        for sweep in others.values():
            print()
            capacity.print_table(sweep)
        if others:
            print()
            sweeps = {figures.get("provider", "openai"): figures, **others}
            providers.print_side_by_side(figures["side_by_side"], sweeps)


if __name__ == "__main__":
    sys.exit(main())
