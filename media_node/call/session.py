"""One call's I/O: the media socket, the model session, timers and the call record.

`CallSession` feeds what happens into the call's `CallCore` and carries out the actions it
returns; it decides nothing itself. Three tasks run per call: the caller reader (metadata, then
PCM → model), the model reader (its events) and the performer, which carries out the core's
model commands and closes one at a time, in order. Frames go out at real time on the node's
pacing clock (`media_node.paced_sender`), and the core's named timers are loop timers. `run`
always stops every task and closes the model session and the socket, then writes transcript,
media outcome and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from mapokezi import handoff as h
from mapokezi import store
from mapokezi.handoff import HandoffPath
from mapokezi.profiles import Profile
from mapokezi.store import now_iso
from media_node import messages, prompts, supervision
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
from media_node.sautikit_protocol import KILL_AUDIO, classify_text_frame, parse_metadata
from media_node.socket_send import send_now

log = logging.getLogger("media_node.call")
metrics_log = logging.getLogger("media_node.metrics")

CLOSE_WAIT = 2.0
"""Longest wait for the media socket's closing handshake (seconds)."""
PERFORM_WAIT = CLOSE_WAIT + 2.0
"""Longest wait, once the call is over, for the socket and model actions still queued."""
HANGUP_WAIT = 2.0
"""Longest wait for the platform to accept a hang-up before the socket is closed anyway."""


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
        self._readers: list[asyncio.Task[None]] = []
        self._performer: asyncio.Task[None] | None = None
        self._side_tasks: list[asyncio.Task[None]] = []  # handoff writes, a waiting killAudio
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._pending: deque[a.Action | bytes] = deque()
        self._has_pending = asyncio.Event()
        self._idle = asyncio.Event()  # the performer has nothing left to do
        self._idle.set()
        self._after_kill: list[a.Action] | None = None  # pacer actions held behind a killAudio
        self._connected_at = ""
        self._supervision: supervision.SupervisedTransfer | None = None
        self._platform: Any = None  # the Sautikit client, once a supervision needed it
        self._handoff_id: str | None = None
        self._handoff_asked_at: float | None = None
        self._supervision_stopped = False  # the caller left before the supervision began

    @property
    def metrics(self) -> CallMetrics:
        """The call's metrics so far."""
        return self.core.metrics if self.core is not None else CallMetrics()

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Runs the call to its end; returns the media outcome. Never raises for call failures."""
        self._connected_at = now_iso()
        try:
            self.model = self._new_model()
            core = self.core = CallCore(
                call_id=self.call_id,
                profile=self.profile,
                timeouts=self.node.timeouts,
                model_output_rate=self.model.output_rate,
                supports_truncate=self.model.supports_truncate,
                pacer_lead_ms=self.node.pacer_lead_ms,
            )
            self.sender = PacedSender(
                self.ws,
                core.playback,
                self.clock,
                core.frame_released,
                self._pacing_failed,
                self.node.pacing,
            )
            self._performer = asyncio.create_task(self._guard(self._perform_loop))
            for loop in (self._caller_loop, self._model_loop):
                self._readers.append(asyncio.create_task(self._guard(loop)))
            self._feed(e.Connected())
            await self._ended.wait()
        except Exception:
            log.exception("call %s: bridge failed", self.call_id)
        finally:
            await self._cleanup()
        return str(self._outcome())

    def _new_model(self, earlier: str = "") -> m.ModelSession:
        instructions = prompts.session_instructions(
            self.profile, take_messages=True, earlier=earlier
        )
        return self.node.model_factory(self.profile, instructions)

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
        if self._supervision is not None:
            self._supervision.caller_left()  # nothing may stay ringing once the call is over
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        # What the core asked for last (the caller's last words, the closes) is carried out,
        # within a bound: a stalled model must not keep the call open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), PERFORM_WAIT)
        if self._performer is not None:
            self._performer.cancel()
            await asyncio.gather(self._performer, return_exceptions=True)
        if self.sender is not None:
            await self.sender.stop()
        if self.model is not None:
            with contextlib.suppress(Exception):
                await self.model.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(1000), CLOSE_WAIT)
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
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
                    model = self.model  # replaced when the model session is reopened
                    assert model is not None
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
            if model is not self.model:
                return  # a session closed on purpose and replaced (`ReopenModel`)
            self._feed(event)

    def _fire(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self._feed(e.TimerFired(timer))

    # --- actions out -------------------------------------------------------------------------

    def _apply(self, actions: Sequence[a.Action]) -> None:
        """Carries out the actions in order.

        Pacer, timer, record and end actions happen at once; socket and model commands go to
        the performer, one at a time, so a stalled model cannot hold up the caller's audio.
        killAudio is written at once when the socket can take it; when it cannot, pacer actions
        after it wait for it, since a frame must never overtake a killAudio.
        """
        kill_sent = False
        for action in actions:
            kind = type(action)
            if kind is a.KickPacer or kind is a.InterruptPacer:
                if self._after_kill is not None:
                    self._after_kill.append(action)
                else:
                    self._pace(action)
            elif kind is a.SendKillAudio:
                if self._after_kill is None:
                    if send_now(self.ws, KILL_AUDIO):
                        kill_sent = True
                    else:
                        self._after_kill = []
                        self._spawn(self._send_kill())
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
                    self._queue(tail)
            elif kind is a.WriteHandoff:
                self._spawn(self._write_handoff(action))  # type: ignore[arg-type]
            elif kind is a.UpdateHandoffSummary:
                summary = action.summary  # type: ignore[union-attr]
                self._spawn(self._rewrite_summary(summary))
            elif kind is a.StartSupervision:
                self._spawn(self._supervise(action.handoff))  # type: ignore[union-attr]
            elif kind is a.StopSupervision:
                self._supervision_stopped = True
                if self._supervision is not None:
                    self._supervision.caller_left()
            elif kind is a.HangUpCall:
                # The supervision's end (and its reason) is settled now, before the cleanup's
                # own caller_left(); the REST hang-up waits its turn before the socket closes.
                self._supervision_stopped = True
                if self._supervision is not None:
                    self._supervision.caller_left(action.reason)  # type: ignore[union-attr]
                self._queue(action)
            elif kind is a.TakeMessage:
                self._spawn(self._take_message(action))  # type: ignore[arg-type]
            elif kind is a.End:
                self._ended.set()
            else:
                self._queue(action)
        if kill_sent:
            self._feed(e.KillAudioSent())

    def _pace(self, action: a.Action) -> None:
        assert self.sender is not None
        if type(action) is a.KickPacer:
            self.sender.kick()
        else:
            self.sender.interrupt()

    def _queue(self, item: a.Action | bytes) -> None:
        self._pending.append(item)
        self._idle.clear()
        self._has_pending.set()

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        self._side_tasks.append(asyncio.create_task(job))

    async def _send_kill(self) -> None:
        try:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(KILL_AUDIO)
        finally:
            held, self._after_kill = self._after_kill or [], None
        for action in held:
            self._pace(action)
        self._feed(e.KillAudioSent())

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
                self._idle.set()
                self._has_pending.clear()
                await self._has_pending.wait()
            item = pending.popleft()
            try:
                await self._perform(item)
            except Exception:
                log.exception("call %s: %r failed", self.call_id, item)
                self._feed(e.InternalError(f"{type(item).__name__} failed"))

    async def _perform(self, item: a.Action | bytes) -> None:
        model = self.model
        assert model is not None
        match item:
            case bytes():
                await model.send_audio(item)
            case a.CreateResponse():
                await model.create_response(item.instructions)
            case a.CancelResponse():
                await model.cancel_response()
            case a.Truncate():
                await model.truncate(item.item_id, item.audio_end_ms)
            case a.SendFunctionOutput():
                await model.send_function_output(item.call_id, item.output)
            case a.AddSystemMessage():
                await model.add_system_message(item.text)
            case a.CloseModel():
                with contextlib.suppress(Exception):
                    await model.aclose()
            case a.ReopenModel():
                with contextlib.suppress(Exception):
                    await model.aclose()
                self.model = self._new_model(item.earlier)
                self._readers.append(asyncio.create_task(self._guard(self._model_loop)))
            case a.HangUpCall():
                await self._hang_up()
            case a.CloseSocket():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(item.code), CLOSE_WAIT)

    async def _write_handoff(self, action: a.WriteHandoff) -> None:
        path = await self._choose_path() if action.choose_path else HandoffPath.DIAL
        if path is HandoffPath.SUPERVISE:
            self._handoff_id = uuid.uuid4().hex
            self._handoff_asked_at = time.time()  # the requested change's time, near enough
            handoff = {**action.handoff, "path": str(path), "handoff_id": self._handoff_id}
            ok = await self.records.handoff(handoff, state=h.REQUESTED)
        else:
            ok = await self.records.handoff(action.handoff)
        self._feed(e.HandoffWritten(ok, path))

    async def _rewrite_summary(self, summary: str) -> None:
        await self.records.handoff_summary(summary, self._handoff_id)

    async def _choose_path(self) -> HandoffPath:
        """Dial or supervise for this transfer: the profile's strategy and what the platform was
        seen to do on this number (a failed look-up counts as nothing learned)."""
        learned: str | None = None
        try:
            behaviour = await asyncio.to_thread(
                store.platform_behaviour, self.node.table, self.profile.number
            )
        except Exception:
            log.exception("call %s: reading the platform's behaviour failed", self.call_id)
            behaviour = None
        if behaviour is not None:
            learned = behaviour.get("after_stream")
        return HandoffPath(h.choose_path(self.profile.handoff.strategy, learned))

    async def _supervise(self, handoff: dict[str, Any]) -> None:
        """Rings the person in as a supervisor and reports each step to the core."""
        target = str(handoff.get("target") or "")
        label = str(handoff.get("department") or "Front desk")
        try:
            client = self._platform = await asyncio.to_thread(supervision.platform_client)
            transfer = self._supervision = supervision.SupervisedTransfer(
                client=client,
                table=self.node.table,
                call_id=self.call_id,
                handoff_id=self._handoff_id or uuid.uuid4().hex,
                target=target,
                label=label,
                policy=h.SupervisionPolicy.for_profile(self.profile.dial_timeout_seconds),
                asked_at=self._handoff_asked_at,
            )
        except Exception:
            log.exception("call %s: the supervised transfer could not start", self.call_id)
            self._feed(e.HandoffProgress("nobody", "not_configured"))
            return

        if self._supervision_stopped:
            self._supervision = None
            return

        async def connected(time_to_person_ms: int) -> None:
            self._feed(e.HandoffProgress("connected", time_to_person_ms=time_to_person_ms))

        async def person_left() -> None:
            self._feed(e.HandoffProgress("person_left"))

        async def nobody(reason: str) -> None:
            self._feed(e.HandoffProgress("nobody", reason))

        try:
            await transfer.run(connected, person_left, nobody)
        except Exception:
            log.exception("call %s: the supervised transfer failed", self.call_id)
            self._feed(e.HandoffProgress("nobody", "error"))
        finally:
            self._supervision = None

    async def _hang_up(self) -> None:
        """Ends the call on the platform; on failure the socket still closes after it."""
        try:
            client = self._platform or await asyncio.to_thread(supervision.platform_client)
            await asyncio.wait_for(asyncio.to_thread(client.hangup_call, self.call_id), HANGUP_WAIT)
        except Exception:
            log.exception("call %s: the platform did not take the hang-up", self.call_id)

    async def _take_message(self, action: a.TakeMessage) -> None:
        try:
            caller = await self._caller_number()
            output = await messages.take_message(
                action.arguments,
                table=self.node.table,
                call_id=self.call_id,
                caller=caller,
                to=self.profile.number,
                retention_days=self.profile.retention_days,
            )
        except Exception:
            log.exception("call %s: taking the message failed", self.call_id)
            output = {"saved": False, "problems": [messages.STORAGE_PROBLEM]}
        self._feed(e.MessageTaken(action.call_id, output))

    async def _caller_number(self) -> str | None:
        """The caller's number ("this number" in a message): from the stream's metadata, or
        else from the call record the voice webhook wrote."""
        metadata = self.core.metadata if self.core is not None else None
        for key in ("from", "From", "callerNumber", "caller"):
            if metadata and isinstance(metadata.get(key), str):
                return str(metadata[key])
        record = await asyncio.to_thread(store.get_call, self.node.table, self.call_id)
        caller = (record or {}).get("from")
        return caller if isinstance(caller, str) else None
