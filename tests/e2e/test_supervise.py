"""Transfers on a number set to ``handoff.strategy: supervise``: the media node keeps the stream,
plays hold audio and rings the person in itself; when nobody comes the receptionist takes a
message, which is stored and published to the messages topic (moto SNS); when the person leaves
first the receptionist comes back; when the caller hangs up while the person's phone rings, the
supervision is removed.

Each scenario also checks what the caller heard (:mod:`tests.e2e.heard_audio`): the hold loop
while the person was rung, never more than a second of silence in the transfer, and the
person's recorded voice, mixed in by the emulated platform, after they answered.
"""

from __future__ import annotations

from typing import Any

import pytest

from doubles.openai_realtime import FunctionCall, RealtimeSession, Reply, Script, Turn
from local.emulator import CallResult
from local.emulator.script import Hangup, Say, Silence, WaitReply
from local.emulator.webhook import request_json
from mapokezi.outcomes import call_outcome
from media_node import prompts
from tests.e2e.harness import (
    DEPARTMENTS,
    E2E,
    MESSAGE,
    InstructedScript,
    at_rate,
    caller_wav,
    follows,
    scenario,
)
from tests.e2e.heard_audio import (
    MIXED_VOICE_SCORE,
    Found,
    assert_no_long_silence,
    assert_recording_heard,
    first_audio_after,
    heard_pcm,
    hold_loop,
    person_voice,
    slice_ms,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

SALES = "Can I speak to someone in sales please?"


def transfer_turn() -> Turn:
    call = FunctionCall(
        "transfer_to_human",
        {"reason": "The caller wants to pay an invoice", "department": "billing"},
        follow_up=Reply("Connecting you to billing now."),
    )
    return Turn(SALES, Reply(function_call=call))


#: What the receptionist says when the person answers (the script's reply to the introduction
#: request, which comes with no caller turn).
INTRODUCTION = "This caller would like to pay an invoice."
SUPERVISE = scenario(
    "supervise",
    greeting="Karibu, how can I help?",
    script=InstructedScript(turns=[transfer_turn()]),
    profile_changes={"handoff": {"strategy": "supervise"}, "dial_timeout_seconds": 15},
)
# The introduction's instructions end with the handoff summary: the part before it is the key.
follows(
    SUPERVISE, lambda profile: prompts.introduction_instructions(profile, ""), Reply(INTRODUCTION)
)
NOBODY_FREE = "Nobody is free right now. May I take a message?"
SUPERVISE_MESSAGE = scenario(
    "supervise-message",
    greeting="Karibu, how can I help?",
    script=InstructedScript(
        turns=[
            transfer_turn(),
            Turn(
                "Yes please take a message.",
                Reply(
                    function_call=FunctionCall(
                        "take_message", MESSAGE, follow_up=Reply("Your message is passed on.")
                    )
                ),
            ),
        ],
    ),
    profile_changes={"handoff": {"strategy": "supervise"}, "dial_timeout_seconds": 5},
)
follows(SUPERVISE_MESSAGE, prompts.nobody_available_instructions, Reply(NOBODY_FREE))
#: How long the person's phone rings before they answer: longer than the handoff line, so the
#: caller hears the hold loop for a while first.
PERSON_RINGS_SECONDS = 4.0
#: What the receptionist says when it comes back after the person left (the first reply of the
#: new model session, which has no caller turn yet).
COMEBACK = "Welcome back. Is there anything else I can help you with today?"
SUPERVISE_LEFT = scenario(
    "supervise-left",
    greeting="Karibu, how can I help?",
    script=InstructedScript(turns=[transfer_turn()]),
    profile_changes={"handoff": {"strategy": "supervise"}, "dial_timeout_seconds": 15},
)
follows(SUPERVISE_LEFT, prompts.person_left_instructions, Reply(COMEBACK))
SUPERVISE_HANGUP = scenario(
    "supervise-hangup",
    greeting="Karibu, how can I help?",
    script=Script(turns=[transfer_turn()]),
    profile_changes={"handoff": {"strategy": "supervise"}, "dial_timeout_seconds": 30},
)


def transfer_started_ms(result: CallResult) -> float:
    """When the caller first heard the receptionist after asking for a person (the handoff
    line): where the transfer starts for the caller. The request is the caller's first line."""
    assert result.media is not None
    asked = result.media.utterances[0]
    pcm, rate = heard_pcm(result)
    return first_audio_after(pcm, rate, asked["end_ms"])


def assert_held_then_person(result: CallResult) -> tuple[float, Found]:
    """Hold audio after the handoff line, then the person's voice, with no silence over a second
    from the line to the end of the person's voice. Returns the transfer's start and the voice."""
    pcm, rate = heard_pcm(result)
    started = transfer_started_ms(result)
    voice = person_voice(rate)
    person = assert_recording_heard(pcm, rate, voice, "the person's voice", MIXED_VOICE_SCORE)
    assert person.start_ms > started
    hold = slice_ms(pcm, rate, started, person.start_ms)
    assert_recording_heard(hold, rate, hold_loop(rate), "the hold loop before the person")
    assert_no_long_silence(pcm, rate, started, person.start_ms + len(voice) / rate * 1000)
    return started, person


def supervision_log(e2e: E2E, result: CallResult) -> list[dict[str, Any]]:
    """The Sautikit double's log of this call's supervision requests."""
    return e2e.stack.request("supervision_requests", result.call.call_id, result.call.session_id)


async def sessions_of(e2e: E2E, business: str, count: int) -> list[RealtimeSession]:
    """The first ``count`` model sessions of ``business``, in the order they opened."""

    def found(double: Any) -> list[RealtimeSession] | None:
        mine = [s for s in double.sessions if e2e.model.business_of(s) == business]
        return mine if len(mine) >= count else None

    return await e2e.double.wait_for(found, 10.0)


async def test_supervise_connects_the_person_on_the_open_stream(e2e: E2E) -> None:
    result = await e2e.call(
        SUPERVISE,
        [WaitReply(0.6), Say(caller_wav("sales")), Silence(14.0), Hangup()],
        person="answer",
        person_answer_seconds=PERSON_RINGS_SECONDS,
    )
    assert result.ok, result.errors
    assert result.media is not None and result.media.ended_by == "caller"
    record = result.call_record
    assert record is not None, result.warnings
    handoff = record["handoff"]
    assert handoff["path"] == "supervise" and handoff["target"] == DEPARTMENTS["billing"]
    # The node and the events function both report what they see; each state is recorded once.
    states = [change["state"] for change in handoff["changes"]]
    assert states[:3] == ["requested", "ringing", "connected"], states
    assert len(states) == len(set(states)), states
    assert isinstance(handoff["time_to_person_ms"], int) and handoff["time_to_person_ms"] > 0
    assert handoff["supervision_id"]
    assert record["metrics"]["handoffs_connected"] == 1
    assert call_outcome(record) == "transferred"
    # The emulated caller heard the person on the open stream (their recorded voice).
    person = result.person
    assert person is not None and person["connected_after_s"] is not None, person
    assert person["heard_seconds"] > 0
    assert [state for state, _ in person["states"]][-1] == "connected"
    _, voice = assert_held_then_person(result)
    # The receptionist's one-sentence introduction, heard with the person's voice over it.
    (session,) = await sessions_of(e2e, SUPERVISE.business_name, 1)
    (intro,) = [r.reply for r in session.responses if r.reply.text == INTRODUCTION]
    pcm, rate = heard_pcm(result)
    said = assert_recording_heard(
        pcm, rate, at_rate(intro.pcm(), rate), "the introduction", MIXED_VOICE_SCORE
    )
    assert said.start_ms >= voice.start_ms - 1000  # after the person answered, not before


async def test_supervise_nobody_answers_and_a_message_is_taken(e2e: E2E) -> None:
    result = await e2e.call(
        SUPERVISE_MESSAGE,
        [
            WaitReply(0.6),
            Say(caller_wav("sales")),
            WaitReply(1.0, timeout_seconds=30.0),  # the line, hold audio, then "nobody is free"
            Say(caller_wav("sales")),  # "yes, take a message"
            WaitReply(1.0),
            Hangup(),
        ],
        person="no-answer",
        person_ring_seconds=60.0,
    )
    assert result.ok, result.errors
    record = result.call_record
    assert record is not None, result.warnings
    handoff = record["handoff"]
    assert handoff["path"] == "supervise" and handoff["state"] == "no_answer", handoff
    assert handoff["changes"][-1]["reason"] == "ring_timeout"
    session = await e2e.session_for(SUPERVISE_MESSAGE)
    (taken,) = [o.json() for o in session.function_outputs if "saved" in o.json()]
    assert taken["saved"] is True and taken["notified"] is True  # stored and published
    assert record["metrics"]["handoffs_failed"] == 1
    # The caller heard the hold loop while the phone rang and never sat in silence until the
    # receptionist came back to say nobody is free.
    pcm, rate = heard_pcm(result)
    started = transfer_started_ms(result)
    (said,) = [r.reply for r in session.responses if r.reply.text == NOBODY_FREE]
    nobody = at_rate(said.pcm(), rate)
    back = assert_recording_heard(pcm, rate, nobody, "'nobody is free'")
    assert back.start_ms > started
    held = slice_ms(pcm, rate, started, back.start_ms)
    assert_recording_heard(held, rate, hold_loop(rate), "the hold loop while ringing")
    assert_no_long_silence(pcm, rate, started, back.start_ms + len(nobody) / rate * 1000)


async def test_supervise_person_leaves_first_and_the_receptionist_comes_back(e2e: E2E) -> None:
    result = await e2e.call(
        SUPERVISE_LEFT,
        [
            WaitReply(0.6),
            Say(caller_wav("sales")),
            # Hold, the person, then the receptionist back: quiet for 3 s only once it is over.
            WaitReply(3.0, timeout_seconds=40.0),
            Hangup(),
        ],
        person="hang-up-first",
        person_answer_seconds=PERSON_RINGS_SECONDS,
    )
    assert result.ok, result.errors
    assert result.media is not None and result.media.ended_by == "caller"
    person = result.person
    assert person is not None and person["connected_after_s"] is not None, person
    assert [state for state, _ in person["states"]][-2:] == ["connected", "ended"], person

    # What the caller heard: hold, the person, then the receptionist of a new model session.
    started, voice = assert_held_then_person(result)
    first, second = await sessions_of(e2e, SUPERVISE_LEFT.business_name, 2)
    assert first.closed  # closed once the person was connected and introduced
    assert second.responses and second.responses[0].reply.text == COMEBACK
    pcm, rate = heard_pcm(result)
    comeback = at_rate(second.responses[0].reply.pcm(), rate)
    back = assert_recording_heard(pcm, rate, comeback, "the receptionist coming back")
    voice_end = voice.start_ms + len(person_voice(rate)) / rate * 1000
    assert back.start_ms >= voice_end  # after the person's voice, not over it
    # No silence over a second from the person's voice to the end of the receptionist's line:
    # the node learns that the person left from its next poll of the supervision (at most
    # SupervisionPolicy.connected_poll later) and the hold loop fills the wait for the new
    # session's first reply.
    assert_no_long_silence(pcm, rate, voice.start_ms, back.start_ms + len(comeback) / rate * 1000)

    # The record: connected, then the person left; the call ended cleanly when the caller hung up.
    record = result.call_record
    assert record is not None, result.warnings
    handoff = record["handoff"]
    assert handoff["path"] == "supervise"
    states = [change["state"] for change in handoff["changes"]]
    assert "connected" in states and states[-1] == "ended", states
    assert record["metrics"]["handoffs_connected"] == 1
    assert record["status"] == "ended"
    assert [r["method"] for r in supervision_log(e2e, result)].count("POST") == 1


async def test_supervise_caller_hangs_up_while_the_person_is_rung(e2e: E2E) -> None:
    result = await e2e.call(
        SUPERVISE_HANGUP,
        [WaitReply(0.6), Say(caller_wav("sales")), Silence(5.0), Hangup()],
        person="no-answer",
        person_ring_seconds=60.0,
    )
    assert result.ok, result.errors
    assert result.media is not None and result.media.ended_by == "caller"
    # The supervision was asked for once and removed once the caller had gone.
    log = supervision_log(e2e, result)
    methods = [r["method"] for r in log]
    assert methods.count("POST") == 1 and "DELETE" in methods, methods
    assert methods.index("POST") < methods.index("DELETE")
    person = result.person
    assert person is not None and "ringing" in [state for state, _ in person["states"]], person
    # Nothing is left ringing: the double ended the supervisor's leg.
    status, body = await request_json(
        "GET", f"{e2e.info.sautikit_url}/_double/calls/{result.call.call_id}/supervision"
    )
    assert status == 200 and body["supervision"]["state"] == "ended", body
    assert body["supervision"]["failure_reason"] == "cancelled"
    record = result.call_record
    assert record is not None, result.warnings
    handoff = record["handoff"]
    assert handoff["path"] == "supervise"
    states = [change["state"] for change in handoff["changes"]]
    assert "ringing" in states and "connected" not in states, states
    assert handoff["state"] in ("ended", "failed"), handoff
    # Until the hang-up the caller heard the hold loop, never silence.
    pcm, rate = heard_pcm(result)
    started = transfer_started_ms(result)
    assert_recording_heard(slice_ms(pcm, rate, started), rate, hold_loop(rate), "the hold loop")
    assert_no_long_silence(pcm, rate, started, result.media.duration_ms)
