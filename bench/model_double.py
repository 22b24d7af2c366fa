"""The bench's model double in its own process, with timestamps for the benchmarks.

``python -m bench.model_double [--provider openai|gemini] [--port P] [--chunk-ms 120]
[--speed 4] [--greeting-s 2] [--reply-s 3]`` runs the OpenAI Realtime double or the Gemini Live
double with the same responder and pacing, prints ``ready <url>``, then ``session <count>`` each
time a session (Gemini: a connection) opens. On stdin, ``dump <path>`` writes every session's
timestamps (see ``harness.SessionTap``) as JSON to ``<path>`` and prints ``dumped``; ``reset``
forgets the sessions so far; end of input stops the double. Running it apart from the load
generator keeps the double's work (JSON, base64, VAD per append) from delaying the generator's
own clock and receive timestamps, and lets a server under test be pointed at it
(``OPENAI_REALTIME_URL`` or ``GEMINI_LIVE_URL``) by port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench  # noqa: F401  (puts functions/ on sys.path)
from bench.harness import BenchResponder, ModelTap, SessionTap
from bench.providers import PROVIDERS, GeminiTap


@dataclass
class _Served:
    """The running double, its tap's sessions and how to forget what it has seen."""

    double: Any
    sessions: list[SessionTap]
    forget: Callable[[], None]


def _openai(args: argparse.Namespace, announce: Callable[[int], None]) -> _Served:
    from doubles.openai_realtime import RealtimeDouble

    tap = ModelTap()

    def on_session(session: Any) -> None:
        tap(session)
        announce(len(tap.sessions))

    double = RealtimeDouble(
        BenchResponder(args.greeting_s, args.reply_s),
        port=args.port,
        pacing=_pacing(args),
        on_session=on_session,
    )
    return _Served(double, tap.sessions, tap.sessions.clear)


def _gemini(args: argparse.Namespace, announce: Callable[[int], None]) -> _Served:
    from doubles.gemini_live import GeminiLiveDouble

    tap = GeminiTap()

    def on_connection(connection: Any) -> None:
        tap(connection)
        announce(len(tap.sessions))

    double = GeminiLiveDouble(
        BenchResponder(args.greeting_s, args.reply_s),
        port=args.port,
        pacing=_pacing(args),
        on_connection=on_connection,
    )

    def forget() -> None:
        tap.sessions.clear()
        double.forget()

    return _Served(double, tap.sessions, forget)


def _pacing(args: argparse.Namespace) -> Any:
    from doubles.openai_realtime import Pacing

    return Pacing(
        chunk_ms=args.chunk_ms, speed=args.speed, first_audio_delay_s=args.first_audio_delay
    )


async def serve(args: argparse.Namespace) -> None:
    """Runs the double until stdin closes."""
    loop = asyncio.get_running_loop()

    def announce(count: int) -> None:
        sys.stdout.write(f"session {count}\n")
        sys.stdout.flush()

    served = (_gemini if args.provider == "gemini" else _openai)(args, announce)
    double = served.double
    await double.start()
    print(f"ready {double.url}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            command, _, argument = line.partition(" ")
            if command == "dump":
                data = {"sessions": [asdict(s) for s in served.sessions]}
                await asyncio.to_thread(Path(argument).write_text, json.dumps(data))
                print("dumped", flush=True)
            elif command == "reset":
                served.forget()
                print("reset", flush=True)
    finally:
        await double.close()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=PROVIDERS, default="openai")
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
