"""A transfer on a number where the platform never re-POSTs after the stream (the field finding):
with ``handoff.strategy: auto`` the Lambda side rescues the caller with a supervision, and the
number is remembered as one that needs ``supervise``. When the platform delivers the stop
three times at the same moment (two copies of the stream-stopped callback, and an event to
``/events``), the caller is still rescued exactly once.

A rescue happens after the stream is gone, so no hold audio can reach the caller: between the
end of the stream and the person there is silence (the grace period, the ring), which is why a
number that showed this is moved to ``supervise``. What the caller heard is checked in the
emulator's ``--out`` WAV, where that silence and then the person's voice are written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from doubles.openai_realtime import FunctionCall, Reply, Script, Turn
from local.emulator.script import Say, WaitReply
from local.emulator.wav import read_wav
from mapokezi.outcomes import call_outcome
from tests.e2e.harness import DEPARTMENTS, E2E, caller_wav, labels, scenario
from tests.e2e.heard_audio import assert_recording_heard, person_voice

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

SALES = "Can I speak to someone in sales please?"


def rescue_script() -> Script:
    call = FunctionCall(
        "transfer_to_human",
        {"reason": "The caller wants to pay an invoice", "department": "billing"},
        follow_up=Reply("Connecting you to billing now."),
    )
    return Script(turns=[Turn(SALES, Reply(function_call=call))])


AUTO_HANDOFF = {
    "handoff": {"strategy": "auto", "rescue_grace_seconds": 1},
    "dial_timeout_seconds": 15,
}
RESCUE = scenario(
    "rescue",
    greeting="Karibu, how can I help?",
    script=rescue_script(),
    profile_changes=AUTO_HANDOFF,
)
# A number of its own: after a rescue a number supervises straight away.
RESCUE_TWICE_STOPPED = scenario(
    "rescue-twice-stopped",
    greeting="Karibu, how can I help?",
    script=rescue_script(),
    profile_changes=AUTO_HANDOFF,
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


async def test_stream_stopped_three_times_at_once_is_rescued_exactly_once(
    e2e: E2E, tmp_path: Path
) -> None:
    heard_wav = tmp_path / "heard.wav"
    result = await e2e.call(
        RESCUE_TWICE_STOPPED,
        [WaitReply(0.6), Say(caller_wav("sales"))],
        restream_post=False,
        stream_stopped_copies=2,
        stream_stopped_event=True,
        person="answer",
        rescue_wait_seconds=20.0,
        heard_wav=str(heard_wav),
    )
    assert result.ok, result.errors
    # The platform delivered stream-stopped twice to /stream-status and once to /events, all at
    # the same moment, and every delivery was acknowledged.
    stopped = [x for x in result.exchanges if x.label.startswith("stream-stopped")]
    assert [x.label for x in stopped] == ["stream-stopped", "stream-stopped-copy-1"]
    assert all(x.ok for x in stopped), [(x.status, x.body) for x in stopped]
    events = e2e.stack.request("event_deliveries", result.call.call_id)
    (event,) = [e for e in events if e["kind"] == "call.stream.stopped"]
    assert event["status"] == 200, events
    assert "StreamStopped" not in labels(result)  # and never came back to /voice

    # One supervision asked of the platform, so one person's phone rang.
    log = e2e.stack.request("supervision_requests", result.call.call_id, result.call.session_id)
    posts = [r for r in log if r["method"] == "POST"]
    assert len(posts) == 1, log
    person = result.person
    assert person is not None and person["connected_after_s"] is not None, person

    # One rescue on the record.
    record = result.call_record
    assert record is not None, result.warnings
    handoff = record["handoff"]
    assert handoff["path"] == "rescue" and handoff["target"] == DEPARTMENTS["billing"]
    states = [change["state"] for change in handoff["changes"]]
    assert states.count("requested") == 1 and "connected" in states, states
    assert call_outcome(record) == "rescued"
    # Both functions saw the stop; the copy was recognised as the same delivery.
    seen = [(e["source"], e.get("kind") or e.get("StreamEvent")) for e in record["events"]]
    assert ("events", "call.stream.stopped") in seen, seen
    assert seen.count(("stream_status", "stream-stopped")) == 1, seen

    # What the caller heard: the handoff line on the stream, then, after the stream had ended,
    # the person's voice.
    assert result.media is not None
    samples, rate = read_wav(heard_wav)
    heard = samples[:, 0].tobytes()
    voice = assert_recording_heard(heard, rate, person_voice(rate), "the person's voice")
    assert voice.start_ms >= result.media.duration_ms
