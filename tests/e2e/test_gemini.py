"""Numbers answered by Gemini Live through the whole stack: a question at 16 kHz, and a
transfer at 8 kHz (the caller's audio upsampled to the model's 16 kHz, its 24 kHz audio
downsampled to the call's rate).

The profiles choose ``model: {provider: gemini}``; the node picks the Gemini adapter for them
and the OpenAI one for every other scenario's number, from one running stack.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

from doubles.gemini_live import LiveConnection
from doubles.openai_realtime import FunctionCall, Reply, Script, Turn
from local.emulator import CallResult
from local.emulator.script import Hangup, Say, WaitReply
from tests.e2e.harness import (
    DEPARTMENTS,
    E2E,
    FRAME_MS,
    HANDOFF_LINE,
    at_rate,
    caller_wav,
    found_in,
    frames_ms,
    played_ms,
    scenario,
    verbs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

GREETING = "Karibu, how can I help?"
QUESTION = "What time do you open on Saturday?"
ANSWER = "We open at nine on Saturday."
SALES = "Can I speak to someone about my invoice?"
CONNECTING = "Connecting you to billing now."
GEMINI = {"model": {"provider": "gemini", "voice": "Puck"}}

QUESTION_GEMINI = scenario(
    "gemini16k",
    greeting=GREETING,
    script=Script(turns=[Turn(QUESTION, Reply(ANSWER))]),
    profile_changes=GEMINI,
)
TRANSFER_GEMINI = scenario(
    "gemini8k",
    greeting=GREETING,
    sample_rate=8000,
    script=Script(
        turns=[
            Turn(
                SALES,
                Reply(
                    "",
                    function_call=FunctionCall(
                        "transfer_to_human",
                        {"reason": "Invoice question", "department": "billing"},
                        follow_up=Reply(CONNECTING),
                    ),
                ),
            )
        ]
    ),
    profile_changes=GEMINI,
)


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def calls(e2e: E2E) -> dict[str, tuple[CallResult, LiveConnection]]:
    """Both calls, placed at once, with their Gemini Live connections."""
    question = [
        WaitReply(0.6),
        Say(caller_wav("hello_saturday")),
        WaitReply(0.6, timeout_seconds=10),
        Hangup(),
    ]
    transfer = [WaitReply(0.6), Say(caller_wav("sales")), WaitReply(0.6, timeout_seconds=15)]
    items = [(QUESTION_GEMINI, question), (TRANSFER_GEMINI, transfer)]
    results = await asyncio.gather(*(e2e.call(item, steps) for item, steps in items))
    connections = await asyncio.gather(*(e2e.gemini_connection_for(item) for item, _ in items))
    for connection in connections:  # the node closes the model session when the call ends
        await connection.wait_for(lambda c: c.closed, timeout=10)
    return {
        item.number: (result, connection)
        for (item, _), result, connection in zip(items, results, connections, strict=True)
    }


def record_of(result: CallResult) -> dict[str, Any]:
    assert result.call_record is not None, result.warnings
    return result.call_record


async def test_gemini_number_answers_a_question(
    calls: dict[str, tuple[CallResult, LiveConnection]],
) -> None:
    result, live = calls[QUESTION_GEMINI.number]
    assert result.ok, result.errors
    media = result.media
    assert media is not None and media.rate == 16000

    # The node spoke Gemini Live to this number: its setup, voice and 16 kHz audio.
    assert live.setup["model"].startswith("models/gemini-")
    voice = live.setup["generationConfig"]["speechConfig"]["voiceConfig"]
    assert voice == {"prebuiltVoiceConfig": {"voiceName": "Puck"}}
    assert live.violation is None and live.input_audio_ms > 0
    assert [t.trigger.kind for t in live.turns] == ["greeting", "user_audio"]
    assert [t.status for t in live.turns] == ["completed", "completed"]

    # The caller heard all of the greeting and all of the answer.
    assert media.played_bytes == media.bytes_received
    replies = [turn.replies[0] for turn in live.turns]
    expected_ms = sum(frames_ms(reply.pcm(), 16000) for reply in replies)
    assert abs(played_ms(media) - expected_ms) <= 2 * FRAME_MS, (played_ms(media), expected_ms)
    for reply in replies:
        assert found_in(media.heard_pcm, at_rate(reply.pcm(), 16000), 16000) > 0.95
    assert media.stale_audio_bytes == 0 and media.kills == []

    record = record_of(result)
    assert record["media"]["outcome"] == "caller_hangup"
    assert [(t["role"], t["text"]) for t in record["transcript"]] == [
        ("agent", GREETING),
        ("caller", QUESTION),
        ("agent", ANSWER),
    ]
    assert record["metrics"]["usage"]["output_tokens"] > 0
    assert record["metrics"]["truncations"] == 0


async def test_gemini_number_transfers_at_8k(
    calls: dict[str, tuple[CallResult, LiveConnection]],
) -> None:
    result, live = calls[TRANSFER_GEMINI.number]
    assert result.ok, result.errors
    assert verbs(result) == ["Stream", "Say", "Dial"]
    assert result.verbs[1]["detail"] == HANDOFF_LINE
    assert result.handoff is not None and result.handoff["number"] == DEPARTMENTS["billing"]

    # The tool call was answered with its id and name, and the short line was heard.
    (response,) = live.tool_responses
    assert response["name"] == "transfer_to_human"
    assert response["id"] == live.turns[1].function_calls[0]["id"]
    assert response["response"]["result"]["status"] == "connecting"
    line = live.turns[1].replies[-1]
    assert line.text == CONNECTING
    assert result.media is not None and result.media.rate == 8000
    assert found_in(result.media.heard_pcm, at_rate(line.pcm(), 8000), 8000) > 0.95

    record = record_of(result)
    assert record["handoff"]["kind"] == "transfer"
    assert record["handoff"]["department"] == "billing"
    assert record["media"]["outcome"] == "transfer"
    assert record["media"]["sample_rate"] == 8000
