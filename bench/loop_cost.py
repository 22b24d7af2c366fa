"""What the event loop itself costs per call: timers, socket reads and one write per frame.

The node's per-call I/O is a 640-byte caller frame read every 20 ms and a 640-byte frame
written every 20 ms, paced by a loop timer per call. This benchmark runs exactly that I/O, and
nothing else, for N calls over real TCP sockets on loopback, and reports the loop process's CPU
time per call (``time.process_time``) and how late its callbacks ran:

- ``asyncio`` or ``uvloop`` as the event loop;
- ``per-call``: one timer per call, each re-armed for that call's next frame (the node today);
- ``tick``: one timer for the whole process every 20 ms that writes every call's due frame in
  one pass;
- ``tick-40ms``: one timer every 40 ms writing two frames (1280 bytes) per call in one write.

A peer process (on the other core when there are two) connects the N sockets, writes the
caller frames and drains what it is sent. The difference between rows is the cost of the
choice alone; what the node spends on top (websockets' parsing, the call's logic, soxr) is the
same in every row. ``python -m bench.loop_cost`` prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.stats import summarize

ROOT = Path(__file__).resolve().parent.parent
FRAME = bytes(640)
MODES = ("per-call", "tick", "tick-40ms")
LOOPS = ("asyncio", "uvloop")


class _Sink(asyncio.Protocol):
    """One call's socket: counts what arrives (the caller's frames)."""

    received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        _Sink.received += len(data)


async def _measure(calls: int, seconds: float, mode: str, cpu: int | None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    sinks: list[_Sink] = []
    stopped = False

    def accept() -> _Sink:
        sink = _Sink()
        sinks.append(sink)
        return sink

    server = await loop.create_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peer = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bench.loop_cost", "--peer", str(port), "--calls", str(calls)],
        cwd=ROOT,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    try:
        while len(sinks) < calls:  # noqa: ASYNC110  (connections have no event to wait on)
            await asyncio.sleep(0.01)
        lateness: list[float] = []
        writes = 0
        period = 0.04 if mode == "tick-40ms" else 0.02
        payload = FRAME * 2 if mode == "tick-40ms" else FRAME
        start = loop.time() + 0.1

        def fire_call(sink: _Sink, due: float) -> None:
            nonlocal writes
            if stopped:
                return
            lateness.append(loop.time() - due)
            sink.transport.write(payload)  # type: ignore[attr-defined]
            writes += 1
            loop.call_at(due + period, fire_call, sink, due + period)

        def fire_tick(due: float) -> None:
            nonlocal writes
            if stopped:
                return
            lateness.append(loop.time() - due)
            for sink in sinks:
                sink.transport.write(payload)  # type: ignore[attr-defined]
            writes += len(sinks)
            lateness.append(loop.time() - due)  # the pass's last write
            loop.call_at(due + period, fire_tick, due + period)

        if mode == "per-call":
            for index, sink in enumerate(sinks):
                due = start + period * index / calls  # calls start at different moments
                loop.call_at(due, fire_call, sink, due)
        else:
            loop.call_at(start, fire_tick, start)
        await asyncio.sleep(1.0)  # warm-up
        lateness.clear()
        writes = 0
        cpu0, wall0 = time.process_time(), loop.time()
        await asyncio.sleep(seconds)
        cpu_s, wall_s = time.process_time() - cpu0, loop.time() - wall0
        return {
            "calls": calls,
            "mode": mode,
            "core_share": round(cpu_s / wall_s, 4),
            "cpu_us_per_call_second": round(cpu_s / wall_s / calls * 1e6, 1),
            "writes_per_s": round(writes / wall_s),
            "callback_lateness_ms": summarize([x * 1000 for x in lateness]),
        }
    finally:
        stopped = True
        peer.terminate()
        await peer.wait()
        server.close()
        for sink in sinks:
            sink.transport.close()  # type: ignore[attr-defined]


def _peer(port: int, calls: int) -> None:
    """The far ends: connect, write a caller frame per call every 20 ms, drain the rest."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(calls)]
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    due = time.monotonic()
    while True:
        for key, _ in selector.select(max(0.0, due - time.monotonic())):
            with contextlib.suppress(BlockingIOError, ConnectionError):
                key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
        if time.monotonic() >= due:
            for sock in sockets:
                with contextlib.suppress(BlockingIOError, ConnectionError):
                    sock.send(FRAME)
            due += 0.02


def measure_one(loop_name: str, mode: str, calls: int, seconds: float) -> dict[str, Any]:
    """One configuration in a fresh process (pinned to the first allowed core)."""
    cores = sorted(os.sched_getaffinity(0))
    result = subprocess.run(
        [sys.executable, "-m", "bench.loop_cost", "--loop", loop_name, "--mode", mode]
        + ["--calls", str(calls), "--seconds", str(seconds)]
        + (["--peer-cpu", str(cores[1])] if len(cores) > 1 else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cores[0]})) if len(cores) > 1 else None,
    )
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout)


def run(quick: bool = False) -> dict[str, Any]:
    """Every loop × mode at one load."""
    calls, seconds = (100, 3.0) if quick else (200, 5.0)
    rows = {}
    for loop_name in LOOPS:
        for mode in MODES:
            rows[f"{loop_name}/{mode}"] = measure_one(loop_name, mode, calls, seconds)
            print(f"  {loop_name}/{mode}: {rows[f'{loop_name}/{mode}']}", flush=True)
    return {"calls": calls, "seconds": seconds, "rows": rows}


def print_table(results: dict[str, Any]) -> None:
    """The rows, with each one's CPU against asyncio/per-call (the node before uvloop)."""
    print(
        f"Event-loop cost of a call's I/O alone ({results['calls']} calls, a 640-byte read and "
        f"write per call every 20 ms, {results['seconds']} s; µs of CPU per call-second)"
    )
    base = results["rows"].get("asyncio/per-call", {}).get("cpu_us_per_call_second")
    for name, row in results["rows"].items():
        if "error" in row:
            print(f"  {name:20} error: {row['error']}")
            continue
        cost = row["cpu_us_per_call_second"]
        change = f"{100 * (cost / base - 1):+.0f} %" if base else ""
        late = row["callback_lateness_ms"]
        print(
            f"  {name:20} {cost:8.1f} µs/call-s ({cost / 1e4:.3f} % of a core per call) "
            f"{change:>7}  callback lateness p99 {late['p99']} ms"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.loop_cost``: the table; ``--loop``/``--mode`` measure one row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--loop", choices=LOOPS)
    parser.add_argument("--mode", choices=MODES, default="per-call")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--peer", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--peer-cpu", type=int, help="core for the peer process")
    args = parser.parse_args(argv)
    if args.peer:
        _peer(args.peer, args.calls)
        return 0
    if args.loop:
        factory = None
        if args.loop == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(_measure(args.calls, args.seconds, args.mode, args.peer_cpu))
        print(json.dumps(result))
        return 0
    print_table(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
