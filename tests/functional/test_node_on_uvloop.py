"""The node on uvloop (its default loop when installed): a real call from greeting to hang-up.

websockets 17.0 broke on uvloop (its server relied on a private attribute of asyncio's server,
fixed in 17.0.1); this runs the whole media path on uvloop so such a break shows up here: the
media server, the real call session against the Realtime double, paced frames to the caller.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import uvloop

from mapokezi import store
from media_node import event_loop
from tests.functional.test_media_server import (
    WAIT,
    media_socket,
    new_call,
    real_node,
    until,
    with_example_profile,
)


@pytest.fixture
def table(calls_table: Any) -> Any:
    return with_example_profile(calls_table)


async def _call_on_the_running_loop(table: Any) -> type:
    async with asyncio.timeout(WAIT * 2):
        async with real_node(table) as (server, double):
            async with media_socket(server, new_call(table, "call-uv")) as ws:
                await ws.send(json.dumps({"callSid": "call-uv", "sampleRate": 16000}))
                for _ in range(5):
                    await ws.send(bytes(640))
                frames = [await ws.recv() for _ in range(10)]  # the greeting, paced
                assert all(isinstance(f, bytes) and len(f) == 640 for f in frames)
                session = await double.wait_for_session()
                assert "Karibu Dental Clinic" in session.config["instructions"]
            await until(lambda: server.active_calls == 0)
        assert server.outcomes == {"caller_hangup": 1}
        return type(asyncio.get_running_loop())


def test_a_real_call_runs_on_uvloop(table: Any) -> None:
    name, factory = event_loop.loop_factory("auto")
    assert name == "uvloop"
    assert event_loop.run(_call_on_the_running_loop(table), factory) is uvloop.Loop
    media = store.get_call(table, "call-uv")["media"]
    assert media["outcome"] == "caller_hangup"
