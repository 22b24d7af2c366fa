"""The call core while talking: greeting, replies, barge-in, caller audio, metrics."""

from __future__ import annotations

import pytest

from media_node import prompts
from media_node.call import actions as a
from media_node.call import events as e
from media_node.call.state import CallState, Outcome, Timer
from media_node.models import base as m
from tests.unit.call.driver import MODEL_BYTES_PER_MS, START, TIMEOUTS, Driver


def test_session_ready_asks_for_the_greeting_and_the_greeting_deadline_is_armed() -> None:
    d = Driver()
    out = d.feed(e.Connected())
    assert out == [a.SetTimer(Timer.WATCHDOG, START + TIMEOUTS.greeting)]
    d.feed(e.ModelConnected())
    out = d.feed(m.SessionReady())
    assert out == [a.CreateResponse(prompts.greeting_instructions(d.profile))]
    assert d.core.state is CallState.GREETING


def test_greeting_plays_then_the_call_listens_and_time_to_first_audio_is_recorded() -> None:
    d = Driver()
    d.connect()
    d.advance(0.5)  # the model takes half a second to start
    out = d.say("r1", "i1", 1000)
    assert a.KICK in out
    assert d.core.state is CallState.GREETING
    d.advance(0.5)
    assert d.core.state is CallState.GREETING  # still playing
    d.advance(1.0)
    assert d.core.state is CallState.LISTENING
    assert d.core.metrics.time_to_first_audio_ms == pytest.approx(500, abs=0.01)
    # Every frame of the greeting went out, 20 ms each.
    assert sum(1 for item, _ in d.frames if item == "i1") == 50


def test_greeting_timeout_apologises_and_transfers_to_the_front_desk() -> None:
    d = Driver()
    d.connect()
    out = d.advance(TIMEOUTS.greeting)
    assert d.core.state is CallState.ENDING
    assert d.core.ending is not None and d.core.ending.line == "apology"
    (write,) = d.of(a.WriteHandoff, out)
    assert write.handoff["kind"] == "transfer"
    assert write.handoff["reason"] == "model_unavailable"
    assert write.handoff["target"] == d.profile.front_desk
    assert a.FLUSH_CALLER_AUDIO in out  # what the caller said so far still reaches the model
    assert d.core.caller_frame() is False  # and nothing after
    assert d.core.playback.busy(d.now)  # the apology is queued
    d.written()
    out = d.advance(10)
    assert out[-3:] == [a.CLOSE_MODEL, a.CloseSocket(1000), a.End(Outcome.FAILED)]
    assert d.core.state is CallState.ENDED
    assert sum(1 for item, _ in d.frames if item is None) >= 3.6 / 0.02  # the whole apology


def test_caller_audio_reaches_the_model_only_while_talking_with_the_model_open() -> None:
    d = Driver()
    d.feed(e.Connected())
    assert d.core.caller_frame() is False  # model not connected yet
    d.feed(e.ModelConnected())
    assert d.core.caller_frame() is True
    d.feed(m.ModelClosed(1011, "gone"))
    assert d.core.caller_frame() is False
    assert d.core.metrics.frames_in == 3


def test_reply_latency_is_speech_stopped_to_the_first_reply_frame() -> None:
    d = Driver()
    d.greeted()
    d.caller_turn("What time do you open?")
    d.advance(0.7)
    d.say("r2", "i2", 800)
    d.advance(2)
    (latency,) = d.core.metrics.reply_latency_ms
    assert latency == pytest.approx(700, abs=0.01)
    turns = d.core.final_record(d.now)[2]
    assert [t["role"] for t in turns] == ["agent", "caller", "agent"]


def barge_in_call(**kwargs: object) -> Driver:
    """A reply of 3 s fully generated (item i2) after a short one that finished (item i1)."""
    d = Driver(**kwargs)  # type: ignore[arg-type]
    d.connect()
    d.say("r1", "i1", 400)
    d.advance(1.0)
    d.caller_turn("Tell me your hours.")
    d.say("r2", "i2", 3000, done=False)
    return d


def test_barge_in_kills_audio_cancels_and_truncates_at_the_heard_ms() -> None:
    d = barge_in_call()
    first_slot = next(at for item, at in d.frames if item == "i2")
    d.advance(1.234)
    out = d.feed(m.SpeechStarted("item-interrupt"))
    heard = (d.now - first_slot) * 1000
    assert out[:3] == [a.INTERRUPT, a.KILL_AUDIO, a.CANCEL_RESPONSE]
    # Only the item still playing is truncated, at the floor of what was heard.
    assert d.of(a.Truncate, out) == [a.Truncate("i2", int(heard))]
    assert int(heard) == 1234
    assert not d.core.playback.busy(d.now)
    agent = d.core.transcript.agent
    assert agent["i1"].heard_ms == agent["i1"].generated_ms and not agent["i1"].interrupted
    assert agent["i2"].heard_ms == 1234 and agent["i2"].interrupted
    d.advance(0.004)
    d.feed(e.KillAudioSent())
    metrics = d.core.metrics
    assert (metrics.barge_ins, metrics.truncations) == (1, 1)
    assert metrics.barge_in_stop_ms == [pytest.approx(4, abs=0.01)]


def test_audio_of_the_cancelled_response_is_dropped() -> None:
    d = barge_in_call()
    d.advance(0.5)
    d.feed(m.SpeechStarted("item-interrupt"))
    late = m.AudioDelta("r2", "i2", bytes(200 * MODEL_BYTES_PER_MS))
    assert d.feed(late) == []
    assert not d.core.playback.busy(d.now)
    d.feed(m.ResponseDone("r2", "cancelled"))
    assert d.core.state is CallState.LISTENING
    assert d.core.transcript.agent["i2"].generated_bytes == 3000 * MODEL_BYTES_PER_MS


def test_barge_in_without_truncate_support_still_records_what_was_heard() -> None:
    d = barge_in_call(supports_truncate=False)
    d.advance(0.8)
    out = d.feed(m.SpeechStarted("item-interrupt"))
    assert out[:3] == [a.INTERRUPT, a.KILL_AUDIO, a.CANCEL_RESPONSE]
    assert d.of(a.Truncate, out) == []
    assert d.core.metrics.truncations == 0 and d.core.metrics.barge_ins == 1
    item = d.core.transcript.agent["i2"]
    assert item.interrupted and item.heard_ms == 800
    agent_turn = [t for t in d.core.final_record(d.now)[2] if t["role"] == "agent"][-1]
    assert agent_turn["interrupted"] and agent_turn["heard_ms"] == 800


def test_speech_while_nothing_plays_or_generates_is_not_a_barge_in() -> None:
    d = Driver()
    d.greeted()
    out = d.feed(m.SpeechStarted("item-caller"))
    assert out == []
    assert d.core.metrics.barge_ins == 0


def test_barge_in_while_the_response_has_not_sent_audio_yet_cancels_it() -> None:
    d = Driver()
    d.greeted()
    d.caller_turn("Hello?")
    d.feed(m.ResponseStarted("r2"))
    out = d.feed(m.SpeechStarted("item-again"))
    assert out == [a.INTERRUPT, a.KILL_AUDIO, a.CANCEL_RESPONSE]


def test_usage_is_summed_over_responses() -> None:
    d = Driver()
    d.connect()
    d.feed(m.ResponseStarted("r1"))
    d.feed(m.ResponseDone("r1", "completed", {"total_tokens": 10}))
    d.feed(m.ResponseStarted("r2"))
    d.feed(m.ResponseDone("r2", "completed", {"total_tokens": 5}))
    assert d.core.metrics.usage == {"total_tokens": 15}


def test_metadata_and_chipmunk_warnings_go_to_the_record() -> None:
    d = Driver()
    d.feed(e.Connected())
    from media_node.inbound import DecodePlan

    plan = DecodePlan(8000, 1, ["stated 8000 Hz, expected 16000 Hz"])
    d.feed(e.StreamStarted(plan, {"sampleRate": 8000}, ("odd field",)))
    d.feed(e.OversizedFrame("frame of 100000 bytes"))
    outcome, media, _, metrics = d.core.final_record(d.now)
    assert outcome is Outcome.FAILED  # not ended yet
    assert media["metadata"] == {"sampleRate": 8000} and media["decode_rate"] == 8000
    assert (metrics["chipmunk_warnings"], metrics["oversized_frames"]) == (1, 1)
