"""Bad media sockets on real sockets: floods, huge frames, silence, a peer that stops reading.

The server runs with the echo session of test_media_server (binary frames come back, text frames
are read and ignored), so what is tested is the node's socket shell: websockets' own limits and
the per-socket limiter in front of every ``recv``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from doubles.openai_realtime import RealtimeDouble
from mapokezi import store
from mapokezi.profiles import Profile, load_profile_file, parse_profile
from media_node.records import BackgroundWrites
from media_node.server import RECORD_WRITES_WAIT_SECONDS, MediaServer, default_session_factory
from tests.functional.test_media_server import (
    NUMBER,
    ROOT,
    WAIT,
    EchoSession,
    media_socket,
    new_call,
    node_settings,
    running,
    until,
)

FRAME = bytes(640)  # 20 ms of 16 kHz silence
#: A peer that floods does not answer our close (we stop reading it): the close times out.
FAST_CLOSE = {"MEDIA_CLOSE_TIMEOUT_SECONDS": "0.5"}


@pytest.fixture
def table(calls_table: Any) -> Any:
    profile = parse_profile(load_profile_file(ROOT / "profiles" / "example.yaml"), number=NUMBER)
    store.put_profile(calls_table, profile)
    return calls_table


async def closed_code(client: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes; the close code and reason it sent."""
    with pytest.raises(ConnectionClosed):
        while True:
            await client.recv()
    return client.close_code, client.close_reason


async def flood_text(client: ClientConnection) -> int:
    """Send text frames as fast as the socket takes them, until it closes; how many were sent.

    Each send yields to the event loop, which the server in this process shares.
    """
    sent = 0
    try:
        while True:
            await client.send('{"type":"ping"}')
            sent += 1
            await asyncio.sleep(0)
    except ConnectionClosed:
        return sent


def limit_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "media_node.guarded_connection"]


async def test_a_text_flood_is_closed_with_a_policy_violation(
    table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "media_node.guarded_connection")
    async with asyncio.timeout(WAIT), running(table, **FAST_CLOSE) as server:
        async with media_socket(server, new_call(table, "call-flood")) as client:
            sent = await flood_text(client)
            assert await closed_code(client) == (1008, "more than 5 text frames per second")
        await until(lambda: server.outcomes.total() == 1)
    assert sent > 20
    assert server.limit_closes == {"more than 5 text frames per second": 1}
    logs = limit_logs(caplog)
    assert logs == ["call call-flood: closing: more than 5 text frames per second"]


async def test_a_megabyte_frame_closes_with_message_too_big(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        async with media_socket(server, new_call(table, "call-huge")) as client:
            await client.send(bytes(1024 * 1024))
            code, _ = await closed_code(client)
        await until(lambda: server.outcomes.total() == 1)
    assert code == 1009


async def test_oversized_audio_frames_are_dropped_and_counted_once(
    table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "media_node.guarded_connection")
    async with asyncio.timeout(WAIT), running(table) as server:
        async with media_socket(server, new_call(table, "call-big")) as client:
            for _ in range(30):
                await client.send(bytes(40_000))  # within max_size, above the audio bound
            await client.send(b"\x01\x00" * 320)
            assert await client.recv() == b"\x01\x00" * 320  # only the normal frame came back
        await until(lambda: server.outcomes.total() == 1)
    assert server.limit_closes == {}
    assert limit_logs(caplog) == [
        "call call-big: dropping oversized audio frames (40000 bytes > 32000); "
        "further ones are counted",
        "call call-big: dropped 30 oversized frames",
    ]


async def test_a_socket_that_sends_nothing_is_closed(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table, MEDIA_IDLE_SECONDS="0.3") as server:
        async with media_socket(server, new_call(table, "call-mute")) as client:
            assert await closed_code(client) == (1008, "no media frames for 0.3 s")
        await until(lambda: server.outcomes.total() == 1)
    assert server.limit_closes == {"no media frames for 0.3 s": 1}


async def test_a_silent_caller_is_not_a_dead_socket(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table, MEDIA_IDLE_SECONDS="0.5") as server:
        async with media_socket(server, new_call(table, "call-silent")) as client:
            for _ in range(100):  # 2 s of silence frames, four times the idle bound
                await client.send(FRAME)
                assert await client.recv() == FRAME
                await asyncio.sleep(0.02)
            assert server.active_calls == 1
        await until(lambda: server.outcomes.total() == 1)
    assert server.limit_closes == {}
    assert server.outcomes == {"caller_hangup": 1}


class TalkingSession:
    """Sends audio frames without pause until the socket closes; counts what it sent."""

    instances: list[TalkingSession] = []

    def __init__(self, websocket: ServerConnection, call_id: str, profile: Profile) -> None:
        self.websocket = websocket
        self.sent = 0
        self.buffered: list[int] = []
        # Small kernel buffers, so the stall reaches websockets' write buffer in a moment.
        websocket.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 16384
        )
        TalkingSession.instances.append(self)

    async def run(self) -> str:
        try:
            while True:
                await self.websocket.send(FRAME)
                self.sent += 1
                await asyncio.sleep(0)  # the client in this process needs the loop too
                self.buffered.append(self.websocket.transport.get_write_buffer_size())
        except ConnectionClosed:
            return "caller_hangup"

    async def drain(self, deadline: float) -> None:
        await self.websocket.close()


