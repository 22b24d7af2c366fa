"""How calls leave the receptionist: a transfer to a department, end_call, a dropped model
connection, and the CDR fetched after the hangup.

The three calls run at once. Each ends on the media node's side: the node writes the handoff,
lets a last line play, closes the model session and the media socket; the emulated platform then
re-POSTs ``StreamStopped`` and runs what the webhook answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from local.emulator import CallResult
from local.emulator.script import Say, WaitReply
from media_node.assets import APOLOGY, load_line
from tests.doubles.openai_realtime import FunctionCall, RealtimeSession, Reply, Script, Turn
from tests.e2e.harness import (
    DEPARTMENTS,
    E2E,
    FRAME_MS,
    FRONT_DESK,
    HANDOFF_LINE,
    SCENARIOS,
    at_rate,
    audio_ms,
    best_match,
    caller_wav,
    heard_between,
    labels,
    pcm_array,
    rms,
    scenario,
    segment_ms,
    verbs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

GREETING = "Karibu, how can I help?"
LONG_GREETING = (
    "Karibu to the clinic, we are open six days a week and we are always happy to help you."
)
SALES = "Can I speak to someone in sales please?"
TRANSFER_REASON = "The caller wants to talk about an invoice"
CONNECTING = "Connecting you to billing now."
GOODBYE = "Thank you, goodbye."
FAREWELL = "Goodbye, have a lovely day."
#: The synthetic voice ends a sentence with up to 60 ms of quiet; playout runs in 20 ms ticks.
HEARD_TOLERANCE_MS = 60 + 2 * FRAME_MS
RATE = 16000
#: Peak level above which the emulator counts a playout tick as heard.
AUDIBLE_LEVEL = 64

TRANSFER = scenario(
    "transfer",
    greeting=GREETING,
    script=Script(
        turns=[
            Turn(
                SALES,
                Reply(
                    function_call=FunctionCall(
                        "transfer_to_human",
                        {"reason": TRANSFER_REASON, "department": "billing"},
                        follow_up=Reply(CONNECTING),
                    )
                ),
            )
        ]
    ),
)
END_CALL = scenario(
    "endcall",
    greeting=GREETING,
    script=Script(
        turns=[
            Turn(
                GOODBYE,
                Reply(
                    function_call=FunctionCall(
                        "end_call", {"reason": "The caller said goodbye"}, follow_up=Reply(FAREWELL)
                    )
                ),
            )
        ]
    ),
)
MODEL_DROP = scenario("modeldrop", greeting=LONG_GREETING, script=Script())


async def drop_model_mid_greeting(e2e: E2E) -> RealtimeSession:
    """Cut the model's connection (no close frame) once the greeting is out and playing."""
    session = await e2e.session_for(MODEL_DROP)
    await session.wait_for(lambda s: s.responses and s.responses[0].status == "completed", 10)
    session.drop()
    return session


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def calls(e2e: E2E) -> dict[str, tuple[CallResult, RealtimeSession]]:
    """The three calls, placed concurrently, with their model sessions."""
    transfer, end_call, dropped, dropped_session = await asyncio.gather(
        e2e.call(TRANSFER, [WaitReply(0.6), Say(caller_wav("sales"))]),
        e2e.call(END_CALL, [WaitReply(0.6), Say(caller_wav("goodbye"))]),
        e2e.call(MODEL_DROP, []),
        drop_model_mid_greeting(e2e),
    )
    return {
        TRANSFER.number: (transfer, await e2e.session_for(TRANSFER)),
        END_CALL.number: (end_call, await e2e.session_for(END_CALL)),
        MODEL_DROP.number: (dropped, dropped_session),
    }


def record_of(result: CallResult) -> dict[str, Any]:
    assert result.call_record is not None, result.warnings
    return result.call_record


def event_time(record: dict[str, Any], **match: str) -> str:
    """``received_at`` of the one stored webhook event with these fields."""
    found = [
        e["received_at"]
        for e in record["events"]
        if all(e.get(key) == value for key, value in match.items())
    ]
    assert len(found) == 1, (match, record["events"])
    return found[0]


def line_onset_ms(result: CallResult, line: np.ndarray) -> float:
    """Where ``line`` (at the call's rate) starts in what the caller heard; it must be there.

    Only the line's head is looked for: its tail may have been cut when the socket closed.
    """
    media = result.media
    assert media is not None
    head = line[: len(line) - int(0.3 * media.playback_rate)]
    offset, score = best_match(media.heard_pcm, head)
    assert score > 0.9, "the line is not in what the caller heard"
    return offset / media.playback_rate * 1000


def assert_last_line_heard(result: CallResult, line: np.ndarray) -> None:
    """The last thing the caller heard is ``line``, up to whatever the close cut off.

    What was still in the phone's playout buffer when the socket closed is not heard; the test
    below checks that nothing was.
    """
    media = result.media
    assert media is not None
    rate = media.playback_rate
    onset = line_onset_ms(result, line)
    unheard_ms = media.unheard_at_close_bytes / (rate * 2) * 1000
    audible = np.flatnonzero(np.abs(line) > AUDIBLE_LEVEL)
    audible_end_ms = (audible[-1] + 1) / rate * 1000
    expected_end = onset + min(audible_end_ms, len(line) / rate * 1000 - unheard_ms)
    assert abs(media.heard_segments[-1][1] - expected_end) <= 2 * FRAME_MS


