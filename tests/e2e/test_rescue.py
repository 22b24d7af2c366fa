"""A transfer on a number where the platform never re-POSTs after the stream (the field finding):
with ``handoff.strategy: auto`` the Lambda side rescues the caller with a supervision, and the
number is remembered as one that needs ``supervise``."""

from __future__ import annotations

import pytest

from doubles.openai_realtime import FunctionCall, Reply, Script, Turn
from local.emulator.script import Say, WaitReply
from mapokezi.outcomes import call_outcome
from tests.e2e.harness import DEPARTMENTS, E2E, caller_wav, labels, scenario

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

SALES = "Can I speak to someone in sales please?"
RESCUE = scenario(
    "rescue",
    greeting="Karibu, how can I help?",
    script=Script(
        turns=[
            Turn(
                SALES,
                Reply(
                    function_call=FunctionCall(
                        "transfer_to_human",
                        {"reason": "The caller wants to pay an invoice", "department": "billing"},
                        follow_up=Reply("Connecting you to billing now."),
                    )
                ),
            )
        ]
    ),
    profile_changes={
        "handoff": {"strategy": "auto", "rescue_grace_seconds": 1},
        "dial_timeout_seconds": 15,
    },
)


async def test_no_re_post_ends_in_a_rescued_call(e2e: E2E) -> None:
    result = await e2e.call(
        RESCUE,
        [WaitReply(0.6), Say(caller_wav("sales"))],
        restream_post=False,
        person="answer",
        rescue_wait_seconds=20.0,
    )
    assert result.ok, result.errors
    assert "StreamStopped" not in labels(result)  # the platform never came back
    person = result.person
    assert person is not None and person["connected_after_s"] is not None, person
    assert [state for state, _ in person["states"]][-1] == "connected"
    record = result.call_record
    assert record is not None, result.warnings
    handoff = record["handoff"]
    assert handoff["path"] == "rescue" and handoff["target"] == DEPARTMENTS["billing"]
    assert handoff["state"] in ("connected", "ended"), handoff
    assert isinstance(handoff["time_to_person_ms"], int) and handoff["time_to_person_ms"] > 0
    states = [change["state"] for change in handoff["changes"]]
    assert states[:2] == ["pending", "requested"] and "connected" in states
    assert call_outcome(record) == "rescued"
    # The number is remembered: its next transfers supervise straight away.
    from mapokezi import store
    from mapokezi.config import dynamodb_table

    learned = store.platform_behaviour(dynamodb_table(e2e.info.env["CALLS_TABLE"]), RESCUE.number)
    assert learned is not None and learned["after_stream"] == "no_repost"
