"""The OpenAI Realtime double in its own process, with timestamps for the benchmarks.

``python -m bench.model_double [--port P] [--chunk-ms 120] [--speed 4] [--greeting-s 2]
[--reply-s 3]`` prints ``ready <url>``, then ``session <count>`` each time a session opens.
On stdin, ``dump <path>`` writes every session's timestamps (see ``harness.SessionTap``) as
JSON to ``<path>`` and prints ``dumped``; ``reset`` forgets the sessions so far; end of input
stops the double. Running it apart from the load generator keeps the double's work (JSON,
base64, VAD per append) from delaying the generator's own clock and receive timestamps, and
lets a server under test be pointed at it (``OPENAI_REALTIME_URL``) by port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bench  # noqa: F401  (puts functions/ on sys.path)
from bench.harness import BenchResponder, ModelTap


async def serve(args: argparse.Namespace) -> None:
    """Runs the double until stdin closes."""
    from doubles.openai_realtime import Pacing, RealtimeDouble

    tap = ModelTap()
    loop = asyncio.get_running_loop()

    def on_session(session: Any) -> None:
        tap(session)
        sys.stdout.write(f"session {len(tap.sessions)}\n")
        sys.stdout.flush()

    pacing = Pacing(
        chunk_ms=args.chunk_ms, speed=args.speed, first_audio_delay_s=args.first_audio_delay
    )
    double = RealtimeDouble(
        BenchResponder(args.greeting_s, args.reply_s),
        port=args.port,
        pacing=pacing,
        on_session=on_session,
    )
    await double.start()
    print(f"ready {double.url}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            command, _, argument = line.partition(" ")
            if command == "dump":
                data = {"sessions": [asdict(s) for s in tap.sessions]}
                await asyncio.to_thread(Path(argument).write_text, json.dumps(data))
                print("dumped", flush=True)
            elif command == "reset":
                tap.sessions.clear()
                print("reset", flush=True)
    finally:
        await double.close()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunk-ms", type=int, default=120)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--first-audio-delay", type=float, default=0.0)
    parser.add_argument("--greeting-s", type=float, default=2.0)
    parser.add_argument("--reply-s", type=float, default=3.0)
    # uvloop when installed: the double's event loop is a third of its CPU at 100 calls, and
    # the load side must never be what limits a capacity step.
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
