"""The person a supervised transfer reaches, as the emulated caller hears them: mixed into the
node's audio on the caller's playout clock, sample by sample, with int16 saturation.

A real WebSocket server on 127.0.0.1 plays the node's side (a constant level, so every heard
sample can be checked), and ``MediaLeg.play_person`` plays the person over it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from local.emulator.media_leg import DRACHTIO, MediaLeg, MediaLegResult
from local.emulator.mixer import INT16_MAX

RATE = 16000
NODE_LEVEL = 1000


def level(seconds: float, value: int = NODE_LEVEL) -> bytes:
    return np.full(int(RATE * seconds), value, dtype="<i2").tobytes()


def loud_tone(seconds: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (32000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


@asynccontextmanager
async def node_playing(audio: bytes, kill_after: float | None = None) -> AsyncIterator[str]:
    """A media server that sends ``audio`` at once (the playout paces it), then only listens;
    with ``kill_after``, it also sends ``killAudio`` that many seconds in."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the metadata frame
        await ws.send(audio)
        if kill_after is not None:
            await asyncio.sleep(kill_after)
            await ws.send('{"type": "killAudio"}')
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass

    def select(_conn: ServerConnection, offered: list[str]) -> str | None:
        return DRACHTIO if DRACHTIO in offered else None

    async with serve(handler, "127.0.0.1", 0, select_subprotocol=select) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/audio"


async def call_with_person(
    node_audio: bytes, person: np.ndarray, after: float, kill_after: float | None = None
) -> MediaLegResult:
    """Stream, let the person speak ``after`` seconds in, hang up as soon as they are done."""
    async with asyncio.timeout(15), node_playing(node_audio, kill_after) as url:
        leg = MediaLeg(url, rate=RATE)
        call = asyncio.create_task(leg.run())
        await asyncio.sleep(after)
        played = await leg.play_person(person.astype("<i2").tobytes())
        assert played == round(len(person) / RATE, 2)
        leg.hang_up()
        return await call


def heard(result: MediaLegResult) -> np.ndarray:
    return np.frombuffer(result.heard_pcm, dtype="<i2")


async def test_the_person_is_summed_into_the_node_audio_and_clipped() -> None:
    person = loud_tone(0.5)
    result = await call_with_person(level(3.0), person, after=0.4)
    assert result.error is None and result.ended_by == "caller"
    assert result.person_joined_ms is not None
    start = int(result.person_joined_ms * RATE / 1000)
    audio = heard(result)
    both = audio[start : start + len(person)]
    expected = np.clip(person.astype(np.int32) + NODE_LEVEL, -32768, INT16_MAX)
    assert both.tolist() == expected.tolist()  # sample-aligned on the playout tick
    assert both.max() == INT16_MAX  # 32000 + 1000 saturates instead of wrapping negative
    # Just before and just after: the node alone, still playing.
    frame = RATE // 50
    assert set(audio[start - frame : start].tolist()) == {NODE_LEVEL}
    assert set(audio[start + len(person) : start + len(person) + frame].tolist()) == {NODE_LEVEL}
    # The timeline marks the person's whole half second, played out before the hang-up.
    assert result.person_segments == [[result.person_joined_ms, result.person_joined_ms + 500.0]]
    assert result.played_bytes <= len(level(3.0))  # the node's bytes only, not the person's


async def test_the_person_alone_is_heard_as_is_and_counts_as_heard_audio() -> None:
    person = loud_tone(0.3, hz=300.0)
    result = await call_with_person(level(0.1), person, after=0.5)
    # ``after`` counts from before the socket opened, so the person joins a little sooner on
    # the stream's clock; the node's 100 ms have played out well before.
    assert result.person_joined_ms is not None and result.person_joined_ms >= 300.0
    start = int(result.person_joined_ms * RATE / 1000)
    audio = heard(result)
    assert audio[start : start + len(person)].tolist() == person.tolist()
    assert not audio[start - RATE // 10 : start].any()  # the node had finished: silence
    # What the caller heard, whoever spoke: the node's 100 ms, then the person's 300 ms.
    joined = result.person_joined_ms
    assert result.heard_segments[-1] == [joined, joined + 300.0]
    assert len(result.heard_segments) == 2
    assert result.played_bytes == len(level(0.1))


async def test_kill_audio_stops_the_node_but_never_the_person() -> None:
    # The node stops its hold loop (killAudio) while the person is already talking.
    person = loud_tone(1.0, hz=250.0) // 4
    result = await call_with_person(level(3.0), person, after=0.3, kill_after=0.8)
    assert result.person_joined_ms is not None
    (kill,) = result.kills
    assert kill.dropped_bytes > 0 and result.stale_audio_bytes == 0
    start = int(result.person_joined_ms * RATE / 1000)
    audio = heard(result)[start : start + len(person)]
    node_part = audio.astype(np.int32) - person.astype(np.int32)
    # Before the kill the caller heard the node under the person, after it the person alone.
    assert set(node_part.tolist()) == {NODE_LEVEL, 0}
    cut = int(np.flatnonzero(node_part == 0)[0])
    assert not node_part[cut:].any() and (node_part[:cut] == NODE_LEVEL).all()
    assert result.person_segments == [[result.person_joined_ms, result.person_joined_ms + 1000.0]]
