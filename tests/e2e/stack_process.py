"""The local stack in a process of its own, driven from the tests over a pipe.

:class:`~local.stack.LocalStack` runs moto, the gateway with the Lambda handlers and the CDR
poller on threads of the process that starts it. The end-to-end tests also run the emulated
platform (which plays the caller's audio on a 20 ms clock) and the model double; sharing one
interpreter, and so one GIL, with the serverless half would let a burst of webhook work stall
the caller's playout, which the tests would then hear as gaps that no real phone would have.
So the stack runs here, in a child process, exactly as ``make run`` runs it; the media node is
the stack's own child, as always.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from local.stack import LocalStack, StackConfig

START_TIMEOUT_SECONDS = 90.0
COMMAND_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack's parts listen, and the environment it set."""

    gateway_url: str
    media_url: str
    sautikit_url: str
    env: dict[str, str]


class StackProcess:
    """A :class:`LocalStack` in a child process; ``start``, ``request`` and ``stop``."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.info: StackInfo | None = None
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(cfg, child), name="mapokezi-local-stack", daemon=True
        )

    def start(self) -> StackInfo:
        """Start the child and the stack in it; raises when the stack did not come up."""
        self._process.start()
        self.info = self._receive(START_TIMEOUT_SECONDS, "start")
        return self.info

    def request(self, command: str, *args: Any) -> Any:
        """Run one of the child's commands (see :func:`_serve`) and return its result."""
        self._conn.send((command, args))
        return self._receive(COMMAND_TIMEOUT_SECONDS, command)

    def stop(self) -> None:
        """Stop the stack (the media node drains) and end the child."""
        if self._process.is_alive():
            try:
                self.request("stop")
            finally:
                self._process.join(timeout=30)
                if self._process.is_alive():
                    self._process.kill()
                    self._process.join(timeout=5)

    def _receive(self, timeout: float, what: str) -> Any:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"local stack: no answer to {what!r} within {timeout:.0f} s")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"local stack: {what!r} failed: {value}")
        return value


def _serve(cfg: StackConfig, conn: Connection) -> None:
    """The child: start the stack, answer commands until ``stop``."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stack = LocalStack(cfg)
    try:
        stack.start()
    except Exception as exc:  # report it to the parent, which raises it in the test
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    assert stack.sautikit is not None
    conn.send(
        ("ok", StackInfo(stack.gateway_url, stack.media_url, stack.sautikit.url, dict(stack.env)))
    )
    commands = {
        "crash_media_node": stack.crash_media_node,
        "start_media_node": stack.start_media_node,
        "platform_call": lambda call_id: stack.sautikit.call_view(call_id),
        "supervision_requests": lambda *idents: _supervision_requests(stack, idents),
        "event_deliveries": lambda call_id: _event_deliveries(stack, call_id),
        # What the messages topic delivered to the stack's inbox queue so far.
        "notifications": lambda: list(stack.notifications),
    }
    while True:
        try:
            command, args = conn.recv()
        except EOFError:  # the parent went away
            stack.stop()
            return
        if command == "stop":
            stack.stop()
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", commands[command](*args)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _supervision_requests(stack: LocalStack, idents: tuple[str, ...]) -> list[dict[str, Any]]:
    """The Sautikit double's log of ``/v1/calls/{id}/supervision`` requests for a call (by its
    UUID or ``HD_…`` session id), in order: method, path and ``Idempotency-Key``."""
    assert stack.sautikit is not None
    paths = {f"/v1/calls/{ident}/supervision" for ident in idents}
    return [
        {
            "method": request.method,
            "path": request.path,
            "idempotency_key": request.headers.get("idempotency-key"),
        }
        for request in list(stack.sautikit.requests)
        if request.path in paths
    ]


def _event_deliveries(stack: LocalStack, call_id: str) -> list[dict[str, Any]]:
    """The events the Sautikit double posted about a call: kind, event id and the status the
    events URL answered."""
    assert stack.sautikit is not None
    return [
        {"kind": d["kind"], "event_id": d["body"]["event_id"], "status": d["status"]}
        for d in list(stack.sautikit.event_deliveries)
        if d["body"]["data"].get("call_id") == call_id
    ]
