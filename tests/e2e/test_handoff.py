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

from doubles.openai_realtime import FunctionCall, RealtimeSession, Reply, Script, Turn
from local.emulator import CallResult
from local.emulator.script import Say, WaitReply
from media_node.assets import APOLOGY, load_line
from tests.e2e.harness import (
    DEPARTMENTS,
    E2E,
    FRAME_MS,
    FRONT_DESK,
    HANDOFF_LINE,
    at_rate,
    audio_ms,
    best_match,
    caller_wav,
    found_in,
    heard_between,
    labels,
    pcm_array,
    played_ms,
    record_of,
    scenario,
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


def event_time(record: dict[str, Any], **match: str) -> str:
    """``received_at`` of the one stored webhook event with these fields."""
    found = [
        e["received_at"]
        for e in record["events"]
        if all(e.get(key) == value for key, value in match.items())
    ]
    assert len(found) == 1, (match, record["events"])
    return found[0]


def first_heard_after(result: CallResult, at_ms: float) -> bytes:
    """200 ms of what the caller heard from the first audible moment after ``at_ms``.

    The playout tick under way at ``at_ms`` still plays; the search starts at the next one.
    """
    media = result.media
    assert media is not None
    next_tick = np.ceil(at_ms / FRAME_MS) * FRAME_MS
    after = pcm_array(heard_between(result, next_tick, media.duration_ms))
    audible = np.flatnonzero(np.abs(after) > AUDIBLE_LEVEL)
    assert len(audible), "nothing was heard"
    start = int(audible[0])
    return after[start : start + int(0.2 * media.playback_rate)].astype("<i2").tobytes()


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
    line = at_rate(session.responses[-1].reply.pcm(), RATE)
    assert found_in(result.media.heard_pcm, line, RATE) > 0.95
    assert session.responses[-1].reply.text == CONNECTING
    assert session.closed

    # The call record: the handoff, written before the stream stopped, then dialled.
    record = record_of(result)
    handoff = record["handoff"]
    assert handoff["kind"] == "transfer"
    assert handoff["target"] == billing and handoff["department"] == "billing"
    assert handoff["reason"] == TRANSFER_REASON
    assert handoff["summary"].startswith(TRANSFER_REASON)
    # The caller's words are transcribed after the tool call; the summary still carries them.
    assert f'Caller said: "{SALES}"' in handoff["summary"]
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
    assert result.media is not None
    line = at_rate(session.responses[-1].reply.pcm(), RATE)
    assert found_in(result.media.heard_pcm, line, RATE) > 0.95

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
    # once: a new line after a kill with the caller silent, not a leftover of the greeting, so
    # a correct failover is a clean call.
    assert result.ok, result.errors
    assert len(media.kills) == 1 and media.line_changes == 1
    assert media.stale_audio_bytes == 0
    kill = media.kills[0]
    apology = pcm_array(load_line(APOLOGY, media.playback_rate))
    unheard_ms = media.unheard_at_close_bytes / (RATE * 2) * 1000
    greeting_heard = played_ms(media) - (len(apology) / RATE * 1000 - unheard_ms)
    assert 0 < greeting_heard < audio_ms(session.responses[0].reply.pcm()) - 500
    assert found_in(media.heard_pcm, apology, RATE) > 0.95
    # ... and the first thing heard after the kill is the apology's opening, not the greeting.
    opening = np.flatnonzero(np.abs(apology) > AUDIBLE_LEVEL)[0]
    offset, score = best_match(
        apology.astype("<i2").tobytes(), pcm_array(first_heard_after(result, kill.at_ms))
    )
    assert score > 0.9 and abs(offset - opening) <= RATE * FRAME_MS / 1000

    # The platform then dials the front desk.
    assert verbs(result) == ["Stream", "Say", "Dial"]
    assert result.handoff is not None and result.handoff["number"] == FRONT_DESK
    record = record_of(result)
    assert record["handoff"]["reason"] == "model_unavailable"
    assert record["handoff"]["target"] == FRONT_DESK
    assert record["handoff"]["state"] == "dialled"
    assert record["media"]["outcome"] == "failed"


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
