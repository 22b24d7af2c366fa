"""Supervised transfers and message taking in the call core, on the explicit clock."""

from __future__ import annotations

import pytest

from mapokezi.handoff import HandoffPath
from mapokezi.profiles import HandoffSettings, Profile
from media_node import prompts
from media_node.assets import load_hold
from media_node.call import actions as a
from media_node.call import events as e
from media_node.call.state import CallState, ClosedBy, ModelLink, Outcome, Timer
from media_node.call.supervised import HOLD_LEAD
from media_node.models import base as m
from tests.unit.call.driver import Driver, make_profile

TRANSFER = m.FunctionCall(
    "r2",
    "call-1",
    "transfer_to_human",
    {"reason": "Wants a cleaning", "department": "appointments"},
)
MESSAGE = {
    "name": "Wanjiru",
    "callback_number": "0712 345 678",
    "message": "Please call me about the cleaning.",
}
FRAME_S = 0.02


def holding(line_ms: int = 1200, profile: Profile | None = None) -> Driver:
    """A call whose supervised transfer's line has played: it holds while the person is rung."""
    d = Driver(profile)
    d.greeted()
    d.caller_turn("Can I book a cleaning?")
    d.feed(m.ResponseStarted("r2"))
    out = d.feed(TRANSFER)
    (write,) = d.of(a.WriteHandoff, out)
    assert write.choose_path  # the shell chooses dial or supervise when it writes
    d.feed(m.ResponseDone("r2", "completed"))
    out = d.feed(e.HandoffWritten(True, HandoffPath.SUPERVISE))
    assert out[0] == a.SendFunctionOutput("call-1", {"ok": True, "status": "connecting"})
    assert d.core.state is CallState.ENDING
    d.say("r3", "i3", line_ms)  # "Connecting you now."
    # The whole line is queued: the hold loop is queued right behind it.
    assert d.core.state is CallState.HOLDING and d.of(a.StartSupervision)
    d.advance(line_ms / 1000 + 0.5)
    return d


def frames_between(d: Driver, start: float, end: float) -> list[tuple[str | None, float]]:
    return [f for f in d.frames if start <= f[1] < end]


def assert_no_gap(times: list[float]) -> None:
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps and max(gaps) <= FRAME_S + 1e-6, max(gaps)


def test_holding_starts_the_supervision_and_never_closes_the_call() -> None:
    d = holding()
    (start,) = d.of(a.StartSupervision)
    assert start.handoff["target"] == "+254711000002"
    assert d.of(a.CloseSocket) == [] and d.of(a.End) == [] and d.of(a.CloseModel) == []
    assert not d.core.caller_frame()  # caller audio does not reach the model while holding


def test_hold_audio_loops_without_silence_while_the_person_is_rung() -> None:
    d = holding()
    held_from = d.now
    loop_s = len(load_hold(d.core.rate)) / (2 * d.core.rate)
    d.advance(3 * loop_s + 1.0)  # well into the fourth round
    hold = frames_between(d, held_from, d.now)
    assert {item for item, _ in hold} == {None}  # pre-rendered audio, not the model's
    line_start = next(at for item, at in d.frames if item == "i3")
    # From the handoff line through three rounds of the loop, a frame every 20 ms.
    assert_no_gap([at for _, at in frames_between(d, line_start, d.now)])
    assert hold[-1][1] >= d.now - FRAME_S - 1e-6
    refills = [x for x in d.of(a.SetTimer) if x.timer is Timer.HOLD_REFILL]
    assert len(refills) >= 4
    assert refills[1].at - refills[0].at == pytest.approx(loop_s)
    assert refills[0].at <= held_from + loop_s - HOLD_LEAD  # before the first round runs out


