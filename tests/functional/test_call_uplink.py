"""Caller audio to the model in blocks (``uplink_append_ms``), on real sockets.

The same harness as ``test_call_session``: CallSession served on 127.0.0.1, the GA Realtime
double recording every input byte, real PCM through real soxr.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from media_node.assets import DRAIN, load_line
from media_node.audio import StreamResampler
from tests.functional.test_call_session import (
    Caller,
    Harness,
    make_harness,  # noqa: F401 (the fixture)
)
from tests.unit.audio.signals import speech_like, to_pcm

pytestmark = pytest.mark.asyncio

FRAME = 640  # 20 ms at 16 kHz


def caller_frames(count: int) -> list[bytes]:
    pcm = to_pcm(speech_like(16000, count * 0.02))
    return [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]


def model_stream(frames: list[bytes]) -> bytes:
    """The caller's audio at 24 kHz as one continuous resampled stream."""
    resampler = StreamResampler(16000, 24000)
    return b"".join(resampler.process(frame) for frame in frames)


async def ready_call(h: Harness) -> tuple[Caller, Any]:
    """A call whose greeting has played: the model session is up and takes caller audio."""
    caller = await h.call()
    await caller.quiet_after_audio()
    return caller, await h.double.wait_for_session()


async def send_frames(caller: Caller, frames: list[bytes]) -> None:
    for frame in frames:
        await caller.ws.send(frame)


async def frames_in(h: Harness, count: int) -> None:
    """Until the call has read `count` caller frames."""
    async with asyncio.timeout(10):
        while h.sessions[0].metrics.frames_in < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def appends(session: Any) -> int:
    """Appends received (the double logs each run of appends as one record with a count)."""
    runs = [e for e in session.client_events if e.type == "input_audio_buffer.append"]
    return sum(e.payload["appends"] for e in runs)


def block_appends(frames: list[bytes], per_block: int) -> int:
    """Appends for `frames` sent in blocks of `per_block` (a block soxr holds back is skipped)."""
    resampler = StreamResampler(16000, 24000)
    blocks = [b"".join(frames[i : i + per_block]) for i in range(0, len(frames), per_block)]
    return sum(1 for block in blocks if resampler.process(block))


@pytest.mark.parametrize("append_ms", [20, 40, 60])
async def test_blocks_carry_the_callers_audio_in_order_and_the_tail_at_hang_up(
    make_harness: Any,  # noqa: F811
    append_ms: int,
) -> None:
    h = await make_harness(record_audio=True)
    h.node = dataclasses.replace(h.node, uplink_append_ms=append_ms)
    caller, session = await ready_call(h)
    frames = caller_frames(25)  # not a whole number of blocks: a tail is pending at hang-up
    before = appends(session)
    await send_frames(caller, frames)
    await frames_in(h, len(frames))
    await caller.stop()
    assert await h.outcome() == "caller_hangup"
    await session.wait_for(lambda s: s.closed, timeout=5)
    # Exactly the caller's audio, in order, as if every frame had been sent on its own.
    assert session.input_audio == model_stream(frames)
    # One append per block, the last one being the tail sent at hang-up.
    assert appends(session) - before == block_appends(frames, append_ms // 20)


async def test_tail_reaches_the_model_when_an_ending_starts_and_nothing_after(
    make_harness: Any,  # noqa: F811
) -> None:
    h = await make_harness(record_audio=True)
    caller, session = await ready_call(h)
    frames = caller_frames(13)
    # Two blocks of two frames, then one frame pending; that frame brings soxr output with it.
    assert len(model_stream(frames[:5])) > len(model_stream(frames[:4]))
    await send_frames(caller, frames[:5])
    await frames_in(h, 5)
    since = len(caller.audio)
    call = h.sessions[0]
    drain = asyncio.create_task(call.drain(call.clock() + 5.0))
    await caller.wait(lambda: len(caller.audio) > since)  # the drain line is playing
    await send_frames(caller, frames[3:])  # while the call ends: not for the model
    await frames_in(h, len(frames))
    async with asyncio.timeout(10):
        await drain
    assert await h.outcome() == "drained"
    assert bytes(caller.audio[since:]).find(load_line(DRAIN, 16000)[:16000]) >= 0
    await session.wait_for(lambda s: s.closed, timeout=5)
    assert session.input_audio == model_stream(frames[:5])