async def test_transfer_dials_the_requested_department(
    calls: dict[str, tuple[CallResult, RealtimeSession]],
) -> None:
    result, session = calls[TRANSFER.number]
    assert result.ok, result.errors
    billing = DEPARTMENTS["billing"]

    # The platform: stream, then (after StreamStopped) the handoff line and a dial to billing.
    assert verbs(result) == ["Stream", "Say", "Dial"]
    assert result.verbs[1]["detail"] == HANDOFF_LINE
    assert result.handoff is not None and result.handoff["number"] == billing
    assert result.handoff["callerId"] == "+254700000100"  # the profile's caller_id
    assert labels(result) == [
        "initial",
        "stream-started",
        "stream-stopped",
        "StreamStopped",
        "DialCompleted",
        "Completed",
    ]
    assert result.media is not None and result.media.ended_by == "server"

    # The model was told the transfer is under way and spoke its short line, heard in full.
    assert [o.json().get("status") for o in session.function_outputs] == ["connecting"]
    assert_last_line_heard(result, at_rate(session.responses[-1].reply.pcm(), RATE))
    assert session.responses[-1].reply.text == CONNECTING
    assert session.closed

    # The call record: the handoff, written before the stream stopped, then dialled.
    record = record_of(result)
    handoff = record["handoff"]
    assert handoff["kind"] == "transfer"
    assert handoff["target"] == billing and handoff["department"] == "billing"
    assert handoff["reason"] == TRANSFER_REASON
    assert handoff["summary"].startswith(TRANSFER_REASON)
    assert handoff["state"] == "dialled"
    stopped_at = event_time(record, source="voice", callSessionState="StreamStopped")
    assert handoff["requested_at"] <= stopped_at <= handoff["dialled_at"]
    assert record["media"]["outcome"] == "transfer"
    assert [t["role"] for t in record["transcript"]] == ["agent", "caller", "agent"]
    assert record["transcript"][-1]["text"] == CONNECTING


async def test_end_call_hangs_up(calls: dict[str, tuple[CallResult, RealtimeSession]]) -> None:
    result, session = calls[END_CALL.number]
    assert result.ok, result.errors
    assert verbs(result) == ["Stream", "Hangup"]
    assert result.handoff is None  # nothing was dialled
    assert [o.json().get("status") for o in session.function_outputs] == ["ending"]
    assert_last_line_heard(result, at_rate(session.responses[-1].reply.pcm(), RATE))

    record = record_of(result)
    assert record["handoff"]["kind"] == "hangup"
    assert record["handoff"]["state"] == "dialled"
    assert "target" not in record["handoff"]
    assert record["media"]["outcome"] == "hangup"
    assert record["transcript"][-1]["text"] == FAREWELL
    assert record["status"] == "ended"


async def test_model_drop_apologises_and_transfers_to_the_front_desk(
    calls: dict[str, tuple[CallResult, RealtimeSession]],
) -> None:
    result, session = calls[MODEL_DROP.number]
    media = result.media
    assert media is not None
    assert session.closed

    # The greeting still playing was cut by killAudio, and the pre-rendered apology followed at
    # once. The emulator counts audio arriving just after a kill as left over from the killed
    # reply (it cannot tell a line played on purpose), so that is the only error it may report;
    # the audio below shows what it really was.
    assert all("after killAudio" in error for error in result.errors), result.errors
    assert len(media.kills) == 1
    kill = media.kills[0]
    greeting_heard = segment_ms(media.heard_segments[0])
    assert greeting_heard < audio_ms(session.responses[0].reply.pcm()) - 500
    apology = pcm_array(load_line(APOLOGY, media.playback_rate))
    apology_onset_ms = line_onset_ms(result, apology)
    assert apology_onset_ms > kill.at_ms
    # ... and it is the first thing heard after the kill: no greeting audio in between.
    assert rms(heard_between(result, kill.at_ms + 2 * FRAME_MS, apology_onset_ms)) == 0.0
    assert_last_line_heard(result, apology)

    # The platform then dials the front desk.
    assert verbs(result) == ["Stream", "Say", "Dial"]
    assert result.handoff is not None and result.handoff["number"] == FRONT_DESK
    record = record_of(result)
    assert record["handoff"]["reason"] == "model_unavailable"
    assert record["handoff"]["target"] == FRONT_DESK
    assert record["handoff"]["state"] == "dialled"
    assert record["media"]["outcome"] == "failed"


@pytest.mark.parametrize("key", ["transfer", "endcall", "modeldrop"])
async def test_last_line_plays_to_the_end_before_the_socket_closes(
    calls: dict[str, tuple[CallResult, RealtimeSession]], key: str
) -> None:
    result, _ = calls[SCENARIOS[key].number]
    assert result.media is not None
    assert result.media.unheard_at_close_bytes == 0


async def test_completed_call_gets_its_cdr_with_cost(
    e2e: E2E, calls: dict[str, tuple[CallResult, RealtimeSession]]
) -> None:
    result, _ = calls[TRANSFER.number]
    record = record_of(result)
    cdr = record["cdr"]
    platform = e2e.stack.request("platform_call", result.call.call_id)
    assert platform is not None
    assert cdr["fetch_state"] == "done"
    assert cdr["status"] == "completed"
    assert cdr["platform_call_id"] == result.call.call_id
    assert cdr["duration_seconds"] == result.duration_seconds > 0
    assert cdr["cost_currency"] == "KES"
    # The stored cost is the platform's, billed leg and dialled leg together.
    assert cdr["cost_minor"] == platform["cost_minor"] > 0
    assert record["status"] == "ended" and record["ended_at"]