def test_connected_introduces_then_closes_the_model_and_keeps_the_socket() -> None:
    d = holding()
    d.advance(5.0)
    mark = len(d.log)
    out = d.feed(e.HandoffProgress("connected", time_to_person_ms=6200))
    assert a.ClearTimer(Timer.HOLD_REFILL) in out
    assert out.index(a.INTERRUPT) < out.index(a.KILL_AUDIO)  # the hold loop stops at once
    summary = d.core.handoff["summary"]
    assert d.of(a.CreateResponse, out) == [
        a.CreateResponse(prompts.introduction_instructions(d.profile, summary))
    ]
    assert d.core.state is CallState.BRIDGED
    assert "Can I book a cleaning?" in summary
    d.say("r4", "i4", 2000)  # the introduction both hear
    assert [f for f in d.frames if f[0] == "i4"]
    d.advance(1.0)
    assert d.of(a.CloseModel, d.log[mark:]) == []  # still playing
    d.advance(2.0)
    assert d.of(a.CloseModel, d.log[mark:]) == [a.CLOSE_MODEL]
    assert d.core.model_link is ModelLink.GONE
    d.advance(60.0)
    assert d.of(a.CloseSocket) == [] and d.of(a.End) == []
    assert d.core.state is CallState.BRIDGED
    _, _, _, metrics = d.core.final_record(d.now)
    assert (metrics["handoffs_connected"], metrics["handoffs_failed"]) == (1, 0)
    assert metrics["time_to_person_ms"] == 6200


def test_a_person_who_answers_during_the_handoff_line_hears_it_end_then_the_introduction() -> None:
    d = Driver()
    d.greeted()
    d.caller_turn("Can I book a cleaning?")
    d.feed(m.ResponseStarted("r2"))
    d.feed(TRANSFER)
    d.feed(m.ResponseDone("r2", "completed"))
    d.feed(e.HandoffWritten(True, HandoffPath.SUPERVISE))
    d.say("r3", "i3", 2000)  # "Connecting you now." queued whole, the hold loop behind it
    assert d.core.state is CallState.HOLDING
    d.advance(0.5)
    out = d.feed(e.HandoffProgress("connected", time_to_person_ms=900))
    assert a.KILL_AUDIO not in out and a.INTERRUPT not in out  # the line is not cut
    assert a.ClearTimer(Timer.HOLD_REFILL) in out
    d.say("r4", "i4", 1000)  # the introduction
    d.advance(4.0)
    line = [t for item, t in d.frames if item == "i3"]
    intro = [t for item, t in d.frames if item == "i4"]
    assert len(line) == 100 and intro and intro[0] > line[-1]  # all of the line, then it
    assert not [t for item, t in d.frames if item is None and t > line[0]]  # no hold audio
    assert not d.core.transcript.agent["i3"].interrupted  # the record does not call it cut


def test_model_audio_is_not_played_while_holding() -> None:
    d = holding()
    mark = len(d.frames)
    d.feed(m.AudioDelta("r9", "i9", bytes(48 * 500)))
    assert [f for f in d.frames[mark:] if f[0] == "i9"] == []


def test_the_caller_hangs_up_while_ringing_and_the_supervision_is_removed() -> None:
    d = holding()
    d.advance(2.0)
    out = d.feed(e.SocketClosed(1000, "", ClosedBy.PEER))
    assert out == [a.STOP_SUPERVISION, a.CLOSE_MODEL, a.End(Outcome.CALLER_HANGUP)]


def test_the_caller_hangs_up_after_the_person_left_nothing_to_remove() -> None:
    d = holding()
    d.feed(e.HandoffProgress("connected", time_to_person_ms=3000))
    d.feed(e.HandoffProgress("person_left"))
    out = d.feed(e.SocketClosed(1000, "", ClosedBy.PEER))
    assert a.STOP_SUPERVISION not in out


