"""Paced frames onto a real WebSocket: in order, at most what was released, through backpressure.

A websockets server on 127.0.0.1 plays a reply through `Playback` and `PacedSender` with a lead
longer than the reply (so the whole reply is due at once) while the client, with small socket
buffers, does not read: the server's transport pauses for flow control and frames have to wait
for the socket.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from media_node.audio import Framer, StreamResampler, frame_bytes
from media_node.paced_sender import PacedSender
from media_node.playback import Playback
from media_node.socket_send import send_now

pytestmark = pytest.mark.asyncio

FRAME = frame_bytes(16000)
REPLY_S = 4.0
LEAD_MS = 10_000  # the whole reply is due at once: far more than the socket buffers hold


def reply_pcm(seconds: float) -> bytes:
    n = np.arange(round(24000 * seconds))
    return (8000 * np.sin(2 * np.pi * 300 * n / 24000)).astype("<i2").tobytes()


def expected_frames(pcm: bytes) -> list[bytes]:
    """The reply at 16 kHz in exact 20 ms frames, the last one padded (as Playback makes them)."""
    resampler, framer = StreamResampler(24000, 16000), Framer(FRAME)
    frames = framer.push(resampler.process(pcm)) + framer.push(resampler.flush())
    last = framer.flush()
    return frames + ([last] if last is not None else [])


class Server:
    """Plays one reply to the first client through a PacedSender."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.released: list[str | None] = []
        self.errors: list[str] = []
        self.waited = False
        self.sender: PacedSender | None = None
        self.playback: Playback | None = None
        self.ws: ServerConnection | None = None
        self.ready = asyncio.Event()
        self.finish = asyncio.Event()

    def on_released(self, item_id: str | None, at: float) -> None:
        self.released.append(item_id)
        assert self.sender is not None
        self.waited = self.waited or self.sender.waiting

    async def handler(self, ws: ServerConnection) -> None:
        ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        self.ws = ws
        self.playback = Playback(24000, 16000, lead_ms=LEAD_MS)
        self.sender = PacedSender(
            ws, self.playback, time.monotonic, self.on_released, self.errors.append
        )
        self.playback.push("item_1", self.pcm, time.monotonic())
        self.playback.end_item("item_1")
        self.sender.kick()
        self.ready.set()
        await self.finish.wait()
        await self.sender.stop()


async def open_client(port: int) -> Any:
    # The receive buffer is set before connecting: the window TCP advertises (and its scale) is
    # fixed at the handshake, so a buffer shrunk afterwards would still let the server push tens
    # of kilobytes through without flow control ever pausing it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return await connect(f"ws://127.0.0.1:{port}", sock=sock, max_queue=1, max_size=None)


async def read_until(client: Any, count: int, frames: list[bytes]) -> None:
    async with asyncio.timeout(20):
        while len(frames) < count:
            frames.append(await client.recv())


async def until_waiting(server: Server) -> None:
    async with asyncio.timeout(10):
        while server.sender is None or not server.sender.waiting:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_frames_wait_for_the_socket_and_arrive_in_order() -> None:
    pcm = reply_pcm(REPLY_S)
    expected = expected_frames(pcm)
    server = Server(pcm)
    received: list[bytes] = []
    async with serve(server.handler, "127.0.0.1", 0, write_limit=1024, max_size=None) as srv:
        client = await open_client(srv.sockets[0].getsockname()[1])
        try:
            await until_waiting(server)  # the client is not reading: writes pile up
            await read_until(client, len(expected), received)
        finally:
            server.finish.set()
            await client.close()
    assert received == expected  # every frame, in order, nothing twice
    assert server.released == ["item_1"] * len(expected)
    assert server.waited and not server.errors


async def test_barge_in_drops_frames_still_waiting_for_the_socket() -> None:
    pcm = reply_pcm(REPLY_S)
    expected = expected_frames(pcm)
    server = Server(pcm)
    received: list[bytes] = []
    async with serve(server.handler, "127.0.0.1", 0, write_limit=1024, max_size=None) as srv:
        client = await open_client(srv.sockets[0].getsockname()[1])
        try:
            await until_waiting(server)
            assert server.sender is not None and server.playback is not None
            server.playback.interrupt(time.monotonic())
            dropped = server.sender.interrupt()
            sent = len(server.released)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0):  # nothing beyond what was sent comes later
                    while True:
                        received.append(await client.recv())
        finally:
            server.finish.set()
            await client.close()
    assert dropped > 0
    # The frame in the socket's hands when the barge-in came may still be delivered.
    assert sent <= len(received) == len(server.released) <= sent + 1
    assert received == expected[: len(received)]
    assert len(received) + dropped <= len(expected)


async def test_send_now_writes_while_open_and_refuses_once_closed() -> None:
    done = asyncio.Event()
    results: list[bool] = []

    async def handler(ws: ServerConnection) -> None:
        results.append(send_now(ws, b"\x01\x02"))
        results.append(send_now(ws, '{"type":"killAudio"}'))
        await done.wait()
        await ws.close()
        results.append(send_now(ws, b"\x03\x04"))

    srv = await serve(handler, "127.0.0.1", 0)
    try:
        async with connect(f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}") as client:
            assert await client.recv() == b"\x01\x02"
            assert await client.recv() == '{"type":"killAudio"}'
            done.set()
            with pytest.raises(ConnectionClosed):
                await client.recv()
    finally:
        srv.close()
        await srv.wait_closed()
    assert results == [True, True, False]


async def test_nothing_is_released_once_the_caller_hung_up() -> None:
    stats: list[tuple[int, int]] = []

    async def handler(ws: ServerConnection) -> None:
        playback = Playback(24000, 16000, lead_ms=60)
        sender = PacedSender(ws, playback, time.monotonic, lambda *_: None, lambda _: None)
        await ws.wait_closed()  # the caller hangs up before the reply's first delta
        playback.push("item_1", reply_pcm(0.5), time.monotonic())
        playback.end_item("item_1")
        sender.kick()
        stats.append((playback.pacer.stats.frames_released, playback.pacer.queued_frames))
        await sender.stop()

    srv = await serve(handler, "127.0.0.1", 0)
    try:
        async with connect(f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}"):
            pass
        async with asyncio.timeout(5):
            while not stats:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        srv.close()
        await srv.wait_closed()
    released, queued = stats[0]
    assert released == 0 and queued > 0  # counted neither as played nor as heard
