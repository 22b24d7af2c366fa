"""Which asyncio event loop the node runs on: uvloop when it is installed, else the standard one.

uvloop (libuv under asyncio's API) makes the node's per-frame I/O cheaper: timer callbacks,
socket reads and the write of every outbound frame run in C instead of asyncio's Python event
loop (``make bench ARGS="--only frames"`` measures the difference). ``EVENT_LOOP`` chooses:
``auto`` (the default: uvloop when importable), ``uvloop`` (refuse to start without it) or
``asyncio`` (the standard loop, e.g. to compare or to rule uvloop out while debugging).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from mapokezi.config import ConfigError
from media_node.node_settings import EVENT_LOOPS

try:
    import uvloop

    HAS_UVLOOP = True
except ImportError:  # pragma: no cover - exercised where uvloop is not installed
    HAS_UVLOOP = False

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str = "auto") -> tuple[str, LoopFactory | None]:
    """The loop to use for `choice`: its name and factory (None: asyncio's default loop).

    Raises:
        ConfigError: For an unknown choice, or ``uvloop`` when uvloop is not installed.
    """
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return "asyncio", None
    if not HAS_UVLOOP:
        if choice == "uvloop":
            raise ConfigError("EVENT_LOOP is uvloop but uvloop is not installed")
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """Runs `main` to completion on a new loop from `factory` (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
