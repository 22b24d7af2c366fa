"""The call core's endings: tool calls, failures, deadlines, drain, and the socket closing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from websockets.frames import Close

from mapokezi.profiles import Limits
from media_node import prompts
from media_node.assets import load_line
from media_node.call import actions as a
from media_node.call import events as e
from media_node.call.state import CallState, ClosedBy, EndingPhase, Outcome, Timer
from media_node.models import base as m
from tests.unit.call.driver import TIMEOUTS, Driver, make_profile

TRANSFER = m.FunctionCall(
    "r2",
    "call-1",
    "transfer_to_human",
    {"reason": "Wants a cleaning", "department": "appointments"},
)
END_CALL = m.FunctionCall("r2", "call-2", "end_call", {"reason": "caller said goodbye"})


def after_tool_call(call: m.FunctionCall = TRANSFER) -> tuple[Driver, list[a.Action]]:
    d = Driver()
    d.greeted()
    d.caller_turn("Can I book a cleaning?")
    d.feed(m.ResponseStarted("r2"))
    out = d.feed(call)
    return d, out


def close_actions(outcome: Outcome) -> list[a.Action]:
    return [a.CLOSE_MODEL, a.CloseSocket(1000), a.End(outcome)]


# --- tool calls --------------------------------------------------------------------------


def test_transfer_writes_the_handoff_before_anything_else() -> None:
    d, out = after_tool_call()
    (write,) = d.of(a.WriteHandoff, out)
    assert out == [a.FLUSH_CALLER_AUDIO, write]
    handoff = write.handoff
    assert handoff["kind"] == "transfer" and handoff["target"] == "+254711000002"
    assert handoff["department"] == "appointments" and handoff["reason"] == "Wants a cleaning"
    assert 'Caller said: "Can I book a cleaning?"' in handoff["summary"]
    assert (d.core.state, d.core.ending.phase) == (CallState.ENDING, EndingPhase.WRITING_HANDOFF)
    # Nothing more until the write is done, whatever the model does meanwhile.
    out = d.feed(m.ResponseDone("r2", "completed"))
    assert [x for x in out if not isinstance(x, (a.SetTimer, a.ClearTimer))] == []
    out = d.written()
    assert out[0] == a.SendFunctionOutput("call-1", {"ok": True, "status": "connecting"})
    assert a.SetTimer(Timer.HANDOFF_LINE, d.now + TIMEOUTS.handoff_line) in out
    assert out[-1] == a.CreateResponse(prompts.handoff_line_instructions(d.profile, "transfer"))


def test_the_handoff_line_waits_for_the_response_in_progress() -> None:
    d, _ = after_tool_call()
    out = d.written()
    assert d.of(a.CreateResponse, out) == []  # r2 (the tool call's response) is still open
    out = d.feed(m.ResponseDone("r2", "completed"))
    assert d.of(a.CreateResponse, out) == [
        a.CreateResponse(prompts.handoff_line_instructions(d.profile, "transfer"))
    ]


def test_transfer_line_plays_out_then_the_call_closes_normally() -> None:
    d, _ = after_tool_call()
    d.feed(m.ResponseDone("r2", "completed"))
    d.written()
    d.say("r3", "i3", 1200)  # "Connecting you now."
    assert d.core.ending.phase is EndingPhase.PLAYING_LINE
    out = d.advance(1.0)
    assert d.of(a.CloseSocket, out) == []  # still playing
    out = d.advance(1.0)
    assert out[-3:] == close_actions(Outcome.TRANSFER)
    assert sum(1 for item, _ in d.frames if item == "i3") == 60  # the whole line was released
    _, media, _, _ = d.core.final_record(d.now)
    assert media["outcome"] == "transfer"
    assert media["close"] == {"code": 1000, "by": "node", "reason": ""}


def test_end_call_says_goodbye_and_hangs_up() -> None:
    d, out = after_tool_call(END_CALL)
    assert d.of(a.WriteHandoff, out)[0].handoff == {
        "kind": "hangup",
        "reason": "caller said goodbye",
        "summary": 'caller said goodbye. Caller said: "Can I book a cleaning?"',
    }
    d.feed(m.ResponseDone("r2", "completed"))
    out = d.written()
    assert out[0] == a.SendFunctionOutput("call-2", {"ok": True, "status": "ending"})
    d.say("r3", "i3", 500)
    assert d.advance(2)[-3:] == close_actions(Outcome.HANGUP)


def test_late_caller_transcript_rewrites_the_summary_before_the_socket_closes() -> None:
    d, out = after_tool_call()
    first = d.of(a.WriteHandoff, out)[0].handoff
    d.feed(m.ResponseDone("r2", "completed"))
    d.written()
    d.feed(m.CallerTranscript("item-late", "On Friday please."))
    d.say("r3", "i3", 400)
    out = d.advance(1.0)
    (rewrite,) = d.of(a.WriteHandoff, out)
    assert rewrite.handoff == {
        **first,
        "summary": 'Wants a cleaning. Caller said: "Can I book a cleaning? On Friday please."',
    }
    assert d.of(a.CloseSocket, out) == []  # not before the rewrite is in the record
    assert d.advance(5) == []
    out = d.written()
    assert out == [a.SetTimer(Timer.CLOSE_MARGIN, d.now + TIMEOUTS.close_margin)]
    assert d.advance(TIMEOUTS.close_margin)[-3:] == close_actions(Outcome.TRANSFER)


def test_unknown_tool_is_ignored() -> None:
    d = Driver()
    d.greeted()
    out = d.feed(m.FunctionCall("r2", "call-9", "order_pizza", {}))
    assert out == [] and d.core.state is CallState.LISTENING


def test_a_second_tool_call_during_an_ending_is_ignored() -> None:
    d, _ = after_tool_call()
    assert d.feed(END_CALL) == []
    assert d.core.ending.outcome is Outcome.TRANSFER
    assert d.core.handoff["kind"] == "transfer"


def test_handoff_line_that_never_comes_is_bounded() -> None:
    d, _ = after_tool_call()
    d.feed(m.ResponseDone("r2", "completed"))
    d.written()
    out = d.advance(TIMEOUTS.handoff_line + TIMEOUTS.close_margin)
    assert out[-3:] == close_actions(Outcome.TRANSFER)


def test_model_closing_during_the_handoff_line_skips_the_line() -> None:
    d, _ = after_tool_call()
    d.feed(m.ResponseDone("r2", "completed"))
    d.written()
    d.feed(m.ModelClosed(1011, "server error"))
    assert d.core.ending.phase is not EndingPhase.WAITING_LINE
    assert d.advance(TIMEOUTS.close_margin)[-3:] == close_actions(Outcome.TRANSFER)


def test_model_gone_before_the_handoff_is_written_sends_no_function_output() -> None:
    d, _ = after_tool_call()
    d.feed(m.ModelClosed(1006, ""))
    out = d.written()
    assert d.of(a.SendFunctionOutput, out) == [] and d.of(a.CreateResponse, out) == []


# --- failures and deadlines --------------------------------------------------------------


def assert_apology_ending(d: Driver, out: list[a.Action]) -> None:
    assert d.core.ending is not None and d.core.ending.line == "apology"
    (write,) = d.of(a.WriteHandoff, out)
    assert write.handoff["reason"] == "model_unavailable"
    assert write.handoff["target"] == d.profile.front_desk
    d.written()
    assert d.advance(10)[-3:] == close_actions(Outcome.FAILED)


@pytest.mark.parametrize(
    "failure",
    [
        m.ModelClosed(1006, ""),
        m.ModelError("server_error", "The server had an error.", fatal=True),
        m.ResponseDone("r2", "failed"),
        e.ModelConnectFailed("refused"),
        e.InternalError("pacing failed"),
    ],
)
def test_model_failure_mid_reply_cuts_the_audio_apologises_and_transfers(
    failure: e.CallEvent,
) -> None:
    d = Driver()
    d.greeted()
    d.caller_turn("Hello?")
    d.say("r2", "i2", 3000, done=False)
    d.advance(0.5)
    out = d.feed(failure)
    # With the model still open, what the caller said so far reaches it; a lost model gets none.
    tail = [a.FLUSH_CALLER_AUDIO] if isinstance(failure, e.InternalError) else []
    assert out[: len(tail) + 2] == [*tail, a.INTERRUPT, a.KILL_AUDIO]
    assert d.feed(m.AudioDelta("r2", "i2", bytes(4800))) == []  # no more model audio
    assert_apology_ending(d, out)


def test_non_fatal_model_error_changes_nothing() -> None:
    d = Driver()
    d.greeted()
    assert d.feed(m.ModelError("invalid_value", "bad", fatal=False)) == []
    assert d.core.state is CallState.LISTENING


def test_silent_model_after_the_caller_spoke_gets_the_apology() -> None:
    d = Driver()
    d.greeted()
    d.caller_turn("Hello?")
    out = d.advance(TIMEOUTS.reply - 0.01)
    assert d.core.state is CallState.LISTENING and out == []
    out = d.advance(0.01)
    assert_apology_ending(d, out)


def test_length_limit_warns_a_minute_before_then_transfers() -> None:
    d = Driver(make_profile(limits=Limits(120, 600, 600)))
    d.greeted()
    out = d.advance_to(d.core.started + 60 - 0.01)
    assert d.of(a.AddSystemMessage, out) == []
    out = d.advance(0.01)
    assert d.of(a.AddSystemMessage, out)[0].text.startswith("The call reaches its time limit")
    assert d.of(a.CreateResponse, out) == [
        a.CreateResponse(prompts.time_warning_instructions(d.profile))
    ]
    d.say("r2", "i2", 1000)
    out = d.advance_to(d.core.started + 120)
    assert d.core.ending.line == "time_limit"
    (write,) = d.of(a.WriteHandoff, out)
    assert write.handoff["reason"] == "max_duration" and write.handoff["kind"] == "transfer"
    d.written()
    assert d.advance(10)[-3:] == close_actions(Outcome.MAX_DURATION)


def test_idle_caller_is_asked_then_said_goodbye_to() -> None:
    d = Driver(make_profile(limits=Limits(900, 15, 30)))
    d.greeted()  # silence starts when the greeting has played out
    quiet_from = d.now - 0.5
    out = d.advance_to(quiet_from + 15)
    assert d.of(a.CreateResponse, out) == [
        a.CreateResponse(prompts.idle_prompt_instructions(d.profile))
    ]
    d.say("r2", "i2", 1000)
    out = d.advance(1.0 + 30)
    (write,) = d.of(a.WriteHandoff, out)
    assert write.handoff == {
        "kind": "hangup",
        "reason": "idle",
        "summary": "caller went silent.",
    }
    out = d.written()
    assert d.of(a.SendFunctionOutput, out) == []
    assert out[-1] == a.CreateResponse(prompts.idle_goodbye_instructions(d.profile))
    d.say("r3", "i3", 800)
    d.feed(m.CallerTranscript("item-x", "late words"))
    out = d.advance(2)
    assert d.of(a.WriteHandoff, out) == []  # an idle goodbye keeps its summary
    assert out[-3:] == close_actions(Outcome.IDLE)


def test_caller_speech_restarts_idle_timing() -> None:
    d = Driver(make_profile(limits=Limits(900, 15, 30)))
    d.greeted()
    d.advance(10)
    d.caller_turn("Hmm.")
    d.say("r2", "i2", 500)
    out = d.advance(15)
    assert d.of(a.CreateResponse, out) == []
    out = d.advance(1)
    assert d.of(a.CreateResponse, out) == [
        a.CreateResponse(prompts.idle_prompt_instructions(d.profile))
    ]


# --- drain -------------------------------------------------------------------------------


def test_drain_starts_the_line_in_time_to_finish_by_the_deadline() -> None:
    d = Driver()
    d.greeted()
    deadline = d.now + 30
    line_s = len(load_line("drain", 16000)) / 32000
    out = d.feed(e.DrainRequested(deadline))
    assert out == [
        a.SetTimer(Timer.DRAIN_DEADLINE, deadline),
        a.SetTimer(Timer.DRAIN_START, deadline - line_s - 1.0),
    ]
    out = d.advance_to(deadline - line_s - 1.0)
    (write,) = d.of(a.WriteHandoff, out)
    assert write.handoff["reason"] == "node_draining"
    assert write.handoff["target"] == d.profile.front_desk
    d.written()
    out = d.advance_to(deadline - 0.5)
    assert out[-3:] == close_actions(Outcome.DRAINED)


def test_drain_with_little_time_left_starts_at_once_and_the_deadline_is_kept() -> None:
    d = Driver()
    d.greeted()
    out = d.feed(e.DrainRequested(d.now + 2.0))
    assert d.core.ending is not None and d.core.ending.line == "drain"
    assert d.of(a.WriteHandoff, out)
    out = d.advance(2.0)  # the handoff write never finished: the deadline ends the call
    assert out[-3:] == close_actions(Outcome.DRAINED)


def test_drain_after_the_call_ended_does_nothing() -> None:
    d = Driver()
    d.greeted()
    d.feed(e.SocketClosed(1000, "", ClosedBy.PEER))
    assert d.feed(e.DrainRequested(d.now + 5)) == []


# --- the media socket closing ------------------------------------------------------------


def in_greeting(d: Driver) -> None:
    d.connect()
    d.say("r1", "i1", 2000, done=False)


def listening(d: Driver) -> None:
    d.greeted()


def replying(d: Driver) -> None:
    d.greeted()
    d.caller_turn("Hello?")
    d.say("r2", "i2", 2000)


def writing_handoff(d: Driver) -> None:
    listening(d)
    d.feed(TRANSFER)


def waiting_line(d: Driver) -> None:
    writing_handoff(d)
    d.written()


def playing_line(d: Driver) -> None:
    waiting_line(d)
    d.say("r3", "i3", 2000)


def playing_apology(d: Driver) -> None:
    listening(d)
    d.feed(m.ModelClosed(1006, ""))
    d.written()


def finishing(d: Driver) -> None:
    playing_line(d)
    d.advance(2.2)


STATES: dict[str, tuple[Callable[[Driver], None], CallState, EndingPhase | None]] = {
    "greeting": (in_greeting, CallState.GREETING, None),
    "listening": (listening, CallState.LISTENING, None),
    "replying": (replying, CallState.REPLYING, None),
    "writing_handoff": (writing_handoff, CallState.ENDING, EndingPhase.WRITING_HANDOFF),
    "waiting_line": (waiting_line, CallState.ENDING, EndingPhase.WAITING_LINE),
    "playing_line": (playing_line, CallState.ENDING, EndingPhase.PLAYING_LINE),
    "playing_apology": (playing_apology, CallState.ENDING, EndingPhase.PLAYING_LINE),
    "finishing": (finishing, CallState.ENDING, EndingPhase.FINISHING),
}


@pytest.mark.parametrize("name", STATES)
def test_caller_hang_up_in_every_state_closes_the_model_at_once(name: str) -> None:
    setup, state, phase = STATES[name]
    d = Driver()
    setup(d)
    assert d.core.state is state
    assert (d.core.ending.phase if d.core.ending else None) is phase
    talking = state is not CallState.ENDING and d.core.model_open
    out = d.feed(e.SocketClosed.from_frames(Close(1000, ""), None, None))
    tail = [a.FLUSH_CALLER_AUDIO] if talking else []
    assert out == [*tail, a.CLOSE_MODEL, a.End(Outcome.CALLER_HANGUP)]
    assert d.core.state is CallState.ENDED
    # Nothing happens after the end: late events and timers are ignored.
    assert d.advance(60) == []
    assert d.feed(m.AudioDelta("r9", "i9", bytes(4800))) == []
    assert d.feed(e.HandoffWritten(True)) == []
    _, media, _, _ = d.core.final_record(d.now)
    assert media["outcome"] == "caller_hangup"
    assert media["close"] == {"code": 1000, "by": "peer", "reason": ""}


@pytest.mark.parametrize(
    ("received", "sent", "received_first", "expected"),
    [
        (Close(1000, "bye"), None, None, (1000, "bye", "peer", Outcome.CALLER_HANGUP)),
        (Close(1001, ""), None, None, (1001, "", "peer", Outcome.CALLER_HANGUP)),
        (Close(1005, ""), Close(1005, ""), True, (1005, "", "peer", Outcome.CALLER_HANGUP)),
        (Close(1011, "media error"), None, None, (1011, "media error", "peer", "stream_lost")),
        (None, None, None, (1006, "no close frame", "network", Outcome.STREAM_LOST)),
        (
            None,
            Close(1011, "keepalive ping timeout"),
            None,
            (1011, "keepalive ping timeout", "node", Outcome.STREAM_LOST),
        ),
    ],
)
def test_socket_close_is_classified_and_recorded(
    received: Close | None, sent: Close | None, received_first: bool | None, expected: tuple
) -> None:
    d = Driver()
    d.greeted()
    closed = e.SocketClosed.from_frames(received, sent, received_first)
    out = d.feed(closed)
    code, reason, by, outcome = expected
    assert out == [a.FLUSH_CALLER_AUDIO, a.CLOSE_MODEL, a.End(outcome)]
    _, media, _, _ = d.core.final_record(d.now)
    assert media["outcome"] == outcome
    assert media["close"] == {"code": code, "by": by, "reason": reason}


def test_the_nodes_own_close_is_not_a_hang_up() -> None:
    d = Driver()
    d.greeted()
    d.feed(m.ModelClosed(1006, ""))
    d.written()
    d.advance(10)
    assert d.core.state is CallState.ENDED
    assert d.feed(e.SocketClosed.from_frames(None, Close(1000, ""), None)) == []
    assert d.core.final_record(d.now)[1]["outcome"] == "failed"


def test_heard_text_at_hang_up_is_what_was_played() -> None:
    d = Driver()
    d.connect()
    d.say("r1", "i1", 2000)
    d.feed(m.TranscriptDone("r1", "i1", "Karibu Dental Clinic, how can I help you today?"))
    d.advance(1.0)
    d.feed(e.SocketClosed(1000, "", ClosedBy.PEER))
    (turn,) = d.core.final_record(d.now)[2]
    assert turn["interrupted"] and turn["heard_ms"] == 1000 and turn["generated_ms"] == 2000
    assert turn["heard_text"] == "Karibu Dental Clinic,"  # "how" was cut mid-word
