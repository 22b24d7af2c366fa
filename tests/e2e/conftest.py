"""The whole local stack for the end-to-end scenarios, once per package, on 127.0.0.1.

One :class:`~local.stack.LocalStack` (moto server, gateway with the real Lambda handlers, CDR
poller, ``python -m media_node``, Sautikit API double) serves every scenario, in a process of
its own (:mod:`tests.e2e.stack_process`). Its models are a
:class:`~doubles.openai_realtime.RealtimeDouble` and a
:class:`~doubles.gemini_live.GeminiLiveDouble` run here, on the tests' event loop, so a
scenario can read the double's sessions and inject faults into them; each scenario dials its own
number, whose profile names its own business, and :class:`~tests.e2e.harness.ScenarioModel`
answers each model session with that scenario's script.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from doubles.gemini_live import GeminiLiveDouble
from doubles.openai_realtime import Pacing, RealtimeDouble
from local.stack import StackConfig
from tests.e2e.harness import (
    E2E,
    GEMINI_API_KEY,
    HEARTBEAT_INTERVAL_SECONDS,
    HEARTBEAT_MAX_AGE_SECONDS,
    MODEL_API_KEY,
    SCENARIOS,
    WEBHOOK_SECRET,
    ScenarioModel,
    warm_up,
)
from tests.e2e.stack_process import StackProcess


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def e2e() -> AsyncIterator[E2E]:
    """The stack with every scenario's profile seeded and the model double behind it."""
    # Importing the scenario modules declared the scenarios before this runs.
    model = ScenarioModel()
    for item in SCENARIOS.values():
        model.register(item.business_name, item.script)
        # Synthesise every line now: doing it mid-call would stall the loop the calls run on.
        warm_up(item)
    # Deltas at 20x real time: a reply is generated well ahead of playback, as the real API
    # does, so a busy test process (it also runs moto and the Lambda handlers) cannot starve it.
    double = RealtimeDouble(
        model, api_key=MODEL_API_KEY, pacing=Pacing(chunk_ms=100, speed=20.0), record_audio=True
    )
    await double.start()
    gemini = GeminiLiveDouble(
        model, api_key=GEMINI_API_KEY, pacing=Pacing(chunk_ms=100, speed=20.0)
    )
    await gemini.start()
    cfg = StackConfig.ephemeral(
        openai_api_key=MODEL_API_KEY,
        openai_realtime_url=double.url,
        gemini_api_key=GEMINI_API_KEY,
        # ws:// on loopback: the node treats it as a local model, as for the Realtime double.
        gemini_live_url=gemini.url,
        webhook_secret=WEBHOOK_SECRET,
        profiles={s.number: s.profile_fields() for s in SCENARIOS.values()},
        heartbeat_max_age_seconds=HEARTBEAT_MAX_AGE_SECONDS,
        media_node_env={"HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT_INTERVAL_SECONDS)},
    )
    stack = StackProcess(cfg)
    try:
        info = await asyncio.to_thread(stack.start)
        yield E2E(stack, info, double, model, gemini)
    finally:
        await asyncio.to_thread(stack.stop)
        await double.close()
        await gemini.close()


@pytest.fixture(autouse=True)
def aws_environment(e2e: E2E, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the stack's environment (the root conftest would point AWS elsewhere)."""
    for name, value in e2e.info.env.items():
        monkeypatch.setenv(name, value)
    yield
