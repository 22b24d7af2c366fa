"""Numbers answered by Gemini Live through the whole stack: a question at 16 kHz, a transfer
at 8 kHz (the caller's audio upsampled to the model's 16 kHz, its 24 kHz audio downsampled to
the call's rate), and a message taken (stored on the call, listed for the number, published to
the messages topic).

The profiles choose ``model: {provider: gemini}``; the node picks the Gemini adapter for them
and the OpenAI one for every other scenario's number, from one running stack.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
import pytest_asyncio

from doubles.gemini_live import LiveConnection
from doubles.openai_realtime import FunctionCall, Reply, Script, Turn
from local.emulator import CallResult
from local.emulator.script import Hangup, Say, WaitReply
from mapokezi import config
from mapokezi.outcomes import call_outcome
from mapokezi_cli.main import main as cli
from tests.e2e.harness import (
    ANSWER,
    DEPARTMENTS,
    E2E,
    FRAME_MS,
    HANDOFF_LINE,
    MESSAGE,
    QUESTION,
    ask_and_leave,
    at_rate,
    caller_wav,
    found_in,
    frames_ms,
    played_ms,
    record_of,
    scenario,
    verbs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

GREETING = "Karibu, how can I help?"
SALES = "Can I speak to someone about my invoice?"
CONNECTING = "Connecting you to billing now."
GEMINI = {"model": {"provider": "gemini", "voice": "Puck"}}
LEAVE_MESSAGE = "Can I leave a message for the billing office?"
PASSED_ON = "Thank you, Wanjiru. Your message is passed on."

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
MESSAGE_GEMINI = scenario(
    "gemini-message",
    greeting=GREETING,
    script=Script(
        turns=[
            Turn(
                LEAVE_MESSAGE,
                Reply(
                    "",
                    function_call=FunctionCall("take_message", MESSAGE, follow_up=Reply(PASSED_ON)),
                ),
            )
        ]
    ),
    profile_changes=GEMINI,
)


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def calls(e2e: E2E) -> dict[str, tuple[CallResult, LiveConnection]]:
    """Every call of the module, placed at once, with their Gemini Live connections."""
    question = ask_and_leave()
    transfer = [WaitReply(0.6), Say(caller_wav("sales")), WaitReply(0.6, timeout_seconds=15)]
    message = [
        WaitReply(0.6),
        Say(caller_wav("sales")),
        WaitReply(0.6, timeout_seconds=15),
        Hangup(),
    ]
    items = [(QUESTION_GEMINI, question), (TRANSFER_GEMINI, transfer), (MESSAGE_GEMINI, message)]
    results = await asyncio.gather(*(e2e.call(item, steps) for item, steps in items))
    connections = await asyncio.gather(*(e2e.gemini_connection_for(item) for item, _ in items))
    for connection in connections:  # the node closes the model session when the call ends
        await connection.wait_for(lambda c: c.closed, timeout=10)
    return {
        item.number: (result, connection)
        for (item, _), result, connection in zip(items, results, connections, strict=True)
    }


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


async def published(e2e: E2E, message_id: str, limit_s: float = 15.0) -> list[dict[str, Any]]:
    """The notifications about `message_id` the stack's inbox has received (waits for one)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        notices = await asyncio.to_thread(e2e.stack.request, "notifications")
        found = [n for n in notices if message_id in n.get("Message", "")]
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_gemini_number_takes_a_message(
    calls: dict[str, tuple[CallResult, LiveConnection]], e2e: E2E
) -> None:
    result, live = calls[MESSAGE_GEMINI.number]
    assert result.ok, result.errors
    assert verbs(result) == ["Stream"]

    # The node answered the tool call with its id and name: stored and published.
    (response,) = live.tool_responses
    assert response["name"] == "take_message"
    assert response["id"] == live.turns[1].function_calls[0]["id"]
    output = response["response"]["result"]
    assert output["saved"] is True and output["notified"] is True, output
    message_id = output["message_id"]
    line = live.turns[1].replies[-1]
    assert line.text == PASSED_ON
    assert result.media is not None
    assert found_in(result.media.heard_pcm, at_rate(line.pcm(), 16000), 16000) > 0.95

    # On the call record, with "this number" resolved to the caller's number.
    record = record_of(result)
    message = record["message"]
    assert message["message_id"] == message_id
    assert {k: message[k] for k in ("name", "message", "urgency")} == {
        k: MESSAGE[k] for k in ("name", "message", "urgency")
    }
    assert message["callback_number"] == message["caller"] == record["from"]
    assert message["to"] == MESSAGE_GEMINI.number
    assert message["call_id"] == record["call_id"]
    assert call_outcome(record) == "message_taken"
    last = record["transcript"][-1]
    assert (last["role"], last["text"]) == ("agent", PASSED_ON)

    # Listed for the number it was left for, as the operator lists them.
    config.reset_aws_clients()  # this process's clients may point at another endpoint
    out = io.StringIO()
    assert cli(["messages", "list", "--number", MESSAGE_GEMINI.number, "--json"], out) == 0
    listed = json.loads(out.getvalue())["messages"]
    assert [(m["message_id"], m["state"]) for m in listed] == [(message_id, "open")]

    # Published to the messages topic: the stack's subscribed inbox got the notification.
    (notice,) = await published(e2e, message_id)
    assert notice["Subject"] == f"Message from Wanjiru for {MESSAGE_GEMINI.number}"
    assert "Please call me back about my invoice." in notice["Message"]
