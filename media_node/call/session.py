"""One call's I/O: the media socket, the model session, timers and the call record.

`CallSession` feeds what happens into the call's `CallCore` and carries out the actions it
returns; it decides nothing itself. Three tasks run per call: the caller reader (metadata, then
PCM → model), the model reader (its events) and the performer, which carries out the core's
socket, model and record actions one at a time in order. Frames go out at real time from loop
timers (`media_node.paced_sender`), and the core's named timers are loop timers too. `run`
always stops every task and closes the model session and the socket, then writes transcript,
media outcome and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from mapokezi.profiles import Profile
from mapokezi.store import now_iso
from media_node import prompts
from media_node.audio import FrameTooLargeError, PacerStats
from media_node.call import actions as a
from media_node.call import events as e
from media_node.call.core import CallCore
from media_node.call.state import Outcome, Timer
from media_node.context import NodeContext
from media_node.inbound import InboundAudio, decode_plan
from media_node.metrics import CallMetrics, emf_line
from media_node.models import base as m
from media_node.paced_sender import PacedSender
from media_node.records import CallRecords
from media_node.sautikit_protocol import classify_text_frame, kill_audio, parse_metadata

log = logging.getLogger("media_node.call")
metrics_log = logging.getLogger("media_node.metrics")

CLOSE_WAIT = 2.0
"""Longest wait for the media socket's closing handshake (seconds)."""


class CallSession:
    """Bridges one media socket to one model session.

    Args:
        websocket: The accepted Sautikit media socket (websockets asyncio connection).
        call_id: The call's id (token already verified and claimed).
        profile: The dialled number's receptionist profile.
        node: What the node's calls share.
    """

    def __init__(self, websocket: Any, *, call_id: str, profile: Profile, node: NodeContext):
        self.ws = websocket
        self.call_id = call_id
        self.profile = profile
        self.node = node
        self.clock = node.clock
        self.records = CallRecords(node.table, call_id, profile.retention_days)
        self.core: CallCore | None = None
        self.model: m.ModelSession | None = None
        self.sender: PacedSender | None = None
        self.inbound: InboundAudio | None = None
        self._ended = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._writes: list[asyncio.Task[None]] = []
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._pending: deque[a.Action | bytes] = deque()
        self._has_pending = asyncio.Event()
        self._performing = False
        self._connected_at = ""

    @property
    def metrics(self) -> CallMetrics:
        """The call's metrics so far."""
        return self.core.metrics if self.core is not None else CallMetrics()

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Runs the call to its end; returns the media outcome. Never raises for call failures."""
        self._connected_at = now_iso()
        try:
            self.model = self.node.model_factory(
                self.profile, prompts.session_instructions(self.profile)
            )
            core = self.core = CallCore(
                call_id=self.call_id,
                profile=self.profile,
                timeouts=self.node.timeouts,
                model_output_rate=self.model.output_rate,
                supports_truncate=self.model.supports_truncate,
                pacer_lead_ms=self.node.pacer_lead_ms,
            )
            self.sender = PacedSender(
                self.ws, core.playback, self.clock, core.frame_released, self._pacing_failed
            )
            for loop in (self._perform_loop, self._caller_loop, self._model_loop):
                self._tasks.append(asyncio.create_task(self._guard(loop)))
            self._feed(e.Connected())
            await self._ended.wait()
        except Exception:
            log.exception("call %s: bridge failed", self.call_id)
        finally:
            await self._cleanup()
        return str(self._outcome())

    async def drain(self, deadline: float) -> None:
        """The node is shutting down: end the call by `deadline` (a `node.clock` time).

        The call may end by itself first; otherwise, with time left for it, the caller hears the
        pre-rendered drain line and is transferred to the front desk (reason node_draining).
        """
        if self.core is not None and not self._ended.is_set():
            self._feed(e.DrainRequested(deadline))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), max(0.0, deadline - self.clock()))
        self._ended.set()

    def _outcome(self) -> Outcome:
        outcome = self.core.outcome if self.core is not None else None
        return outcome or Outcome.FAILED

    async def _guard(self, loop: Callable[[], Awaitable[None]]) -> None:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: %s failed", self.call_id, loop.__name__)
            self._feed(e.InternalError(f"{loop.__name__} failed"))

    async def _cleanup(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.sender is not None:
            await self.sender.stop()
        if self.model is not None:
            with contextlib.suppress(Exception):
                await self.model.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(1000), CLOSE_WAIT)
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self._write_records()

    async def _write_records(self) -> None:
        if self.core is not None:
            outcome, fields, turns, record = self.core.final_record(self.clock())
        else:
            outcome, turns = Outcome.FAILED, []
            audio = self.profile.audio
            fields = {
                "outcome": str(outcome),
                "sample_rate": audio.sample_rate,
                "decode_rate": audio.sample_rate,
                "track": audio.track,
            }
            record = CallMetrics().to_record(PacerStats())
        media = {
            "node_id": self.node.node_id,
            "connected_at": self._connected_at,
            "closed_at": now_iso(),
            **fields,
        }
        await self.records.finish(media, turns, record)
        metrics_log.info(
            emf_line(record, call_id=self.call_id, outcome=str(outcome), node_id=self.node.node_id)
        )

    # --- events in ---------------------------------------------------------------------------

    def _feed(self, event: e.CallEvent) -> None:
        """Hands `event` to the core and carries out what it returns."""
        core = self.core
        if core is None:
            return
        try:
            actions = core.handle(event, self.clock())
        except Exception:
            log.exception("call %s: handling %s failed", self.call_id, type(event).__name__)
            if type(event) is e.InternalError:
                self._ended.set()  # the core cannot even fail over: end what can be ended
                return
            self._feed(e.InternalError(f"handling {type(event).__name__} failed"))
            return
        self._apply(actions)

    def _pacing_failed(self, why: str) -> None:
        self._feed(e.InternalError(why))

    async def _caller_loop(self) -> None:
        core, model = self.core, self.model
        assert core is not None and model is not None
        inbound: InboundAudio | None = None
        append_ms = self.node.uplink_append_ms
        try:
            async for message in self.ws:
                if inbound is None:
                    # The first frame decides the decoding: metadata if text, else the profile's.
                    meta = parse_metadata(message) if isinstance(message, str) else None
                    plan = decode_plan(meta, self.profile.audio)
                    inbound = self.inbound = InboundAudio(plan, model.input_rate, append_ms)
                    if meta is None:
                        self._feed(e.StreamStarted(plan))
                    else:
                        self._feed(e.StreamStarted(plan, meta.raw, tuple(meta.problems)))
                        continue
                elif isinstance(message, str):
                    frame = classify_text_frame(message)
                    log.info("call %s: text frame: %.200s", self.call_id, frame.text)
                    continue
                forward = core.caller_frame()
                try:
                    model_pcm = inbound.feed(message)
                except FrameTooLargeError as exc:
                    self._feed(e.OversizedFrame(str(exc)))
                    continue
                if forward and model_pcm:
                    await model.send_audio(model_pcm)
        except ConnectionClosed:
            pass
        protocol = self.ws.protocol
        closed = e.SocketClosed.from_frames(
            protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent
        )
        self._feed(closed)

    async def _model_loop(self) -> None:
        model = self.model
        assert model is not None
        try:
            await model.connect()
        except m.ModelUnavailableError as exc:
            self._feed(e.ModelConnectFailed(str(exc)))
            return
        self._feed(e.ModelConnected())
        async for event in model.events():
            self._feed(event)

    def _fire(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self._feed(e.TimerFired(timer))

    # --- actions out -------------------------------------------------------------------------

    def _apply(self, actions: Sequence[a.Action]) -> None:
        """Carries out the actions in order: the local ones at once unless I/O is still queued
        ahead of them (frames must not overtake a killAudio), the rest through the performer."""
        for action in actions:
            kind = type(action)
            if kind is a.KickPacer or kind is a.InterruptPacer:
                if self._pending or self._performing:
                    self._pending.append(action)
                elif kind is a.KickPacer:
                    self.sender.kick()  # type: ignore[union-attr]
                else:
                    self.sender.interrupt()  # type: ignore[union-attr]
            elif kind is a.SetTimer:
                self._set_timer(action.timer, action.at)  # type: ignore[union-attr]
            elif kind is a.ClearTimer:
                timer = self._timers.pop(action.timer, None)  # type: ignore[union-attr]
                if timer is not None:
                    timer.cancel()
            elif kind is a.FlushCallerAudio:
                # Taken now: caller frames read after this are not part of the turn.
                tail = self.inbound.flush() if self.inbound is not None else b""
                if tail:
                    self._pending.append(tail)
                    self._has_pending.set()
            else:
                self._pending.append(action)
                self._has_pending.set()

    def _set_timer(self, timer: Timer, at: float) -> None:
        old = self._timers.pop(timer, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, at - self.clock())
        self._timers[timer] = asyncio.get_running_loop().call_later(delay, self._fire, timer)

    async def _perform_loop(self) -> None:
        pending = self._pending
        while True:
            while not pending:
                self._has_pending.clear()
                await self._has_pending.wait()
            action = pending.popleft()
            self._performing = True
            try:
                await self._perform(action)
            except Exception:
                log.exception("call %s: %r failed", self.call_id, action)
                self._feed(e.InternalError(f"{type(action).__name__} failed"))
            finally:
                self._performing = False

    async def _perform(self, action: a.Action | bytes) -> None:
        model = self.model
        assert model is not None
        match action:
            case bytes():
                await model.send_audio(action)
            case a.KickPacer():
                self.sender.kick()  # type: ignore[union-attr]
            case a.InterruptPacer():
                self.sender.interrupt()  # type: ignore[union-attr]
            case a.SendKillAudio():
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send(kill_audio())
                self._feed(e.KillAudioSent())
            case a.CreateResponse():
                await model.create_response(action.instructions)
            case a.CancelResponse():
                await model.cancel_response()
            case a.Truncate():
                await model.truncate(action.item_id, action.audio_end_ms)
            case a.SendFunctionOutput():
                await model.send_function_output(action.call_id, action.output)
            case a.AddSystemMessage():
                await model.add_system_message(action.text)
            case a.WriteHandoff():
                self._writes.append(asyncio.create_task(self._write_handoff(action.handoff)))
            case a.CloseModel():
                with contextlib.suppress(Exception):
                    await model.aclose()
            case a.CloseSocket():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(action.code), CLOSE_WAIT)
            case a.End():
                self._ended.set()

    async def _write_handoff(self, handoff: dict[str, Any]) -> None:
        ok = await self.records.handoff(handoff)
        self._feed(e.HandoffWritten(ok))
