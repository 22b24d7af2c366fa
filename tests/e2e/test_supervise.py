"""Transfers on a number set to ``handoff.strategy: supervise``: the media node keeps the stream,
plays hold audio and rings the person in itself; when nobody comes the receptionist takes a
message, which is stored and published to the messages topic (moto SNS)."""

from __future__ import annotations

import pytest

from doubles.openai_realtime import FunctionCall, Reply, Script, Turn
from local.emulator.script import Hangup, Say, Silence, WaitReply
from mapokezi.outcomes import call_outcome
from tests.e2e.harness import DEPARTMENTS, E2E, caller_wav, scenario

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

SALES = "Can I speak to someone in sales please?"
MESSAGE = {
    "name": "Wanjiru",
    "callback_number": "this number",
    "message": "Please call me back about my invoice.",
    "urgency": "high",
}


def transfer_turn() -> Turn:
    call = FunctionCall(
        "transfer_to_human",
        {"reason": "The caller wants to pay an invoice", "department": "billing"},
        follow_up=Reply("Connecting you to billing now."),
    )
    return Turn(SALES, Reply(function_call=call))


SUPERVISE = scenario(
    "supervise",
    greeting="Karibu, how can I help?",
    script=Script(
        turns=[transfer_turn()], fallback=Reply("This caller would like to pay an invoice.")
    ),
    profile_changes={"handoff": {"strategy": "supervise"}, "dial_timeout_seconds": 15},
)
SUPERVISE_MESSAGE = scenario(
    "supervise-message",
    greeting="Karibu, how can I help?",
    script=Script(
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
        fallback=Reply("Nobody is free right now. May I take a message?"),
    ),
    profile_changes={"handoff": {"strategy": "supervise"}, "dial_timeout_seconds": 5},
)


async def test_supervise_connects_the_person_on_the_open_stream(e2e: E2E) -> None:
    result = await e2e.call(
        SUPERVISE,
        [WaitReply(0.6), Say(caller_wav("sales")), Silence(12.0), Hangup()],
        person="answer",
    )
    assert result.ok, result.errors
    assert result.media is not None and result.media.ended_by == "caller"
    record = result.call_record
    assert record is not None, result.warnings
    handoff = record["handoff"]
    assert handoff["path"] == "supervise" and handoff["target"] == DEPARTMENTS["billing"]
    # The node and the events function both record what they see: each state once or twice.
    states = [change["state"] for change in handoff["changes"]]
    firsts = [state for i, state in enumerate(states) if state not in states[:i]]
    assert firsts[:3] == ["requested", "ringing", "connected"], states
    assert isinstance(handoff["time_to_person_ms"], int) and handoff["time_to_person_ms"] > 0
    assert handoff["supervision_id"]
    assert record["metrics"]["handoffs_connected"] == 1
    assert call_outcome(record) == "transferred"
    # The emulated caller heard the person on the open stream (their recorded voice).
    person = result.person
    assert person is not None and person["connected_after_s"] is not None, person
    assert person["heard_seconds"] > 0
    assert [state for state, _ in person["states"]][-1] == "connected"


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
