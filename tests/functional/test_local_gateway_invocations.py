"""The local gateway runs one Lambda invocation at a time, across all functions.

Powertools keeps the current event on a class attribute shared by every resolver in the
process, so two functions running at once (the voice webhook and GET /calls, say) would read
each other's request; in AWS each function has its own process.
"""

from __future__ import annotations

import threading
from typing import Any

from local.gateway import HandlerRegistry

_first_running = threading.Event()
_release_first = threading.Event()
_order: list[str] = []


def first_handler(event: dict[str, Any], context: Any) -> str:
    _order.append("first started")
    _first_running.set()
    _release_first.wait(timeout=5)
    _order.append("first finished")
    return "first"


def second_handler(event: dict[str, Any], context: Any) -> str:
    _order.append("second ran")
    return "second"


def test_two_functions_never_run_at_the_same_time() -> None:
    registry = HandlerRegistry()
    module = __name__
    first = threading.Thread(
        target=registry.invoke, args=("First", f"{module}.first_handler", {}), daemon=True
    )
    first.start()
    assert _first_running.wait(timeout=5)
    second = threading.Thread(
        target=registry.invoke, args=("Second", f"{module}.second_handler", {}), daemon=True
    )
    second.start()
    second.join(timeout=0.3)  # it must still be waiting for the first invocation
    assert second.is_alive()
    _release_first.set()
    first.join(timeout=5)
    second.join(timeout=5)
    assert _order == ["first started", "first finished", "second ran"]
