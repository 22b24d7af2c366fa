"""The node's event loop choice: uvloop when installed, asyncio's on request or without it."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from mapokezi.config import ConfigError
from media_node import event_loop


async def _loop_type() -> type:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_auto_and_uvloop_run_on_uvloop() -> None:
    for choice in ("auto", "uvloop"):
        name, factory = event_loop.loop_factory(choice)
        assert name == "uvloop"
        assert event_loop.run(_loop_type(), factory) is uvloop.Loop


def test_asyncio_runs_on_the_standard_loop() -> None:
    name, factory = event_loop.loop_factory("asyncio")
    assert (name, factory) == ("asyncio", None)
    assert not issubclass(event_loop.run(_loop_type(), factory), uvloop.Loop)


def test_without_uvloop_auto_falls_back_and_uvloop_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_loop, "HAS_UVLOOP", False)  # as if `import uvloop` had failed
    assert event_loop.loop_factory("auto") == ("asyncio", None)
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        event_loop.loop_factory("uvloop")


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(ConfigError, match="EVENT_LOOP must be one of auto, uvloop, asyncio"):
        event_loop.loop_factory("trio")