@pytest.mark.parametrize(
    "reason", ["ring_timeout", "busy", "scope_denied", "supervision_in_progress"]
)
def test_nobody_free_brings_the_receptionist_back(reason: str) -> None:
    """No answer, busy, 403 (scope_denied) and 409 (supervision_in_progress) all come back;
    the hold loop fills the wait for the reply and gives way to its first audio."""
    d = holding()
    d.advance(4.0)
    out = d.feed(e.HandoffProgress("nobody", reason))
    assert a.KILL_AUDIO not in out  # no silence while the model prepares its reply
    assert d.of(a.CreateResponse, out) == [
        a.CreateResponse(prompts.nobody_available_instructions(d.profile))
    ]
    assert d.core.state in (CallState.LISTENING, CallState.REPLYING)
    assert d.core.caller_frame()  # the caller is heard again
    asked = d.now
    d.advance(3.0)  # a slow model: the hold loop goes on
    assert_no_gap([t for item, t in frames_between(d, asked - 0.5, d.now) if item is None])
    d.feed(m.ResponseStarted("r5"))
    out = d.feed(m.AudioDelta("r5", "i5", b"\x00\x01" * 2400))
    assert a.KILL_AUDIO in out and a.ClearTimer(Timer.HOLD_REFILL) in out
    assert out.index(a.KILL_AUDIO) < out.index(a.KICK)  # the hold is cut before the reply
    came_back = d.now
    d.advance(10.0)
    assert Timer.HOLD_REFILL not in d.timers
    assert [f for f in frames_between(d, came_back + 0.1, d.now) if f[0] is None] == []
    assert [f for f in frames_between(d, came_back, d.now) if f[0] == "i5"]
    assert d.of(a.CloseSocket) == []
    _, _, _, metrics = d.core.final_record(d.now)
    assert (metrics["handoffs_connected"], metrics["handoffs_failed"]) == (0, 1)


def test_the_caller_speaking_while_the_receptionist_comes_back_stops_the_hold() -> None:
    d = holding()
    d.feed(e.HandoffProgress("nobody", "busy"))
    d.advance(1.0)
    out = d.feed(m.SpeechStarted("c9"))
    assert a.KILL_AUDIO in out and a.ClearTimer(Timer.HOLD_REFILL) in out
    spoke = d.now
    d.advance(5.0)
    assert [f for f in frames_between(d, spoke + 0.1, d.now) if f[0] is None] == []


def test_nobody_free_then_a_message_is_taken_and_read_back() -> None:
    d = holding()
    d.feed(e.HandoffProgress("nobody", "no_answer"))
    d.say("r5", "i5", 2500)  # "Nobody is free; may I take a message?"
    d.advance(3.0)
    d.caller_turn("Yes, I'm Wanjiru, 0712 345 678, please call me about the cleaning.")
    d.feed(m.ResponseStarted("r6"))
    out = d.feed(m.FunctionCall("r6", "call-7", "take_message", MESSAGE))
    assert out == [a.TakeMessage("call-7", MESSAGE)]
    assert d.core.state is not CallState.ENDING  # taking a message does not end the call
    result = {"saved": True, "message_id": "m1", "notified": True, "read_back": "..."}
    out = d.feed(e.MessageTaken("call-7", result))
    assert out == [a.SendFunctionOutput("call-7", result)]  # r6 still runs: no new response yet
    d.feed(m.ResponseDone("r6", "completed"))
    assert d.core.messages == [result]


def test_a_message_result_asks_for_a_response_when_none_runs() -> None:
    d = Driver()
    d.greeted()
    d.feed(m.FunctionCall("r2", "call-7", "take_message", MESSAGE))
    problems = {"saved": False, "problems": ["callback_number: not a phone number"]}
    out = d.feed(e.MessageTaken("call-7", problems))
    assert out == [a.SendFunctionOutput("call-7", problems), a.CreateResponse(None)]
    assert d.core.messages == []


def test_take_message_is_ignored_while_holding() -> None:
    d = holding()
    out = d.feed(m.FunctionCall("r9", "call-9", "take_message", MESSAGE))
    assert out == []


def test_the_person_leaves_and_a_new_model_session_takes_the_caller_back() -> None:
    d = holding()
    d.feed(e.HandoffProgress("connected", time_to_person_ms=4000))
    d.say("r4", "i4", 1000)
    d.advance(2.0)
    assert d.core.model_link is ModelLink.GONE
    d.advance(120.0)
    out = d.feed(e.HandoffProgress("person_left"))
    (reopen,) = d.of(a.ReopenModel, out)
    assert d.core.state is CallState.LISTENING and not d.core.caller_frame()
    # The new session is told the conversation before the transfer, as the caller heard it,
    # and the note the colleague was given.
    earlier = reopen.earlier
    greeting, asked = "You: Karibu, how can I help?", "Caller: Can I book a cleaning?"
    assert greeting in earlier and earlier.index(greeting) < earlier.index(asked)
    assert f"The colleague was told: {d.core.handoff['summary']}" in earlier
    d.feed(e.ModelConnected())
    out = d.feed(m.SessionReady())
    assert out == [a.CreateResponse(prompts.person_left_instructions(d.profile, earlier))]
    assert "Can I book a cleaning?" in out[0].instructions  # its first reply knows it too
    assert d.core.caller_frame()
    # The new session takes a moment to open and answer: the hold loop fills it, no silence.
    left = d.now
    d.advance(2.5)
    hold = [t for item, t in frames_between(d, left, d.now) if item is None]
    assert hold and hold[0] - left < 0.1
    assert_no_gap(hold)
    d.feed(m.ResponseStarted("r8"))
    out = d.feed(m.AudioDelta("r8", "i8", b"\x00\x01" * 2400))
    assert a.KILL_AUDIO in out
    back = d.now
    d.advance(3.0)
    assert [f for f in frames_between(d, back + 0.1, d.now) if f[0] is None] == []