async def test_a_peer_that_stops_reading_is_aborted(table: Any) -> None:
    TalkingSession.instances.clear()
    env = {"MEDIA_WRITE_STALL_SECONDS": "0.3"}
    async with asyncio.timeout(WAIT), running(table, TalkingSession, **env) as server:
        client = await media_socket(server, new_call(table, "call-deaf"))
        client.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 16384
        )
        client.transport.pause_reading()  # never reads again: not even a close frame
        await until(lambda: server.outcomes.total() == 1)
        client.transport.abort()
        session = TalkingSession.instances[0]
    assert server.limit_closes == {"peer stopped reading for 0.3 s": 1}
    assert session.sent > 0
    limit = server.node.limits.write_limit
    # The write buffer stayed near websockets' high-water mark: send() waited for the peer.
    assert max(session.buffered) <= limit + len(FRAME) + 64


async def test_one_bad_socket_does_not_starve_the_others(table: Any) -> None:
    frames = 200
    async with asyncio.timeout(WAIT * 3), running(table, MAX_CALLS="4", **FAST_CLOSE) as server:

        async def good(call_id: str) -> list[int]:
            got: list[int] = []
            async with media_socket(server, new_call(table, call_id)) as client:
                for seq in range(frames):
                    await client.send(seq.to_bytes(2, "little") * 320)
                    echoed = await client.recv()
                    assert isinstance(echoed, bytes)
                    got.append(int.from_bytes(echoed[:2], "little"))
            return got

        async def flooder() -> tuple[int | None, str | None]:
            async with media_socket(server, new_call(table, "call-bad-text")) as client:
                await flood_text(client)
                return await closed_code(client)

        async def hoarder() -> tuple[int | None, str | None]:
            async with media_socket(server, new_call(table, "call-bad-size")) as client:
                with pytest.raises(ConnectionClosedError):
                    while True:
                        await client.send(bytes(2 * 1024 * 1024))
                        await asyncio.sleep(0)
                return await closed_code(client)

        results = await asyncio.gather(
            good("call-good-1"), good("call-good-2"), flooder(), hoarder()
        )
    assert results[0] == results[1] == list(range(frames))  # every frame, in order
    assert results[2] == (1008, "more than 5 text frames per second")
    assert results[3][0] == 1009
    assert server.outcomes.total() == 4


async def test_shutdown_waits_for_record_writes_still_being_retried(table: Any) -> None:
    """Retried end-of-call writes get a last chance before the process exits."""
    written: list[str] = []
    table_back = asyncio.Event()

    class Writes(BackgroundWrites):
        waited: list[float] = []

        async def wait(self, within: float) -> int:
            self.waited.append(within)
            table_back.set()  # the table answers again just as the node waits for its writes
            return await super().wait(within)

    async def retrying_write() -> bool:
        await table_back.wait()
        written.append("media")
        return True

    writes = Writes()
    server = MediaServer(
        node_settings(), table, EchoSession, emit_metric=lambda _: None, record_writes=writes
    )
    await server.start()
    writes.start(retrying_write(), "call-late media")
    async with asyncio.timeout(WAIT):
        await server.shutdown(drain_seconds=0)
    assert Writes.waited == [RECORD_WRITES_WAIT_SECONDS]
    assert written == ["media"]  # finished before shutdown returned
    assert len(writes) == 0


async def test_the_real_call_session_reads_through_the_limits(table: Any) -> None:
    """A socket that connects and then sends nothing is closed under a real CallSession too."""
    async with asyncio.timeout(WAIT * 2), RealtimeDouble() as double:
        node = node_settings(
            OPENAI_REALTIME_URL=double.url, OPENAI_API_KEY="sk-test", MEDIA_IDLE_SECONDS="0.5"
        )
        server = MediaServer(node, table, default_session_factory(node, table), emit_metric=list)
        await server.start()
        try:
            async with media_socket(server, new_call(table, "call-mute-real")) as client:
                with pytest.raises(ConnectionClosed):
                    while True:  # the greeting may play while the socket stays mute
                        await client.recv()
                assert (client.close_code, client.close_reason) == (
                    1008,
                    "no media frames for 0.5 s",
                )
            await until(lambda: server.outcomes.total() == 1)
        finally:
            await server.shutdown(drain_seconds=0)
    assert server.limit_closes == {"no media frames for 0.5 s": 1}
    media = store.get_call(table, "call-mute-real")["media"]
    assert media["node_id"] == "node-test"  # the call's records were written as usual
