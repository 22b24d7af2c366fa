"""The benchmarks' provider dimension: choosing providers, their steps, the side-by-side table,
and the Gemini variants of the per-frame loop (the real frame path, no sockets)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from websockets.protocol import Protocol, Side, State

from bench import frame_cost
from bench.__main__ import capacity_steps, parse_args
from bench.capacity import QuotaPlan
from bench.providers import (
    NUMBERS,
    first_with_others,
    parse_providers,
    print_side_by_side,
    profile_changes,
    side_by_side,
)
from doubles.gemini_live import wire as double_wire
from mapokezi.profiles import load_profile_file, parse_profile
from media_node.models import gemini_protocol


def test_providers_are_parsed_in_order_once_each() -> None:
    assert parse_providers("openai,gemini") == ["openai", "gemini"]
    assert parse_providers(" Gemini , openai,gemini,") == ["gemini", "openai"]
    with pytest.raises(ValueError, match="unknown provider 'claude'"):
        parse_providers("openai,claude")
    with pytest.raises(ValueError, match="no provider"):
        parse_providers(" , ")


def test_command_line_defaults_to_both_and_refuses_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).providers == ["openai", "gemini"]
    assert parse_args(["--provider", "gemini"]).providers == ["gemini"]
    # A foreign server is pointed at the Realtime double: only OpenAI then.
    assert parse_args(["--stream-url", "ws://x/{n}"]).providers == ["openai"]
    with pytest.raises(SystemExit):
        parse_args(["--provider", "openai,other"])
    assert "--provider: unknown provider 'other'" in capsys.readouterr().err


def test_first_provider_sweeps_fully_the_others_at_a_few_steps() -> None:
    args = parse_args([])
    assert capacity_steps(args, None, first=True) == [50, 100, 125, 150, 175, 200, 250, 300]
    assert capacity_steps(args, None, first=False) == [50, 100]
    quick = parse_args(["--quick"])
    assert capacity_steps(quick, None, first=False) == [20]
    chosen = parse_args(["--steps", "10,30"])
    assert capacity_steps(chosen, None, first=False) == [10, 30]
    # Under a quota both sweep calls per core scaled by the share.
    assert capacity_steps(args, QuotaPlan(0.25), first=False) == [25, 50, 75, 100, 125]


def test_each_provider_has_its_own_number_and_profile() -> None:
    example = load_profile_file("profiles/example.yaml")
    gemini = parse_profile({**example, **profile_changes("gemini")}, number=NUMBERS["gemini"])
    openai = parse_profile({**example, **profile_changes("openai")}, number=NUMBERS["openai"])
    assert gemini.model.provider == "gemini" and openai.model.provider == "openai"
    assert NUMBERS["gemini"] != NUMBERS["openai"]


def step(calls: int, cpu: float, hop_p99: float, **changes: Any) -> dict[str, Any]:
    return {
        "calls": calls,
        "cpu_per_call_pct": cpu,
        "mem_per_call_kb": 250.0,
        "frame_timing_error_ms": {"p50": 0.1, "p99": 1.5},
        "hop_latency_ms": {"p50": 0.6, "p99": hop_p99},
        "generator_core_share": 0.4,
        "generator_side_core_share": {"model_double": 0.2, "load_generator": 0.15},
        "passed": True,
        "generator_saturated": False,
        **changes,
    }


def sweeps() -> dict[str, Any]:
    return {
        "openai": {
            "steps": [step(50, 0.8, 2.0), step(100, 0.7, 3.0), step(125, 0.7, 9.0)],
            "max_calls": 125,
            "limited_by": "sweep ended before any step failed",
        },
        "gemini": {
            "steps": [step(50, 0.6, 1.0), step(100, 0.5, 2.5, generator_saturated=True)],
            "max_calls": 50,
            "limited_by": "the generator side",
        },
    }


def test_side_by_side_pairs_the_call_counts_both_ran() -> None:
    rows = side_by_side(sweeps())
    assert [(r["calls"], r["provider"]) for r in rows] == [
        (50, "openai"),
        (50, "gemini"),
        (100, "openai"),
        (100, "gemini"),
    ]
    first = rows[1]
    assert (first["cpu_per_call_pct"], first["hop_p50"], first["hop_p99"]) == (0.6, 0.6, 1.0)
    assert (first["err_p50"], first["err_p99"]) == (0.1, 1.5)
    assert (first["load_side_core"], first["model_double_core"]) == (0.4, 0.2)
    # A step whose load side was saturated measured the load side: not a pass.
    assert [r["passed"] for r in rows] == [True, True, True, False]


def test_side_by_side_shows_everything_when_no_count_is_shared() -> None:
    data = sweeps()
    data["gemini"]["steps"] = [step(20, 0.9, 1.0)]
    rows = side_by_side(data)
    assert [(r["calls"], r["provider"]) for r in rows] == [
        (20, "gemini"),
        (50, "openai"),
        (100, "openai"),
        (125, "openai"),
    ]


def test_side_by_side_table_prints_both_models(capsys: pytest.CaptureFixture[str]) -> None:
    data = sweeps()
    print_side_by_side(side_by_side(data), data)
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.strip().startswith("calls"))
    assert "hop p99" in header and "load side core" in header
    assert sum(" gemini " in line for line in lines) == 2
    assert "gemini: max 50 calls within budget; limited by: the generator side" in out


def _sent_by(side: Side, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    sent: list[bytes] = []
    original = Protocol.data_to_send

    def capture(self: Protocol) -> list[bytes]:
        chunks = original(self)
        if self.side is side and chunks:
            sent.append(b"".join(chunks))
        return chunks

    monkeypatch.setattr(Protocol, "data_to_send", capture)
    return sent


def test_gemini_uplink_sends_the_callers_own_samples_in_40_ms_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames = 50
    run = frame_cost.build("uplink/gemini", frames)
    sent = _sent_by(Side.CLIENT, monkeypatch)
    run(None)
    receiver = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    for data in sent:
        receiver.receive_data(data)
    texts = [m.data for m in receiver.events_received()]
    assert len(texts) == frames // 2
    audio = b""
    for text in texts:
        pcm = double_wire.compact_audio(text)  # exactly the compact message the double expects
        assert pcm is not None
        audio += pcm
        assert json.loads(text)["realtimeInput"]["audio"]["mimeType"] == "audio/pcm;rate=16000"
    # No resampler at 16 kHz: the model gets exactly what the caller sent.
    assert audio == frame_cost._caller_audio(frames)


def test_gemini_downlink_releases_exact_20_ms_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    run = frame_cost.build("downlink/gemini", 60)
    sent = _sent_by(Side.SERVER, monkeypatch)
    run(None)
    receiver = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
    for data in sent:
        receiver.receive_data(data)
    frames = [m.data for m in receiver.events_received()]
    assert len(frames) >= 50
    assert {len(f) for f in frames} == {frame_cost.FRAME_BYTES}


def test_compact_audio_reads_only_what_the_full_parse_would_accept() -> None:
    pcm = bytes(range(256)) * 5
    message = gemini_protocol.audio_input(pcm)
    assert double_wire.compact_audio(message) == pcm
    assert double_wire.compact_audio(message.encode()) == pcm
    kind, body = double_wire.parse_client_message(message, setup_done=True)
    assert (kind, double_wire.decode_audio(body["audio"])) == ("realtimeInput", pcm)
    data = base64.b64encode(pcm).decode()
    spaced = json.dumps(
        {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": data}}}
    )
    other_rate = message.replace("rate=16000", "rate=24000")
    not_base64 = message.replace(data[:4], "!!!!")
    odd = gemini_protocol.audio_input(pcm[:-1])
    for text in (spaced, other_rate, not_base64, odd, message[:-1]):
        assert double_wire.compact_audio(text) is None  # left to the parser, which decides


def test_results_of_several_providers_keep_the_first_where_it_always_was() -> None:
    found = {"openai": {"steps": [1], "max_calls": 100}, "gemini": {"steps": [2], "max_calls": 50}}
    results = first_with_others(found)
    assert results["steps"] == [1] and results["max_calls"] == 100
    assert results["other_providers"] == {"gemini": {"steps": [2], "max_calls": 50}}
    assert first_with_others({"gemini": {"steps": [2]}}) == {"steps": [2]}
