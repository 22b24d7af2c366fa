"""The capacity bench's node probe on a real call: every caller frame that completes an uplink
block is timed once, and the per-call timelines index frames and appends exactly as the model
double and the caller count them (the pairing the bench's hop split relies on)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bench import node_probe
from doubles.openai_realtime import RealtimeDouble
from media_node import inbound
from media_node.guarded_connection import GuardedConnection
from media_node.models import gemini_session, openai_session
from media_node.server import MediaServer, default_session_factory
from tests.functional.test_call_uplink import appends, block_appends, caller_frames
from tests.functional.test_media_server import (
    WAIT,
    media_socket,
    new_call,
    node_settings,
    table,  # noqa: F401 (the fixture)
    until,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The probe's wrappers installed for one test, and every patched method restored after."""
    from websockets.asyncio.server import ServerConnection

    for owner, name in (
        (ServerConnection, "process_event"),
        (GuardedConnection, "recv"),
        (inbound.InboundAudio, "feed"),
        (openai_session.OpenAIRealtimeSession, "send_audio"),
        (gemini_session.GeminiLiveSession, "send_audio"),
    ):
        monkeypatch.setattr(owner, name, getattr(owner, name))
    monkeypatch.setattr(node_probe, "_timelines", {})
    node_probe._reset()
    node_probe._wrap_inbound_hop()
    return node_probe


async def test_probe_times_each_completed_block_and_pairs_frames_and_appends(
    table: Any,  # noqa: F811
    probe: Any,
) -> None:
    frames = caller_frames(41)  # 20 whole 40 ms blocks and one frame left for the hang-up
    async with asyncio.timeout(WAIT * 3), RealtimeDouble() as double:
        node = node_settings(OPENAI_REALTIME_URL=double.url, OPENAI_API_KEY="sk-test")
        server = MediaServer(node, table, default_session_factory(node, table), emit_metric=list)
        await server.start()
        try:
            async with media_socket(server, new_call(table, "call-probe")) as ws:
                await ws.send(json.dumps({"callSid": "call-probe", "sampleRate": 16000}))
                await ws.recv()  # the greeting: the model session is up and takes audio
                reader = asyncio.create_task(_drain(ws))
                session = await double.wait_for_session()
                probe._reset()  # the window starts: only the frames below are counted
                for frame in frames:
                    await ws.send(frame)
                expected = block_appends(frames[:40], 2)
                await until(lambda: appends(session) >= expected)
                reader.cancel()
            await until(lambda: server.active_calls == 0)
        finally:
            await server.shutdown(drain_seconds=0)

    # One hop per block that produced audio, none for the tail flushed at the hang-up.
    assert sum(probe._hop) == sum(probe._hop_block_start) == expected
    # A block's first frame waited for its second, so its hop is never the shorter one.
    hops = [i for i, n in enumerate(probe._hop) for _ in range(n)]
    firsts = [i for i, n in enumerate(probe._hop_block_start) for _ in range(n)]
    assert sum(firsts) >= sum(hops)
    assert max(hops) < len(probe._hop) - 1  # all within the histogram (under 200 ms)

    calls = probe._timelines["call-probe"]
    timeline = calls.as_json()
    # Frames are indexed from the call's first caller frame; every stride-th is timed.
    assert calls.frames_seen == len(frames)
    assert timeline["frames_first"] == 0
    assert len(timeline["frames"]) == -(-len(frames) // timeline["frames_stride"])
    assert timeline["frames"] == sorted(timeline["frames"])
    # Every append on the wire was counted, the hang-up's tail included: the k-th the node
    # wrote is the k-th the double received.
    assert calls.appends_seen == appends(session)
    assert len(timeline["appends"]) == -(-calls.appends_seen // timeline["appends_stride"])


async def _drain(ws: Any) -> None:
    """Reads what the node plays, as a caller's line would."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass
