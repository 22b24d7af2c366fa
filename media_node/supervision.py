"""The node's side of ``handoff.strategy: supervise``: one supervision, followed to its end.

:class:`SupervisedTransfer` is the thin shell around ``mapokezi.handoff.SupervisionTracker``: it
sends the POST (same ``Idempotency-Key`` on retries), polls at the tracker's deadlines, writes
every state change to the call's handoff, and calls the call's hooks:

- ``on_connected(time_to_person_ms)``: the person is on the line. The call says a one-sentence
  introduction both hear (``prompts.introduction_instructions``), stops the hold loop, closes
  the model session and stays on the media socket silently.
- ``on_person_left()``: the person left and the caller stayed. The receptionist comes back (a
  new model session, ``prompts.person_left_instructions``) and offers more help or a message.
- ``on_nobody(reason)``: ring timeout, busy, no answer, failure, 409, 403, …: the receptionist
  comes back, says nobody is free and offers to take a message
  (``prompts.nobody_available_instructions``).

The Sautikit client is blocking (urllib), so every request runs in a worker thread; a failing
table write is logged and never stops the caller's transfer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mapokezi import handoff as h
from mapokezi import store
from mapokezi.sautikit_api import SautikitApiError, SautikitClient, phone_supervisor

log = logging.getLogger(__name__)

Hook = Callable[..., Awaitable[None]]


def platform_client() -> SautikitClient:
    """A Sautikit REST client from the environment (``SautikitClient.from_env``; the key may
    come from Secrets Manager, so call it off the event loop). Raises ``ConfigError`` when no
    API key is configured."""
    return SautikitClient.from_env()


class SupervisedTransfer:
    """Ring ``target`` into the live call ``call_id`` as a ``barge`` supervisor.

    Args:
        client: a ``SautikitClient``.
        table: the calls table (the handoff is already written with ``state="requested"``).
        call_id: the call (UUID or ``HD_…`` session id).
        handoff_id: the handoff's id (the Idempotency-Key derives from it).
        target: the person's phone (E.164).
        label: shown to the person (department or "Front desk").
        policy: ring timeout (the profile's ``dial_timeout_seconds``) and poll timings.
        asked_at: epoch seconds of the handoff's ``requested`` change (the time to a person
            counts from it; default: now).
        clock: epoch seconds (the record's times and the tracker's clock).
    """

    def __init__(
        self,
        *,
        client: Any,
        table: Any,
        call_id: str,
        handoff_id: str,
        target: str,
        label: str,
        policy: h.SupervisionPolicy,
        asked_at: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.table, self.call_id = client, table, call_id
        self.handoff_id = handoff_id
        self.key = h.idempotency_key(call_id, handoff_id)
        self.supervisor = phone_supervisor(target, label)
        self.clock = clock
        self.tracker = h.SupervisionTracker(clock(), policy, asked_at=asked_at)
        self._caller_left = asyncio.Event()
        self._left_reason = h.CALLER_HANGUP

    def caller_left(self, reason: str = h.CALLER_HANGUP) -> None:
        """The call is over for the supervision (the caller hung up, or the node ends the call
        for `reason`): it is cancelled if still ringing, and its end is recorded. The first
        reason given is kept."""
        if not self._caller_left.is_set():
            self._left_reason = reason
        self._caller_left.set()

    async def run(self, on_connected: Hook, on_person_left: Hook, on_nobody: Hook) -> str:
        """Follow the supervision to its end; returns the handoff's final state."""
        hooks = {h.PersonConnected: on_connected, h.PersonLeft: on_person_left}
        decisions = await self._start()
        while True:
            await self._act(decisions, hooks, on_nobody)
            if self.tracker.finished:
                return self.tracker.state
            deadline = self.tracker.next_deadline or self.clock() + 1.0
            try:
                await asyncio.wait_for(
                    self._caller_left.wait(), timeout=max(0.0, deadline - self.clock())
                )
            except TimeoutError:
                decisions = await self._on_timer()
            else:
                decisions = self.tracker.caller_left(self.clock(), self._left_reason)

    async def _on_timer(self) -> list[h.Decision]:
        out: list[h.Decision] = []
        for decision in self.tracker.tick(self.clock()):
            if isinstance(decision, h.Retry):
                out += await self._start()
            elif isinstance(decision, h.Poll):
                out += await self._poll()
            else:
                out.append(decision)
        return out

    async def _start(self) -> list[h.Decision]:
        try:
            supervision = await asyncio.to_thread(
                self.client.start_supervision,
                self.call_id,
                self.supervisor,
                idempotency_key=self.key,
            )
        except SautikitApiError as exc:
            log.warning("call %s: supervision refused: %s", self.call_id, exc)
            return self.tracker.start_failed(self.clock(), exc.status, exc.code)
        return self.tracker.started(self.clock(), supervision.supervision_id, supervision.state)

    async def _poll(self) -> list[h.Decision]:
        try:
            supervision = await asyncio.to_thread(self.client.get_supervision, self.call_id)
        except SautikitApiError as exc:
            return self.tracker.poll_failed(self.clock(), exc.status, exc.code)
        if supervision is None:
            return self.tracker.gone(self.clock())
        return self.tracker.observed(self.clock(), supervision.state, supervision.failure_reason)

    async def _act(
        self, decisions: list[h.Decision], hooks: dict[type, Hook], on_nobody: Hook
    ) -> None:
        for decision in decisions:
            if isinstance(decision, h.Record):
                await self._record(decision)
            elif isinstance(decision, h.CancelSupervision):
                try:
                    await asyncio.to_thread(self.client.stop_supervision, self.call_id)
                except SautikitApiError as exc:
                    log.warning("call %s: could not cancel the supervision: %s", self.call_id, exc)
            elif isinstance(decision, h.PersonConnected):
                await hooks[h.PersonConnected](decision.time_to_person_ms)
            elif isinstance(decision, h.PersonLeft):
                await hooks[h.PersonLeft]()
            elif isinstance(decision, h.NobodyAvailable):
                await on_nobody(decision.reason)

    async def _record(self, record: h.Record) -> None:
        try:
            # The events function may have recorded the same step first; then this is a no-op.
            await asyncio.to_thread(
                functools.partial(
                    store.record_handoff_change,
                    self.table,
                    self.call_id,
                    record.change,
                    record.fields,
                    handoff_id=self.handoff_id,
                )
            )
        except Exception:  # the record is for the operator; the caller's transfer goes on
            log.exception("call %s: recording the handoff change failed", self.call_id)
