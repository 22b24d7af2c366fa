"""One call: the bridge between Sautikit's media socket and a speech-to-speech model session.

Three tasks run per call: the caller reader (metadata, inbound PCM → model), the model reader
(events → playback, barge-in, tools) and the watchdog (dead-air bounds, length limit, idle
caller); frames go out at real time from loop timers (`media_node.paced_sender`). Endings
(handoff, failure, limits, drain) run as a single ending task (`media_node.call_endings`);
whichever ends the call first wins. `run` always cleans up every task, the model session and
the socket, then writes transcript, media outcome and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from mapokezi.profiles import Profile
from mapokezi.store import now_iso
from media_node import call_logic as logic
from media_node import prompts
from media_node.assets import DRAIN, load_line
from media_node.audio import FrameTooLargeError, PacerStats
from media_node.call_endings import CallEndings
from media_node.context import NodeContext
from media_node.inbound import InboundAudio, decode_plan
from media_node.metrics import CallMetrics, emf_line
from media_node.models import base as m
from media_node.paced_sender import PacedSender
from media_node.playback import Playback
from media_node.records import CallRecords
from media_node.sautikit_protocol import (
    StreamMetadata,
    classify_text_frame,
    kill_audio,
    parse_metadata,
)

log = logging.getLogger(__name__)
metrics_log = logging.getLogger("media_node.metrics")

WAKES_WATCHDOG = (m.SpeechStopped, m.ResponseDone, m.AudioDone)
"""Events after which the watchdog looks again: a reply falls due once the caller stops, and
silence may start once a response or a reply's audio ends. The others only postpone deadlines
(audio, a response starting, speech) or end the call."""


class CallSession(CallEndings):
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
        self.timeouts = node.timeouts
        self.records = CallRecords(node.table, call_id, profile.retention_days)
        self.metrics = CallMetrics()
        self.transcript = logic.Transcript()
        self.outcome: str | None = None
        self.handoff: dict[str, Any] | None = None
        self.metadata: dict[str, Any] | None = None
        self.model: m.ModelSession | None = None
        self.playback: Playback | None = None
        self.sender: PacedSender | None = None
        self.inbound: InboundAudio | None = None
        self._ended = asyncio.Event()
        self._line_done = asyncio.Event()
        self._no_response = asyncio.Event()
        self._no_response.set()
        self._watch_changed = asyncio.Event()
        self._watch_timer: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._accept_model_audio = True
        self._talking = True  # caller audio goes to the model and barge-in applies
        self._closing_socket = False
        self._model_alive = False
        self._response: str | None = None
        self._cancelled: set[str] = set()
        self._line_requested = False
        self._line_response: str | None = None
        self._caller_speaking = False
        self._speech_at: dict[str, int] = {}
        self._reply_wait_since: float | None = None
        self._latency_item: tuple[str, float] | None = None
        self._t0 = 0.0
        self._connected_at = ""
        self._decode_rate = profile.audio.sample_rate

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Runs the call to its end; returns the media outcome. Never raises for call failures."""
        self._t0 = self.clock()
        self._connected_at = now_iso()
        limits = self.profile.limits
        self.watchdog = logic.Watchdog(
            started=self._t0,
            max_call_seconds=limits.max_call_seconds,
            idle_prompt_seconds=limits.idle_prompt_seconds,
            idle_end_seconds=limits.idle_end_seconds,
            greeting_timeout=self.timeouts.greeting,
            reply_timeout=self.timeouts.reply,
            warning_lead=self.timeouts.time_warning,
        )
        try:
            self.model = self.node.model_factory(
                self.profile, prompts.session_instructions(self.profile)
            )
            self.playback = Playback(
                self.model.output_rate, self.profile.audio.sample_rate, self.node.pacer_lead_ms
            )
            self.sender = PacedSender(
                self.ws, self.playback, self.clock, self._on_released, self._fail
            )
            for loop in (self._caller_loop, self._model_loop, self._watch_loop):
                self._tasks.append(asyncio.create_task(self._guard(loop)))
            await self._ended.wait()
        except Exception:
            log.exception("call %s: bridge failed", self.call_id)
            self.outcome = self.outcome or logic.OUTCOME_FAILED
        finally:
            await self._cleanup()
        return self.outcome or logic.OUTCOME_FAILED

    async def drain(self, deadline: float) -> None:
        """The node is shutting down: end the call by `deadline` (a `node.clock` time).

        The call may end by itself first; otherwise, with time left for it, the caller hears the
        pre-rendered drain line and is transferred to the front desk (reason node_draining).
        """
        line_s = len(load_line(DRAIN, self.profile.audio.sample_rate)) / (
            2 * self.profile.audio.sample_rate
        )
        start_by = deadline - line_s - 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), max(0.0, start_by - self.clock()))
        if not self._ended.is_set():
            self._start_ending(
                self._line_ending(DRAIN, logic.OUTCOME_DRAINED, logic.REASON_NODE_DRAINING)
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), max(0.0, deadline - self.clock()))
        self._ended.set()

    async def _guard(self, loop: Callable[[], Awaitable[None]]) -> None:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: %s failed", self.call_id, loop.__name__)
            self._fail(f"internal error in {loop.__name__}")

    async def _cleanup(self) -> None:
        ending = [self._ending] if self._ending else []
        for task in self._tasks + ending:
            task.cancel()
        await asyncio.gather(*self._tasks, *ending, return_exceptions=True)
        if self.sender is not None:
            await self.sender.stop()
        if self.model is not None:
            with contextlib.suppress(Exception):
                await self._send_uplink_tail(self._take_uplink_tail())
            with contextlib.suppress(Exception):
                await self.model.aclose()
        self._closing_socket = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(1000), 2.0)
        await self._write_records()

    async def _write_records(self) -> None:
        now = self.clock()
        pacer = self.playback.pacer if self.playback else None
        for item in self.transcript.agent.values():
            if item.heard_ms is None and pacer is not None:
                heard = pacer.ledger.heard_ms(item.item_id, now)
                item.heard_ms = min(heard, item.generated_ms)
                item.interrupted = heard < item.generated_ms
        outcome = self.outcome or logic.OUTCOME_FAILED
        media = {
            "node_id": self.node.node_id,
            "connected_at": self._connected_at,
            "closed_at": now_iso(),
            "outcome": outcome,
            "sample_rate": self.profile.audio.sample_rate,
            "decode_rate": self._decode_rate,
            "track": self.profile.audio.track,
        }
        if self.metadata is not None:
            media["metadata"] = self.metadata
        record = self.metrics.to_record(pacer.stats if pacer else PacerStats())
        await self.records.finish(media, self.transcript.turns(), record)
        metrics_log.info(
            emf_line(record, call_id=self.call_id, outcome=outcome, node_id=self.node.node_id)
        )

    def _ms(self) -> int:
        return round((self.clock() - self._t0) * 1000)

    # --- caller side -------------------------------------------------------------------------

    async def _caller_loop(self) -> None:
        inbound: InboundAudio | None = None
        append_ms = self.node.uplink_append_ms
        try:
            async for message in self.ws:
                if inbound is None:
                    # The first frame decides the decoding: metadata if text, else the profile's.
                    meta = self._on_metadata(message) if isinstance(message, str) else None
                    plan = decode_plan(meta, self.profile.audio)
                    for warning in plan.warnings:
                        self.metrics.chipmunk_warnings += 1
                        log.warning("call %s: chipmunk guard: %s", self.call_id, warning)
                    self._decode_rate = plan.rate
                    inbound = self.inbound = InboundAudio(plan, self.model.input_rate, append_ms)
                    if meta is not None:
                        continue
                elif isinstance(message, str):
                    frame = classify_text_frame(message)
                    log.info("call %s: text frame: %.200s", self.call_id, frame.text)
                    continue
                self.metrics.frames_in += 1
                try:
                    model_pcm = inbound.feed(message)
                except FrameTooLargeError as exc:
                    self.metrics.oversized_frames += 1
                    log.warning("call %s: %s", self.call_id, exc)
                    continue
                if self._model_alive and self._talking and model_pcm:
                    await self.model.send_audio(model_pcm)
        except ConnectionClosed:
            pass
        if not self._closing_socket:
            log.info("call %s: caller hung up", self.call_id)
            self.outcome = logic.OUTCOME_CALLER_HANGUP
            self._ended.set()

    def _on_metadata(self, text: str) -> StreamMetadata:
        meta = parse_metadata(text)
        self.metadata = meta.raw
        log.info("call %s: stream metadata %s", self.call_id, meta.raw)
        for problem in meta.problems:
            log.warning("call %s: metadata: %s", self.call_id, problem)
        return meta

    # --- model side --------------------------------------------------------------------------

    async def _model_loop(self) -> None:
        try:
            await self.model.connect()
        except m.ModelUnavailableError as exc:
            log.warning("call %s: %s", self.call_id, exc)
            self._fail("model connect failed")
            return
        self._model_alive = True
        async for event in self.model.events():
            await self._on_model_event(event)

    async def _on_model_event(self, event: m.ModelEvent) -> None:
        if type(event) is m.AudioDelta:
            self._on_audio(event)
            return
        if type(event) in WAKES_WATCHDOG:
            self._watch_changed.set()
        match event:
            case m.AudioDone():
                self.playback.end_item(event.item_id)
                self.sender.kick()
            case m.TranscriptDelta():
                self.transcript.add_agent_text(event.item_id, event.text)
            case m.TranscriptDone():
                if event.item_id in self.transcript.agent:
                    self.transcript.agent[event.item_id].text = event.text
            case m.SpeechStarted():
                await self._on_speech_started(event)
            case m.SpeechStopped():
                self._caller_speaking = False
                self._reply_wait_since = self.clock()
                if self._talking:
                    self.watchdog.caller_stopped(self.clock())
            case m.CallerTranscript():
                at_ms = self._speech_at.get(event.item_id, self._ms())
                self.transcript.add_caller(event.text, at_ms)
            case m.ResponseStarted():
                self._response = event.response_id
                self._no_response.clear()
                self.watchdog.agent_busy()
                if self._line_requested and self._line_response is None:
                    self._line_response = event.response_id
            case m.ResponseDone():
                await self._on_response_done(event)
            case m.FunctionCall():
                self._on_function_call(event)
            case m.SessionReady():
                await self.model.create_response(prompts.greeting_instructions(self.profile))
            case m.ModelError():
                level = logging.WARNING if event.fatal else logging.INFO
                log.log(
                    level, "call %s: model error %s: %s", self.call_id, event.code, event.message
                )
                if event.fatal:
                    self._model_gone(f"model error {event.code}")
            case m.ModelClosed():
                log.info("call %s: model closed %s %s", self.call_id, event.code, event.reason)
                self._model_gone(f"model closed ({event.code})")

    def _on_audio(self, event: m.AudioDelta) -> None:
        if event.response_id in self._cancelled or not self._accept_model_audio:
            return
        item = self.transcript.agent_item(event.item_id, self._ms())
        if item.generated_bytes == 0 and self._reply_wait_since is not None:
            self._latency_item = (event.item_id, self._reply_wait_since)
            self._reply_wait_since = None
        item.generated_bytes += len(event.pcm)
        self.watchdog.first_audio()
        self.watchdog.agent_busy()
        self.playback.push(event.item_id, event.pcm, self.clock())
        self.sender.kick()

    async def _on_speech_started(self, event: m.SpeechStarted) -> None:
        self._caller_speaking = True
        self._reply_wait_since = None
        if event.item_id:
            self._speech_at[event.item_id] = self._ms()
        self.watchdog.caller_spoke()
        now = self.clock()
        if not self._talking or not (self.playback.busy(now) or self._response):
            return
        heard = {
            item.item_id: self.playback.pacer.ledger.heard_ms(item.item_id, now)
            for item in self.transcript.agent.values()
            if item.heard_ms is None
        }
        self.playback.interrupt(now)
        self.sender.interrupt()  # frames released but not yet sent are not sent after this
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(kill_audio())
        self.metrics.barge_ins += 1
        self.metrics.barge_in_stop_ms.append((self.clock() - now) * 1000)
        if self._response is not None:
            self._cancelled.add(self._response)
            await self.model.cancel_response()
        for item_id, heard_ms in heard.items():
            item = self.transcript.agent[item_id]
            point = logic.truncate_point(heard_ms, item.generated_ms)
            if point is None:
                item.heard_ms = item.generated_ms
                continue
            item.heard_ms = point
            item.interrupted = True
            if self.model.supports_truncate:
                self.metrics.truncations += 1
                await self.model.truncate(item_id, point)

    async def _on_response_done(self, event: m.ResponseDone) -> None:
        self.metrics.add_usage(event.usage)
        if self._response == event.response_id:
            self._response = None
            self._no_response.set()
        self.watchdog.reply_answered()
        if event.response_id and event.response_id == self._line_response:
            self._line_done.set()
        if event.status == "failed":
            self._model_gone("model response failed")

    def _model_gone(self, why: str) -> None:
        self._model_alive = False
        self._no_response.set()
        self._line_done.set()  # a handoff line that will never come must not hold the call
        self._fail(why)

    # --- pacing and deadlines ----------------------------------------------------------------

    def _on_released(self, item_id: str | None, at: float) -> None:
        if self.metrics.time_to_first_audio_ms is None:
            self.metrics.time_to_first_audio_ms = (at - self._t0) * 1000
        if self._latency_item is not None and item_id == self._latency_item[0]:
            self.metrics.reply_latency_ms.append((at - self._latency_item[1]) * 1000)
            self._latency_item = None

    async def _watch_loop(self) -> None:
        # Sleeps until the next deadline; model events that may arm an earlier one (the caller
        # stopped, a response ended, a reply's audio ended) wake it to look again. One timer
        # stands for the next deadline and is replaced only when that deadline moves.
        watchdog = self.watchdog
        changed = self._watch_changed
        loop = asyncio.get_running_loop()
        timer_at: float | None = None
        try:
            while True:
                now = self.clock()
                quiet_from: float | None = None
                if self._talking:
                    waiting = self._response or self._caller_speaking
                    playing = self.playback.busy(now)
                    if not (waiting or playing) and watchdog.reply_due is None:
                        watchdog.agent_finished(now)
                    else:
                        watchdog.agent_busy()
                        if playing and not waiting:
                            quiet_from = self.playback.idle_at(now)  # silence starts then
                due = watchdog.check(now)
                if due is not None:
                    await self._on_deadline(due)
                    continue
                wake = watchdog.next_deadline()
                if quiet_from is not None and (wake is None or quiet_from < wake):
                    wake = quiet_from
                if self._watch_timer is None or wake != timer_at:
                    if self._watch_timer is not None:
                        self._watch_timer.cancel()
                        self._watch_timer = None
                    timer_at = wake
                    if wake is not None:
                        delay = max(0.0, wake - now)
                        self._watch_timer = loop.call_later(delay, self._watch_due)
                changed.clear()
                await changed.wait()
        finally:
            if self._watch_timer is not None:
                self._watch_timer.cancel()
                self._watch_timer = None

    def _watch_due(self) -> None:
        self._watch_timer = None
        self._watch_changed.set()
