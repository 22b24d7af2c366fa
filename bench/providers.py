"""The model provider dimension of the benchmarks: OpenAI Realtime or Gemini Live.

The node under test picks its adapter from the dialled number's profile, so each provider has
its own number, seeded by the bench with the example profile (and ``model: {provider: gemini}``
for Gemini). The bench's model double speaks that provider's wire protocol, and a tap on it
timestamps the same three things for both, so the figures compare like with like:

- ``appends``: caller audio arriving at the model socket (``input_audio_buffer.append`` /
  ``realtimeInput.audio``): the far end of the inbound hop;
- ``first_deltas``: the first audio of each reply the double sends;
- ``speech_started``: the double telling the node the caller barged in
  (``input_audio_buffer.speech_started`` / ``serverContent.interrupted``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bench.harness import NUMBER, SessionTap
from bench.report import format_table

PROVIDERS = ("openai", "gemini")
NUMBERS = {"openai": NUMBER, "gemini": "+254700000200"}
"""The dialled number whose profile each provider answers (as ``make run`` seeds them)."""

_GEMINI_AUDIO = '{"realtimeInput":{"audio":'
_GEMINI_AUDIO_BYTES = _GEMINI_AUDIO.encode()


def parse_providers(text: str) -> list[str]:
    """``"openai,gemini"`` → ``["openai", "gemini"]``: known names, in order, once each.

    Raises:
        ValueError: An unknown provider, or none at all.
    """
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in PROVIDERS:
            raise ValueError(
                f"unknown provider {raw.strip()!r}; choose from {', '.join(PROVIDERS)}"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"no provider given; choose from {', '.join(PROVIDERS)}")
    return names


def profile_changes(provider: str) -> dict[str, Any]:
    """What the provider's number changes in the example profile."""
    return {"model": {"provider": "gemini"}} if provider == "gemini" else {}


class GeminiTap:
    """Pass as the Gemini Live double's ``on_connection``; ``sessions[i]`` taps connection i.

    Wraps the connection's message handlers (instance attributes, so only this connection is
    affected): the receive side stamps every audio message before the double decodes it, the
    send side stamps a reply's first audio and every ``interrupted``.
    """

    def __init__(self) -> None:
        self.sessions: list[SessionTap] = []

    def __call__(self, connection: Any) -> None:
        tap = SessionTap()
        self.sessions.append(tap)
        receive = connection._receive
        send = connection._send
        clock = time.monotonic

        def timed_receive(data: str | bytes) -> None:
            head = _GEMINI_AUDIO if isinstance(data, str) else _GEMINI_AUDIO_BYTES
            if data.startswith(head):  # type: ignore[arg-type]
                tap.appends.append(clock())
            receive(data)

        def timed_send(message: dict[str, Any]) -> None:
            content = message.get("serverContent")
            if content is not None:
                if "modelTurn" in content:
                    if not tap.in_audio:
                        tap.first_deltas.append(clock())
                        tap.in_audio = True
                elif content.get("interrupted"):
                    tap.speech_started.append(clock())
                    tap.in_audio = False
            elif message.get("sessionResumptionUpdate", {}).get("resumable") is False:
                # The double opens every model turn with this (no handle while generating).
                tap.in_audio = False
            send(message)

        connection._receive = timed_receive
        connection._send = timed_send


def first_with_others(found: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One part's results for several providers, in the shape a single run has always had.

    The first provider's figures stay at the top level (so readers of earlier result files
    find them where they were); the others go under ``other_providers``.
    """
    first, *others = found
    results = dict(found[first])
    if others:
        results["other_providers"] = {name: dict(found[name]) for name in others}
    return results


SIDE_BY_SIDE_COLUMNS = [
    ("calls", "calls"),
    ("provider", "model"),
    ("cpu_per_call_pct", "CPU%/call"),
    ("mem_per_call_kb", "KB/call"),
    ("err_p50", "err p50"),
    ("err_p99", "err p99"),
    ("hop_p50", "hop p50"),
    ("hop_p99", "hop p99"),
    ("load_side_core", "load side core"),
    ("model_double_core", "double core"),
    ("passed", "pass"),
]


def side_by_side(sweeps: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per provider and call count, for the counts every provider's sweep ran.

    Args:
        sweeps: Each provider's capacity sweep (``bench.capacity.sweep``), in display order.

    Returns:
        Rows ordered by call count, then provider (all steps when the sweeps share none).
    """
    counts = [{step["calls"] for step in sweep["steps"]} for sweep in sweeps.values()]
    common = set.intersection(*counts) if counts else set()
    rows = []
    for order, (provider, sweep) in enumerate(sweeps.items()):
        for step in sweep["steps"]:
            if common and step["calls"] not in common:
                continue
            timing, hop = step["frame_timing_error_ms"], step["hop_latency_ms"]
            shares = step.get("generator_side_core_share") or {}
            rows.append(
                {
                    "order": order,
                    "calls": step["calls"],
                    "provider": provider,
                    "cpu_per_call_pct": step["cpu_per_call_pct"],
                    "mem_per_call_kb": step["mem_per_call_kb"],
                    "err_p50": timing["p50"],
                    "err_p99": timing["p99"],
                    "hop_p50": hop["p50"],
                    "hop_p99": hop["p99"],
                    "load_side_core": step["generator_core_share"],
                    "model_double_core": shares.get("model_double"),
                    "passed": step["passed"] and not step["generator_saturated"],
                }
            )
    rows.sort(key=lambda row: (row["calls"], row["order"]))
    for row in rows:
        del row["order"]
    return rows


def print_side_by_side(rows: list[dict[str, Any]], sweeps: Mapping[str, Any]) -> None:
    """The providers' figures at the same call counts, then each provider's capacity."""
    print(
        "Both models side by side (the same node, load and model double behaviour; ms)\n"
        "  CPU%/call and KB/call: the node; err = outbound frame timing error (node pacer);\n"
        "  hop = caller frame sent → its audio at the model socket; load side core = load\n"
        "  generator + model double + moto (of their core), double core = the model double alone"
    )
    print(format_table(SIDE_BY_SIDE_COLUMNS, rows))
    for provider, sweep in sweeps.items():
        limit = sweep["limited_by"]
        print(f"  {provider}: max {sweep['max_calls']} calls within budget; limited by: {limit}")
