"""Pure call parts: truncation, heard text, transcript, handoff, watchdog, playback, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mapokezi.profiles import AudioSettings, load_profile_file, parse_profile
from media_node.assets import APOLOGY, DRAIN, LINES, TIME_LIMIT, load_line
from media_node.audio import PacerStats
from media_node.call import transcript as logic
from media_node.call.watchdog import Deadline, Watchdog
from media_node.inbound import DecodePlan, InboundAudio, decode_plan
from media_node.metrics import CallMetrics, emf_line
from media_node.playback import Playback
from media_node.prompts import handoff_line_instructions, session_instructions, tool_specs
from media_node.sautikit_protocol import parse_metadata

ROOT = Path(__file__).resolve().parents[3]
PROFILE = parse_profile(
    load_profile_file(ROOT / "profiles" / "example.yaml"), number="+254700000100"
)


def test_truncate_point_clamps_and_skips_finished_items() -> None:
    assert logic.truncate_point(1234.9, 5000) == 1234
    assert logic.truncate_point(0, 5000) == 0
    assert logic.truncate_point(5000, 5000) is None  # finished playing: no truncate
    assert logic.truncate_point(5020, 5000) is None  # padded last frame heard
    assert logic.truncate_point(100, 0) is None


def test_heard_text_cuts_in_proportion_on_a_word() -> None:
    text = "We open at nine on Saturday morning."
    assert logic.heard_text(text, 1000, 1000) == text
    assert logic.heard_text(text, 0, 1000) == ""
    half = logic.heard_text(text, 500, 1000)
    assert text.startswith(half) and 0 < len(half) <= len(text) // 2
    assert not half.endswith(" ") and half.split()[-1] in text.split()


def test_transcript_turns_ordered_with_heard_and_generated_text() -> None:
    transcript = logic.Transcript()
    greeting = transcript.agent_item("item_1", 100)
    greeting.generated_bytes = 48 * 2000
    greeting.text = "Hello, how can I help you today?"
    transcript.add_caller("What time do you open?", 3000)
    reply = transcript.agent_item("item_2", 4000)
    reply.generated_bytes = 48 * 4000
    reply.text = "We open at nine and close at five."
    reply.heard_ms, reply.interrupted = 1000, True
    turns = transcript.turns()
    assert [t["role"] for t in turns] == ["agent", "caller", "agent"]
    assert turns[0]["text"] == turns[0]["generated_text"] and not turns[0]["interrupted"]
    assert turns[2]["interrupted"] and turns[2]["heard_ms"] == 1000
    assert turns[2]["text"] == turns[2]["heard_text"]
    assert len(turns[2]["heard_text"]) < len(reply.text)
    assert transcript.recent_caller_text() == "What time do you open?"


def test_agent_text_from_deltas_until_the_full_text_arrives() -> None:
    transcript = logic.Transcript()
    item = transcript.agent_item("item_1", 100)
    item.generated_bytes = 48 * 1000
    for delta in ("We open ", "at nine"):
        transcript.add_agent_text("item_1", delta)
    # The caller hung up before the transcript's done event: the partial text is kept.
    assert transcript.turns()[0]["generated_text"] == "We open at nine"
    item.text = "We open at nine and close at five."
    assert transcript.turns()[0]["generated_text"] == item.text


def test_handoff_resolution_and_summary() -> None:
    summary = logic.handoff_summary("Wants to book a cleaning", "I'd like a cleaning on Friday")
    assert summary == 'Wants to book a cleaning. Caller said: "I\'d like a cleaning on Friday"'
    assert len(logic.handoff_summary("x" * 2000, "")) <= logic.SUMMARY_MAX_CHARS
    handoff = logic.resolve_handoff(PROFILE, "transfer", "booking", "Appointments", summary)
    assert handoff == {
        "kind": "transfer",
        "reason": "booking",
        "summary": summary,
        "target": "+254711000002",
        "department": "appointments",
    }
    desk = logic.resolve_handoff(PROFILE, "transfer", "help", "no such team", "")
    assert desk["target"] == PROFILE.front_desk and "department" not in desk
    hangup = logic.resolve_handoff(PROFILE, "hangup", "caller said goodbye", None, "")
    assert hangup == {"kind": "hangup", "reason": "caller said goodbye", "summary": ""}


def make_watchdog() -> Watchdog:
    return Watchdog(
        started=0.0,
        max_call_seconds=300,
        idle_prompt_seconds=15,
        idle_end_seconds=30,
        greeting_timeout=8,
        reply_timeout=10,
    )


def test_watchdog_greeting_and_reply_bounds() -> None:
    dog = make_watchdog()
    assert dog.check(7.9) is None
    assert dog.check(8.0) == Deadline.GREETING
    dog = make_watchdog()
    dog.first_audio()
    assert dog.check(8.0) is None
    dog.caller_stopped(20.0)
    assert dog.check(29.9) is None
    assert dog.check(30.0) == Deadline.REPLY
    assert dog.check(30.1) is None  # fires once
    dog.caller_stopped(40.0)
    dog.first_audio()
    assert dog.check(55.0) is None


def test_watchdog_limit_warning_and_idle() -> None:
    dog = make_watchdog()
    dog.first_audio()
    dog.agent_finished(10.0)
    assert dog.check(24.9) is None
    assert dog.check(25.0) == Deadline.IDLE_PROMPT
    dog.agent_busy()
    dog.agent_finished(27.0)
    assert dog.check(56.9) is None
    assert dog.check(57.0) == Deadline.IDLE_END
    dog = make_watchdog()
    dog.first_audio()
    dog.agent_finished(10.0)
    dog.caller_spoke()  # speech resets idle timing
    assert dog.check(26.0) is None
    assert dog.check(240.0) == Deadline.TIME_WARNING
    assert dog.check(241.0) is None
    assert dog.check(300.0) == Deadline.TIME_LIMIT


def test_playback_flushes_each_item_into_exact_frames_and_clears_on_barge_in() -> None:
    playback = Playback(24000, 16000, lead_ms=60)
    tone = (8000 * np.sin(np.arange(24000) * 2 * np.pi * 300 / 24000)).astype("<i2").tobytes()
    for start in range(0, len(tone), 4801):  # bursty, odd-sized deltas
        chunk = tone[start : start + 4801]
        playback.push("item_1", chunk[: len(chunk) - len(chunk) % 2], 0.0)
    playback.end_item("item_1")
    frames = playback.pacer.queued_frames
    assert frames == 50  # 1 s at 16 kHz in 20 ms frames, last one padded
    released = playback.pacer.release(0.0)
    assert all(len(r.frame) == 640 for r in released)
    assert playback.busy(0.0)
    playback.push("item_2", tone[:9600], 0.2)
    dropped = playback.interrupt(0.5)
    assert dropped > 0 and playback.pacer.queued_frames == 0 and playback.current_item is None
    assert playback.framer.pending_bytes == 0
    assert playback.play_line(load_line(APOLOGY, 16000)) > 100


def test_pre_rendered_lines_exist_for_both_rates() -> None:
    for name in LINES:
        narrow, wide = load_line(name, 8000), load_line(name, 16000)
        assert abs(len(wide) - 2 * len(narrow)) < 64 and len(narrow) > 8000
        assert np.abs(np.frombuffer(narrow, dtype="<i2")).max() > 10000
    assert {APOLOGY, DRAIN, TIME_LIMIT} == set(LINES)


def test_metrics_record_and_emf_line() -> None:
    metrics = CallMetrics(time_to_first_audio_ms=812.345, reply_latency_ms=[700.0, 900.0, 800.0])
    metrics.barge_ins, metrics.barge_in_stop_ms, metrics.truncations = 1, [0.42], 1
    metrics.add_usage(
        {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10,
         "input_token_details": {"audio_tokens": 15, "text_tokens": 5}}
    )  # fmt: skip
    metrics.add_usage({"input_tokens": 2, "output_tokens": 1})
    record = metrics.to_record(PacerStats(frames_released=100, underruns=2, late_frames=1))
    assert record["reply_latency_p50_ms"] == 800.0 and record["reply_latency_max_ms"] == 900.0
    assert record["usage"] == {
        "total_tokens": 30,
        "input_tokens": 22,
        "output_tokens": 11,
        "input_audio_tokens": 15,
        "input_text_tokens": 5,
    }
    assert record["frames_released"] == 100 and record["underruns"] == 2
    line = json.loads(emf_line(record, call_id="c1", outcome="transfer", node_id="n1", at=1.0))
    directive = line["_aws"]["CloudWatchMetrics"][0]
    assert line["_aws"]["Timestamp"] == 1000 and directive["Dimensions"] == [["Outcome"]]
    names = {d["Name"] for d in directive["Metrics"]}
    assert {"TimeToFirstAudio", "ReplyLatency", "BargeInStop", "Calls"} <= names
    assert all(name in line for name in names)  # every declared metric has a value
    assert line["ReplyLatency"] == [700.0, 900.0, 800.0] and line["Outcome"] == "transfer"


def test_prompts_carry_persona_facts_and_tools() -> None:
    text = session_instructions(PROFILE)
    for expected in ("Karibu Dental Clinic", "KES 3,500", "appointments", "transfer_to_human"):
        assert expected in text
    assert "Karibu Dental Clinic" in handoff_line_instructions(PROFILE, "transfer")
    names = [t["name"] for t in tool_specs(PROFILE)]
    assert names == ["transfer_to_human", "end_call"]


def test_decode_plan_chipmunk_guard() -> None:
    wide = AudioSettings(sample_rate=16000, track="inbound_track")
    assert decode_plan(None, wide) == DecodePlan(16000, 1, [])
    agreed = decode_plan(parse_metadata('{"sampleRate":16000,"mixType":"mono"}'), wide)
    assert agreed == DecodePlan(16000, 1, [])
    narrow = decode_plan(parse_metadata('{"sampleRate":8000}'), wide)
    assert (narrow.rate, narrow.channels, len(narrow.warnings)) == (8000, 1, 1)
    odd = decode_plan(parse_metadata('{"sampleRate":44100}'), wide)
    assert (odd.rate, len(odd.warnings)) == (16000, 1)  # stated, warned, not trusted
    both = AudioSettings(sample_rate=16000, track="both_tracks")
    assert decode_plan(None, both).channels == 2
    mixed = decode_plan(parse_metadata('{"mixType":"mixed"}'), both)
    assert mixed.channels == 1 and len(mixed.warnings) == 1


def test_inbound_audio_realigns_odd_frames_and_resamples_to_the_model_rate() -> None:
    inbound = InboundAudio(DecodePlan(8000, 2), 24000)
    stereo = np.column_stack(
        [np.full(8000, 1000, dtype="<i2"), np.full(8000, -1000, dtype="<i2")]
    ).tobytes()
    out = b"".join(inbound.feed(stereo[i : i + 321]) for i in range(0, len(stereo), 321))
    samples = np.frombuffer(out, dtype="<i2")
    assert 24000 - 1200 < samples.size <= 24000  # 1 s at 24 kHz, minus soxr's hold-back
    assert np.median(samples[1000:]) == 1000  # channel 0 only


def test_reply_start_waits_briefly_for_a_cushion() -> None:
    playback = Playback(24000, 16000, lead_ms=60)
    tone = (8000 * np.sin(np.arange(2880) * 2 * np.pi * 300 / 24000)).astype("<i2").tobytes()
    playback.push("item_1", tone, 10.0)  # 120 ms in, ~80 ms framed: below lead + cushion
    assert playback.pacer.queued_ms < 100
    assert playback.hold_until(10.0) == 10.04
    playback.push("item_1", tone, 10.02)  # the next delta completes the cushion
    assert playback.hold_until(10.02) is None
    burst = Playback(24000, 16000, lead_ms=60)
    burst.push("item_2", tone * 4, 10.0)  # a burst: no wait at all
    assert burst.hold_until(10.0) is None
    late = Playback(24000, 16000, lead_ms=60)
    late.push("item_3", tone, 10.0)
    assert late.hold_until(10.05) is None  # waited long enough
    ended = Playback(24000, 16000, lead_ms=60)
    ended.push("item_4", tone[:960], 10.0)
    ended.end_item("item_4")
    assert ended.hold_until(10.0) is None  # a short reply that already ended plays at once