def test_the_person_leaves_during_the_introduction() -> None:
    d = holding()
    d.feed(e.HandoffProgress("connected", time_to_person_ms=4000))
    out = d.feed(e.HandoffProgress("person_left"))
    (come_back,) = d.of(a.CreateResponse, out)
    assert come_back.instructions.startswith(prompts.person_left_instructions(d.profile))
    assert "Caller: Can I book a cleaning?" in come_back.instructions
    assert d.of(a.ReopenModel, out) == [] and d.core.model_link is ModelLink.OPEN


def test_a_model_lost_while_holding_ends_with_the_apology_when_nobody_comes() -> None:
    d = holding()
    d.feed(m.ModelClosed(1011, "gone"))
    assert d.core.state is CallState.HOLDING  # the hold goes on
    out = d.feed(e.HandoffProgress("nobody", "busy"))
    (write,) = d.of(a.WriteHandoff, out)
    assert write.handoff["reason"] == "model_unavailable" and not write.choose_path
    assert d.core.state is CallState.ENDING


def test_the_dial_path_closes_the_stream_as_before() -> None:
    d = Driver()
    d.greeted()
    d.feed(TRANSFER)
    d.feed(e.HandoffWritten(True, HandoffPath.DIAL))
    d.say("r3", "i3", 800)
    d.advance(2.0)
    assert d.of(a.StartSupervision) == []
    assert d.of(a.End) == [a.End(Outcome.TRANSFER)]


def test_failure_endings_never_choose_a_path() -> None:
    d = Driver()
    d.greeted()
    out = d.feed(m.ModelClosed(1011, "gone"))
    (write,) = d.of(a.WriteHandoff, out)
    assert not write.choose_path


def bridged(max_bridged_seconds: int) -> Driver:
    """A call whose person answered and heard the introduction; the model is closed."""
    d = holding(
        profile=make_profile(handoff=HandoffSettings(max_bridged_seconds=max_bridged_seconds))
    )
    assert d.profile.limits.max_call_seconds == 900  # shorter than the bridged limit
    d.feed(e.HandoffProgress("connected", time_to_person_ms=3000))
    d.say("r4", "i4", 1000)
    d.advance(2.0)
    assert d.core.model_link is ModelLink.GONE
    return d


def test_the_bridged_leg_is_hung_up_at_its_limit_not_at_the_receptionists() -> None:
    d = bridged(1200)
    connected_at = next(x.at for x in d.of(a.SetTimer) if x.timer is Timer.BRIDGED_LIMIT) - 1200
    d.advance_to(connected_at + 1199.0)  # past the receptionist's 900 s: they may talk on
    assert d.of(a.End) == [] and d.of(a.HangUpCall) == []
    assert d.core.state is CallState.BRIDGED
    mark = len(d.log)
    d.advance_to(connected_at + 1200.5)
    out = d.log[mark:]
    # The platform hangs the call up first (the person's leg with it), then the socket closes.
    assert d.of(a.HangUpCall, out) == [a.HangUpCall("bridged_limit")]
    assert out.index(a.HangUpCall("bridged_limit")) < out.index(a.CloseSocket(1000))
    assert a.STOP_SUPERVISION not in out  # the hang-up ends the supervision
    assert out[-1] == a.End(Outcome.MAX_DURATION)
    assert d.of(a.WriteHandoff, out) == []  # the supervised handoff is not overwritten
    outcome, media, _, _ = d.core.final_record(d.now)
    assert outcome is Outcome.MAX_DURATION and media["close"]["code"] == 1000


