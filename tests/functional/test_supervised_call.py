"""A supervised transfer on real sockets: the media socket, the OpenAI double, the REST double."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from doubles.openai_realtime import FunctionCall, Reply, Script, Turn
from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble
from mapokezi import messages, store
from media_node.assets import load_hold
from tests.functional.test_call_session import CALL_ID, make_harness  # noqa: F401

pytestmark = pytest.mark.asyncio

INTRODUCTION = "This caller would like to book a cleaning."
NOBODY_FREE = "Nobody is free right now. May I take a message?"
MAX_GAP_S = 1.0
MESSAGE = {
    "name": "Wanjiru",
    "callback_number": "this number",
    "message": "Please call me about booking a cleaning.",
    "urgency": "normal",
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[SautikitApiDouble]:
    with SautikitApiDouble() as double:
        double.register_call(call_id=CALL_ID, answered_at="2026-11-29T10:00:00Z")
        monkeypatch.setenv("SAUTIKIT_API_URL", double.url)
        monkeypatch.setenv("SAUTIKIT_API_KEY", DEFAULT_API_KEY)
        yield double


class SuperviseScript(Script):
    """Says the introduction when asked for it (its instructions say a colleague joined)."""

    def respond(self, state: Any, trigger: Any) -> Reply:
        if "colleague has just joined" in (trigger.instructions or ""):
            return Reply(INTRODUCTION)
        if "nobody is free" in (trigger.instructions or ""):
            return Reply(NOBODY_FREE)
        return super().respond(state, trigger)


def supervise_script() -> Script:
    call = FunctionCall(
        "transfer_to_human",
        {"reason": "Wants to book a cleaning", "department": "appointments"},
        follow_up=Reply("Connecting you now."),
    )
    take = FunctionCall("take_message", MESSAGE, follow_up=Reply("Your message is passed on."))
    return SuperviseScript(
        turns=(
            Turn("Can I book a cleaning?", Reply("", function_call=call)),
            Turn("Yes, take a message.", Reply("", function_call=take)),
        )
    )


async def test_supervise_holds_then_bridges_and_keeps_the_socket(
    make_harness: Any,  # noqa: F811
    api: SautikitApiDouble,
) -> None:
    api.supervision.set_person(ring_after=0.2, answer_after=3.0, ring_timeout=30)
    h = await make_harness(supervise_script())
    h.profile = dataclasses.replace(
        h.profile, handoff=dataclasses.replace(h.profile.handoff, strategy="supervise")
    )
    caller = await h.call()
    arrivals: list[tuple[float, int]] = []  # (when, bytes received before the frame)
    caller.on_frame = lambda c: arrivals.append((time.monotonic(), len(c.audio)))
    await caller.quiet_after_audio()
    await caller.say("transfer_yes")
    session = h.double.sessions[0]

    def handoff() -> dict[str, Any]:
        return (store.get_call(h.table, CALL_ID) or {}).get("handoff") or {}

    async with asyncio.timeout(20):
        await session.wait_for(lambda s: s.closed, timeout=15)
    # The caller heard the hold loop while the person was rung, with no silence worth the name.
    hold = load_hold(h.profile.audio.sample_rate)
    assert hold[8000:9600] in bytes(caller.audio)
    first_hold = bytes(caller.audio).find(hold[:640])
    assert first_hold > 0
    # From the end of the handoff line to the killAudio that stopped the hold loop.
    hold_stopped = caller.kill_at_bytes[-1]
    assert hold_stopped - first_hold >= 2 * 32000  # over two seconds of hold audio
    times = [at for at, offset in arrivals if first_hold - 16000 <= offset < hold_stopped]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps and max(gaps) < MAX_GAP_S, max(gaps)
    # The introduction was said (both hear it), then the model session closed; the socket stays.
    transcripts = [r.transcript for r in session.responses]
    assert transcripts[-2:] == ["Connecting you now.", INTRODUCTION]
    assert "Wants to book a cleaning" in (session.responses[-1].trigger.instructions or "")
    assert session.responses[-1].status == "completed"
    await asyncio.sleep(1.0)
    assert not caller.closed.is_set()
    record = handoff()
    assert record["path"] == "supervise" and record["supervision_id"]
    assert record["time_to_person_ms"] >= 3000
    assert [c["state"] for c in record["changes"]][:3] == ["requested", "ringing", "connected"]
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    metrics = h.record()["metrics"]
    assert metrics["handoffs_connected"] == 1 and metrics["time_to_person_ms"] >= 3000


async def test_nobody_free_then_a_message_is_taken(
    make_harness: Any,  # noqa: F811
    api: SautikitApiDouble,
) -> None:
    api.supervision.set_person(behaviour="busy", ring_after=0.2, answer_after=1.0)
    h = await make_harness(supervise_script())
    h.profile = dataclasses.replace(
        h.profile, handoff=dataclasses.replace(h.profile.handoff, strategy="supervise")
    )
    caller = await h.call()
    await caller.quiet_after_audio()
    await caller.say("transfer_yes")
    session = h.double.sessions[0]
    await session.wait_for(
        lambda s: any(r.transcript == NOBODY_FREE and r.status == "completed" for r in s.responses),
        timeout=20,
    )
    await caller.quiet_after_audio()
    await caller.say("transfer_yes")  # "yes, take a message"
    await session.wait_for(lambda s: len(s.function_outputs) == 2, timeout=15)
    output = session.function_outputs[-1].json()
    assert output.get("saved") is True, output
    assert "Wanjiru" in output["read_back"]
    (message,) = messages.list_messages(h.table)[0]
    assert message["message"] == MESSAGE["message"] and message["call_id"] == CALL_ID
    assert message["callback_number"] == "+254722000111"  # "this number": the caller's
    assert not caller.closed.is_set()
    record = store.get_call(h.table, CALL_ID)["handoff"]
    assert record["state"] == "busy"
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    assert h.record()["metrics"]["handoffs_failed"] == 1


async def test_the_bridged_leg_is_hung_up_at_its_limit(
    make_harness: Any,  # noqa: F811
    api: SautikitApiDouble,
) -> None:
    api.supervision.set_person(ring_after=0.2, answer_after=0.5, ring_timeout=30)
    h = await make_harness(supervise_script())
    # Profiles allow a minute at least; two seconds keeps the test short.
    h.profile = dataclasses.replace(
        h.profile,
        handoff=dataclasses.replace(h.profile.handoff, strategy="supervise", max_bridged_seconds=2),
    )
    caller = await h.call()
    await caller.quiet_after_audio()
    await caller.say("transfer_yes")
    async with asyncio.timeout(30):
        await caller.closed.wait()
    # The platform was told to hang up before the node closed the stream.
    hangups = [r for r in api.requests if r.method == "POST" and r.path.endswith("/hangup")]
    assert [r.path for r in hangups] == [f"/v1/calls/{CALL_ID}/hangup"]
    assert await h.outcome() == "max_duration"
    record = h.record()
    assert record["media"]["close"] == {"code": 1000, "by": "node", "reason": ""}
    changes = record["handoff"]["changes"]
    states = [c["state"] for c in changes]  # a poll may see the person answer before ringing
    assert states[0] == "requested" and states[-2:] == ["connected", "ended"]
    assert changes[-1]["reason"] == "bridged_limit"
    assert [r for r in api.requests if r.method == "DELETE"] == []  # hung up, not removed


async def test_after_the_person_leaves_the_new_session_knows_the_conversation(
    make_harness: Any,  # noqa: F811
    api: SautikitApiDouble,
) -> None:
    api.supervision.set_person(ring_after=0.2, answer_after=0.5, ring_timeout=30)
    h = await make_harness(supervise_script())
    h.profile = dataclasses.replace(
        h.profile, handoff=dataclasses.replace(h.profile.handoff, strategy="supervise")
    )
    caller = await h.call()
    await caller.quiet_after_audio()
    await caller.say("transfer_yes")
    first = h.double.sessions[0]
    async with asyncio.timeout(20):
        await first.wait_for(lambda s: s.closed, timeout=15)  # bridged: the model is closed
    api.supervision.person_acts(CALL_ID, "hangup")
    second = await h.double.wait_for_session(1, timeout=15)
    await second.wait_for(lambda s: len(s.responses) >= 1, timeout=10)
    opening = second.responses[0].trigger.instructions or ""
    assert "Your colleague has left the call" in opening
    # The caller's words as transcribed, the greeting they heard, and the colleague's note.
    assert "Caller: Can I book a cleaning?" in opening
    assert "The colleague was told: Wants to book a cleaning." in opening
    # Its session instructions (every later reply) carry the same.
    assert "Caller: Can I book a cleaning?" in second.config["instructions"]
    assert "Caller: Can I book a cleaning?" not in first.config["instructions"]
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
