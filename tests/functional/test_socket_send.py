"""`send_now` against websockets' connection internals, on real sockets.

`media_node.socket_send` reads three attributes websockets does not document (``paused``,
``send_in_progress`` and ``send_data``). These tests pin what it relies on, so an upgrade of
websockets that renames or changes them fails here rather than in a call: the attributes exist,
a paused transport makes `send_now` refuse, and so does a fragmented message in progress.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from media_node.socket_send import send_now

WAIT = 10.0


async def with_client(
    handler: Callable[[ServerConnection], Awaitable[None]],
    client_side: Callable[[object], Awaitable[None]],
) -> None:
    server = await serve(handler, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(WAIT), connect(f"ws://127.0.0.1:{port}") as client:
            await client_side(client)
    finally:
        server.close()
        await server.wait_closed()


async def test_the_internals_send_now_reads_exist() -> None:
    seen: dict[str, object] = {}

    async def handler(ws: ServerConnection) -> None:
        seen.update(
            paused=ws.paused, in_progress=ws.send_in_progress, send_data=callable(ws.send_data)
        )
        await ws.close()

    async def client_side(client: object) -> None:
        await client.wait_closed()  # type: ignore[attr-defined]

    await with_client(handler, client_side)
    assert seen == {"paused": False, "in_progress": None, "send_data": True}


async def test_send_now_refuses_while_the_transport_is_paused() -> None:
    outcome: dict[str, object] = {}
    checked = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        frame = bytes(4096)
        while not ws.paused:  # the client does not read: the write buffer fills up
            assert send_now(ws, frame)
            await asyncio.sleep(0)
        before = ws.transport.get_write_buffer_size()
        outcome["refused"] = not send_now(ws, frame)
        outcome["unchanged"] = ws.transport.get_write_buffer_size() == before
        checked.set()
        ws.transport.abort()

    async def client_side(client: object) -> None:
        transport = client.transport  # type: ignore[attr-defined]
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        transport.pause_reading()
        await checked.wait()
        transport.abort()  # a reader that never reads would not notice the server leave

    await with_client(handler, client_side)
    assert outcome == {"refused": True, "unchanged": True}


async def test_send_now_refuses_during_a_fragmented_message() -> None:
    outcome: list[bool] = []
    received: list[object] = []
    middle = asyncio.Event()

    async def fragments() -> AsyncIterator[bytes]:
        yield b"first half "
        await middle.wait()
        yield b"second half"

    async def handler(ws: ServerConnection) -> None:
        sending = asyncio.create_task(ws.send(fragments()))
        while ws.send_in_progress is None:  # noqa: ASYNC110
            await asyncio.sleep(0)
        outcome.append(send_now(ws, b"must not interleave"))
        middle.set()
        await sending
        outcome.append(send_now(ws, b"after"))
        await ws.close()

    async def client_side(client: object) -> None:
        received.append(await client.recv())  # type: ignore[attr-defined]
        received.append(await client.recv())  # type: ignore[attr-defined]

    await with_client(handler, client_side)
    assert outcome == [False, True]
    assert received == [b"first half second half", b"after"]
