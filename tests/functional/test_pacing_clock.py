"""Several calls on the node's one pacing clock over real sockets on 127.0.0.1.

Each connection plays a reply through its own `Playback` and `PacedSender`, all on one shared
`PacingClock`: every call gets its exact 20 ms frames in order, the clock's ticks serve all calls
at once (not one timer per call per frame), and a barge-in stops one call's audio only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from media_node.paced_sender import PacedSender
from media_node.pacing_clock import PacingClock
from media_node.playback import Playback
from tests.functional.test_paced_sender import FRAME, expected_frames, reply_pcm

pytestmark = pytest.mark.asyncio

CALLS = 3


class Node:
    """Plays the same reply to every connection, all senders on one clock."""

    def __init__(self, pcm: bytes, frames_per_write: int = 1) -> None:
        self.pcm = pcm
        self.pacing = PacingClock(time.monotonic, frames_per_write)
        self.calls: list[tuple[Playback, PacedSender, list[float]]] = []
        self.finish = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        playback = Playback(24000, 16000, lead_ms=60)
        sent: list[float] = []
        sender = PacedSender(
            ws,
            playback,
            time.monotonic,
            lambda _item, at: sent.append(at),
            lambda reason: pytest.fail(reason),
            self.pacing,
        )
        self.calls.append((playback, sender, sent))
        playback.push("item_1", self.pcm, time.monotonic())
        playback.end_item("item_1")
        sender.kick()
        await self.finish.wait()
        await sender.stop()


async def read_all(client: Any, count: int) -> list[bytes]:
    frames: list[bytes] = []
    async with asyncio.timeout(30):
        while len(frames) < count:
            frames.append(await client.recv())
    return frames


async def read_bytes(client: Any, total: int) -> list[bytes]:
    messages: list[bytes] = []
    async with asyncio.timeout(30):
        while sum(map(len, messages)) < total:
            messages.append(await client.recv())
    return messages


@contextlib.asynccontextmanager
async def connected(node: Node) -> AsyncIterator[list[Any]]:
    """`CALLS` clients connected to `node`; the node finishes and they close on the way out."""
    async with serve(node.handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        clients = [await connect(f"ws://127.0.0.1:{port}") for _ in range(CALLS)]
        try:
            yield clients
        finally:
            node.finish.set()
            for client in clients:
                await client.close()


async def test_every_call_gets_its_exact_frames_from_one_shared_tick() -> None:
    pcm = reply_pcm(1.0)
    expected = expected_frames(pcm)
    node = Node(pcm)
    async with connected(node) as clients:
        received = await asyncio.gather(*(read_all(c, len(expected)) for c in clients))
    assert all(frames == expected for frames in received)  # exact 20 ms frames, in order
    assert all(len(frame) == FRAME for frame in expected)
    stats = node.pacing.stats
    assert stats.frames_released == CALLS * len(expected)
    # One tick serves every call: about one call's frames (the calls start a few ticks apart),
    # far from a wake-up per frame of every call.
    assert stats.ticks < 2 * len(expected) < CALLS * len(expected)
    for playback, _, _ in node.calls:
        assert playback.pacer.stats.frames_released == len(expected)
        assert playback.pacer.stats.underruns == 0
    assert node.pacing.core.pacers == {}  # every queue ran out: nothing left on the clock


async def test_barge_in_on_one_call_stops_only_its_audio() -> None:
    pcm = reply_pcm(2.0)
    expected = expected_frames(pcm)
    node = Node(pcm)
    async with connected(node) as clients:
        first = [await clients[0].recv() for _ in range(10)]
        # Connections are accepted in order, so call 0 is the first client's.
        playback, sender, sent = node.calls[0]
        dropped = playback.interrupt(time.monotonic()) + sender.interrupt()
        released_at_barge_in = len(sent)
        rest = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):  # nothing beyond what was sent comes later
                while True:
                    rest.append(await clients[0].recv())
        others = await asyncio.gather(*(read_all(c, len(expected)) for c in clients[1:]))
    assert dropped > 0
    assert first + rest == expected[:released_at_barge_in]
    assert released_at_barge_in + dropped == len(expected)
    assert all(frames == expected for frames in others)
    assert sender not in node.pacing


async def test_two_frames_per_write_sends_the_same_audio_in_fewer_messages() -> None:
    pcm = reply_pcm(1.0)
    expected = expected_frames(pcm)
    node = Node(pcm, frames_per_write=2)
    async with connected(node) as clients:
        received = await asyncio.gather(*(read_bytes(c, len(expected) * FRAME) for c in clients))
    for messages in received:
        assert b"".join(messages) == b"".join(expected)  # the same audio, in order
        assert {len(m) for m in messages} <= {FRAME, 2 * FRAME}  # whole frames, two at most
        assert sum(len(m) == 2 * FRAME for m in messages) >= len(expected) // 4
    for playback, _, sent in node.calls:
        assert len(sent) == len(expected)  # every frame reported as sent, one by one
        assert playback.pacer.stats.frames_released == len(expected)
