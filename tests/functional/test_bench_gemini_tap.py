"""The bench's Gemini tap stamps what the capacity and latency figures are built from.

A real Gemini Live double on 127.0.0.1 with `bench.providers.GeminiTap` as its connection hook,
and a raw websockets client speaking the protocol as the node does (its own message builders):
every audio message is stamped on arrival, each model turn's first audio once, and each
``interrupted`` as the caller's barge-in.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bench.providers import GeminiTap
from doubles.gemini_live import GeminiLiveDouble
from doubles.openai_realtime import Pacing, Reply, Script
from media_node.models import gemini_protocol as wire

pytestmark = pytest.mark.asyncio

KEY = "bench-key"
GREETING = "Karibu, thank you for calling the clinic. How can I help you today? " * 3
SETUP = {
    "setup": {
        "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
        "generationConfig": {"responseModalities": ["AUDIO"]},
        "sessionResumption": {},
    }
}


def tone(ms: int, amplitude: int) -> bytes:
    """16 kHz PCM: a 300 Hz tone (speech to the double's energy VAD when loud)."""
    t = np.arange(16 * ms) / 16000
    return (amplitude * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


async def messages_until(ws: ClientConnection, predicate: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not seen or not predicate(seen[-1]):
            seen.append(json.loads(await ws.recv()))
    return seen


async def test_tap_stamps_appends_first_audio_and_barge_in() -> None:
    tap = GeminiTap()
    script = Script(greeting=Reply(GREETING), fallback=Reply("Sorry?"))
    async with GeminiLiveDouble(
        script, api_key=KEY, pacing=Pacing(chunk_ms=100, speed=10.0), on_connection=tap
    ) as double:
        ws = await connect(double.url, additional_headers={"x-goog-api-key": KEY})
        await ws.send(json.dumps(SETUP))
        await messages_until(ws, lambda m: "setupComplete" in m)
        (session,) = tap.sessions
        assert session.appends == [] and session.first_deltas == []

        await ws.send(wire.user_turn("Greet the caller."))
        await messages_until(ws, lambda m: "modelTurn" in m.get("serverContent", {}))
        live = await double.wait_for_connection()
        # The greeting is still playing out: quiet audio is stamped and counted, not speech.
        for _ in range(5):
            await ws.send(wire.audio_input(bytes(1280)))
        await live.wait_for(lambda c: c.input_audio_ms >= 200)
        assert len(session.appends) == 5
        assert session.speech_started == []

        for _ in range(20):  # 800 ms of loud audio: the caller barges in
            await ws.send(wire.audio_input(tone(40, 8000)))
        await messages_until(ws, lambda m: m.get("serverContent", {}).get("interrupted"))
        for _ in range(20):  # then quiet: the caller's turn ends and the model answers
            await ws.send(wire.audio_input(bytes(1280)))
        await live.wait_for(lambda c: len(c.turns) == 2 and c.turns[1].audio_ms > 0)
        await ws.close()
        await live.wait_for(lambda c: c.closed)

    assert len(session.appends) == 45
    assert session.appends == sorted(session.appends)
    assert len(session.speech_started) == 1
    # One stamp per turn, at its first audio: the greeting's, then the answer's.
    assert len(session.first_deltas) == 2
    assert session.first_deltas[0] < session.speech_started[0] < session.first_deltas[1]
    assert [turn.status for turn in live.turns][0] == "interrupted"
