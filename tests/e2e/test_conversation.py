"""Conversations through the whole stack: greeting and a question at 8 and 16 kHz, barge-in,
the caller hanging up mid-reply, and a both_tracks (stereo) stream.

The calls are independent, so the module places them all at once; each test then checks one
call: the verbs the emulated platform ran, the call record read back through ``GET
/calls/{id}``, the model double's session, and the audio the caller actually heard.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from doubles.openai_realtime import RealtimeSession, Reply, Script, Turn
from local.emulator import CallResult
from local.emulator.script import BargeIn, Hangup, Say, WaitReply
from local.emulator.wav import write_wav
from tests.e2e.harness import (
    ANSWER,
    E2E,
    FRAME_MS,
    QUESTION,
    Scenario,
    ask_and_leave,
    at_rate,
    audio_ms,
    caller_wav,
    found_in,
    frames_ms,
    heard_between,
    labels,
    played_ms,
    record_of,
    rms,
    scenario,
    verbs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

SHORT_GREETING = "Karibu, how can I help?"
LONG_GREETING = (
    "Karibu to the clinic, we are open six days a week and we are always happy to help you."
)
LONG_ANSWER = (
    "On Saturday we open at nine in the morning and close at one in the afternoon, and the "
    "parking in the basement is free for every patient."
)


def question_script() -> Script:
    return Script(turns=[Turn(QUESTION, Reply(ANSWER))])


QUESTION_16K = scenario("question16k", greeting=SHORT_GREETING, script=question_script())
QUESTION_8K = scenario(
    "question8k", greeting=SHORT_GREETING, script=question_script(), sample_rate=8000
)
BARGE_IN = scenario(
    "bargein",
    greeting=LONG_GREETING,
    script=Script(turns=[Turn("Wait, stop.", Reply("Sure, go ahead."))]),
)
HANGUP = scenario(
    "hangup",
    greeting=SHORT_GREETING,
    script=Script(turns=[Turn(QUESTION, Reply(LONG_ANSWER))]),
)
STEREO = scenario("stereo", greeting=SHORT_GREETING, script=question_script(), track="both_tracks")

BARGE_IN_AFTER_MS = 1200.0
HANGUP_AFTER_REPLY_STARTS_MS = 1500.0
RATE = 16000


def assert_matches_heard(node_ms: float, phone_ms: float) -> None:
    """The node's count of what the caller heard agrees with what the phone played.

    The phone plays whole 20 ms ticks after its own prebuffer (80 ms) and a cut empties the few
    frames the node had sent ahead (its 60 ms lead): the node's count may run a little ahead of
    the ear (bounded with room for a busy test machine), never behind it by more than a tick.
    """
    assert phone_ms - FRAME_MS <= node_ms <= phone_ms + 250, (node_ms, phone_ms)


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def calls(
    e2e: E2E, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[CallResult, RealtimeSession]]:
    """Every call of this module, placed concurrently, with its model session."""
    out = tmp_path_factory.mktemp("heard")
    silent = out / "silence.wav"
    write_wav(silent, bytes(3200), 16000)  # 100 ms of digital silence
    plans = {
        QUESTION_16K.number: (QUESTION_16K, ask_and_leave()),
        QUESTION_8K.number: (QUESTION_8K, ask_and_leave()),
        BARGE_IN.number: (
            BARGE_IN,
            [
                BargeIn(BARGE_IN_AFTER_MS, caller_wav("wait_stop")),
                WaitReply(0.6, timeout_seconds=10),
                Hangup(),
            ],
        ),
        HANGUP.number: (
            HANGUP,
            [
                WaitReply(0.6),
                Say(caller_wav("hello_saturday")),
                # Quiet for a while once the answer is heard, then hang up in the middle of it.
                BargeIn(HANGUP_AFTER_REPLY_STARTS_MS, silent),
                Hangup(),
            ],
        ),
        STEREO.number: (STEREO, ask_and_leave()),
    }
    results = await asyncio.gather(
        *(
            e2e.call(item, steps, heard_wav=str(out / f"{item.number}.wav"))
            for item, steps in plans.values()
        )
    )
    sessions = await asyncio.gather(*(e2e.session_for(item) for item, _ in plans.values()))
    for session in sessions:  # the node closes the model session when the call ends
        await session.wait_for(lambda s: s.closed, timeout=10)
    return {
        number: (result, session)
        for number, result, session in zip(plans, results, sessions, strict=True)
    }


def agent_turns(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [turn for turn in record["transcript"] if turn["role"] == "agent"]


@pytest.mark.parametrize("item", [QUESTION_16K, QUESTION_8K], ids=["16k", "8k"])
async def test_greeting_then_one_question(
    calls: dict[str, tuple[CallResult, RealtimeSession]], item: Scenario
) -> None:
    result, session = calls[item.number]
    assert result.ok, result.errors
    media = result.media
    assert media is not None and result.stream is not None

    # The answer asked for the profile's rate, and the call ran at it both ways.
    assert result.stream.output_rate == result.stream.bidirectional_rate == item.sample_rate
    assert media.rate == media.playback_rate == item.sample_rate
    assert media.heard_wav is not None and wav_rate(Path(media.heard_wav)) == item.sample_rate

    # The model heard the caller once and answered once, after the greeting.
    greeting, answer = session.responses[0], session.responses[1]
    assert [r.trigger.kind for r in session.responses] == ["greeting", "user_audio"]
    assert greeting.reply.text == SHORT_GREETING and answer.reply.text == ANSWER

    # What the caller heard: all of the greeting and all of the answer (every byte sent was
    # played, and that is both replies' frames), at the call's rate, the answer after the
    # question.
    assert media.played_bytes == media.bytes_received
    expected_ms = sum(frames_ms(r.reply.pcm(), item.sample_rate) for r in (greeting, answer))
    assert abs(played_ms(media) - expected_ms) <= 2 * FRAME_MS, (played_ms(media), expected_ms)
    for response in (greeting, answer):
        expected = at_rate(response.reply.pcm(), item.sample_rate)
        assert found_in(media.heard_pcm, expected, item.sample_rate) > 0.95, (
            f"heard audio does not match {response.reply.text!r} at {item.sample_rate} Hz"
        )
    assert media.replies[0]["reply_onset_ms"] is not None  # heard after the question ended
    assert media.stale_audio_bytes == 0 and media.kills == []

    # The call record tells the same story.
    record = record_of(result)
    assert record["status"] == "ended"
    assert record["media"]["sample_rate"] == item.sample_rate
    assert record["media"]["outcome"] == "caller_hangup"
    assert [(t["role"], t["text"]) for t in record["transcript"]] == [
        ("agent", SHORT_GREETING),
        ("caller", QUESTION),
        ("agent", ANSWER),
    ]
    assert not any(t["interrupted"] for t in agent_turns(record))
    metrics = record["metrics"]
    assert metrics["time_to_first_audio_ms"] is not None
    assert len(metrics["reply_latency_ms"]) == 1
    assert metrics["barge_ins"] == 0 and metrics["truncations"] == 0
    assert record.get("handoff") is None
    assert verbs(result) == ["Stream"]
    # The caller hung up: after the stream nothing more was asked of the webhook but the hangup.
    assert labels(result) == ["initial", "stream-started", "stream-stopped", "Completed"]


async def test_barge_in_stops_the_reply_and_truncates_at_what_was_heard(
    calls: dict[str, tuple[CallResult, RealtimeSession]],
) -> None:
    result, session = calls[BARGE_IN.number]
    assert result.ok, result.errors
    media = result.media
    assert media is not None
    greeting_pcm = session.responses[0].reply.pcm()

    # One killAudio, nothing of the killed greeting after it.
    assert len(media.kills) == 1
    kill = media.kills[0]
    assert media.stale_audio_bytes == 0
    barge = media.utterances[0]
    assert barge["barge_in"]
    assert barge["start_ms"] <= kill.at_ms < barge["end_ms"]

    # The caller heard only the start of the greeting, then silence until the new reply.
    reply_pcm = session.responses[-1].reply.pcm()
    heard_greeting_ms = played_ms(media) - frames_ms(reply_pcm, RATE)
    assert 0 < heard_greeting_ms < audio_ms(greeting_pcm) - 1000
    reply_onset = media.replies[0]["reply_onset_ms"]
    assert reply_onset is not None and reply_onset >= barge["end_ms"]
    silence = heard_between(result, kill.at_ms + 2 * FRAME_MS, reply_onset)
    assert len(silence) > 0 and rms(silence) == 0.0
    assert found_in(media.heard_pcm, at_rate(reply_pcm, RATE), RATE) > 0.95

    # The model's item is truncated where the caller stopped hearing it.
    assert len(session.truncates) == 1
    truncate = session.truncates[0]
    assert truncate.error is None
    assert_matches_heard(truncate.audio_end_ms, heard_greeting_ms)

    record = result.call_record
    assert record is not None
    greeting = agent_turns(record)[0]
    assert greeting["interrupted"] is True
    assert greeting["heard_ms"] == truncate.audio_end_ms
    assert greeting["generated_text"] == LONG_GREETING
    assert LONG_GREETING.startswith(greeting["text"]) and len(greeting["text"]) < len(LONG_GREETING)
    assert record["metrics"]["barge_ins"] == 1
    assert record["metrics"]["truncations"] == 1
    assert [t["text"] for t in agent_turns(record)][-1] == "Sure, go ahead."


async def test_caller_hangs_up_mid_reply(
    calls: dict[str, tuple[CallResult, RealtimeSession]],
) -> None:
    result, session = calls[HANGUP.number]
    assert result.ok, result.errors
    media = result.media
    assert media is not None
    assert media.ended_by == "caller"

    # The caller heard part of the answer, then was gone; the model session was closed.
    answer_pcm = session.responses[1].reply.pcm()
    heard_answer_ms = played_ms(media) - frames_ms(session.responses[0].reply.pcm(), RATE)
    assert 0 < heard_answer_ms < audio_ms(answer_pcm) - 1000
    assert session.closed

    record = result.call_record
    assert record is not None
    assert record["media"]["outcome"] == "caller_hangup"
    answer = agent_turns(record)[-1]
    # The model may not have finished generating when the caller left: what it had generated
    # by then is kept (a prefix of the answer), never lost.
    assert answer["generated_text"] and LONG_ANSWER.startswith(answer["generated_text"])
    assert answer["interrupted"] is True
    assert_matches_heard(answer["heard_ms"], heard_answer_ms)
    assert record.get("handoff") is None
    # The platform is told nothing more to do: no dial, no spoken fallback.
    assert verbs(result) == ["Stream"]
    assert record["status"] == "ended"


async def test_stereo_both_tracks_feeds_the_model_only_the_caller(
    calls: dict[str, tuple[CallResult, RealtimeSession]],
) -> None:
    result, session = calls[STEREO.number]
    assert result.ok, result.errors
    media = result.media
    assert media is not None and result.stream is not None
    assert result.stream.track == "both_tracks"
    assert media.channels == 2 and media.frame_bytes == 2 * 2 * 16000 * 20 // 1000

    # The caller heard the agent on the right channel, yet the model never heard itself: no
    # barge-in on its own voice, silence in the model's input while the greeting played.
    record = result.call_record
    assert record is not None
    assert record["media"]["track"] == "both_tracks"
    assert record["metrics"]["barge_ins"] == 0
    assert [(t["role"], t["text"]) for t in record["transcript"]][1] == ("caller", QUESTION)
    model_input = session.input_audio
    assert model_input is not None
    greeting = media.heard_segments[0]
    quiet_until_ms = media.utterances[0]["start_ms"] - 300
    assert greeting[1] < quiet_until_ms
    bytes_per_ms = 48  # the model's input is 24 kHz PCM16
    assert rms(model_input[: int(quiet_until_ms * bytes_per_ms) & ~1]) == 0.0
    spoken = model_input[int(quiet_until_ms * bytes_per_ms) & ~1 :]
    assert rms(spoken) > 300  # the caller's question did reach it


def wav_rate(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate()