def test_the_person_leaving_clears_the_bridged_limit_and_restarts_the_receptionists() -> None:
    d = bridged(1200)
    d.advance(1000.0)  # longer than the receptionist's own 900 s
    out = d.feed(e.HandoffProgress("person_left"))
    assert a.ClearTimer(Timer.BRIDGED_LIMIT) in out and Timer.BRIDGED_LIMIT not in d.timers
    assert d.core.watchdog is not None and d.core.watchdog.started == d.now
    d.feed(e.ModelConnected())
    d.feed(m.SessionReady())
    d.say("r5", "i5", 1500)  # "My colleague has left; anything else?"
    left_at, mark = d.now, len(d.log)
    turn = 0
    while not d.of(a.WriteHandoff, d.log[mark:]):  # the caller keeps talking; it answers
        turn += 1
        d.advance(6.0)
        d.caller_turn(f"One more question, number {turn}.", item_id=f"c{turn}")
        d.say(f"r-{turn}", f"i-{turn}", 2000)
        assert d.now - left_at < 1000, "the receptionist's length limit never came"
    (write,) = d.of(a.WriteHandoff, d.log[mark:])
    # Its limit counted from when it took the caller back, not from the call's start.
    assert write.handoff["reason"] == "max_duration"
    assert d.now - left_at == pytest.approx(900, abs=10)


def transfer_before_the_transcript(d: Driver) -> None:
    """The caller asks; the model calls transfer_to_human before their words are transcribed."""
    d.greeted()
    d.caller_turn("Hello.", item_id="c0")
    d.feed(m.SpeechStarted("c1"))
    d.advance(1.5)
    d.feed(m.SpeechStopped("c1"))
    d.feed(m.ResponseStarted("r2"))
    d.feed(TRANSFER)
    d.feed(m.ResponseDone("r2", "completed"))
    d.feed(e.HandoffWritten(True, HandoffPath.SUPERVISE))
    assert "Saturday" not in d.core.handoff["summary"]


def test_late_caller_words_while_holding_reach_the_introduction_and_the_record() -> None:
    d = Driver()
    transfer_before_the_transcript(d)
    d.say("r3", "i3", 1200)
    assert d.core.state is CallState.HOLDING
    assert d.of(a.UpdateHandoffSummary) == []  # nothing new yet
    d.advance(2.0)
    out = d.feed(m.CallerTranscript("c1", "I need a cleaning on Saturday morning."))
    (update,) = d.of(a.UpdateHandoffSummary, out)
    assert update.summary.startswith("Wants a cleaning.")
    assert "I need a cleaning on Saturday morning." in update.summary
    assert d.core.handoff["summary"] == update.summary
    out = d.feed(e.HandoffProgress("connected", time_to_person_ms=5000))
    (introduction,) = d.of(a.CreateResponse, out)
    assert introduction == a.CreateResponse(
        prompts.introduction_instructions(d.profile, update.summary)
    )
    # Once the person is on the line the summary stays the one they were introduced with.
    assert d.of(a.UpdateHandoffSummary, d.feed(m.CallerTranscript("c9", "Thanks."))) == []


def test_late_caller_words_during_the_handoff_line_are_folded_in_when_holding_starts() -> None:
    d = Driver()
    transfer_before_the_transcript(d)
    d.feed(m.ResponseStarted("r3"))
    d.feed(m.CallerTranscript("c1", "It's about Saturday."))  # while the line is generated
    assert d.of(a.UpdateHandoffSummary) == [] and d.core.state is CallState.ENDING
    d.feed(m.AudioDelta("r3", "i3", bytes(1200 * 48)))
    d.feed(m.AudioDone("r3", "i3"))
    out = d.feed(m.ResponseDone("r3", "completed"))
    assert d.core.state is CallState.HOLDING
    (update,) = d.of(a.UpdateHandoffSummary, out)
    assert "It's about Saturday." in update.summary
    (start,) = d.of(a.StartSupervision, out)
    assert start.handoff["summary"] == update.summary
