"""The decisions of one call, without I/O: events in (with ``now``), actions out.

`CallCore` holds everything a call decides with — its `CallState`, the outbound `Playback`
(resampler, framer, pacer and playout ledger, all pure), the transcript, the watchdog and the
metrics — and never reads a clock, awaits or touches a socket. `media_node.call.session` feeds
it and carries out its actions, the way websockets' asyncio connection drives its protocol.

The talking states (greeting, listening, replying) are handled here; an ending (`EndingPhase`)
in `media_node.call.endings`, which the core owns as its `ending`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from mapokezi.profiles import Profile
from media_node import prompts
from media_node.assets import load_hold, load_line
from media_node.audio import PacerStats
from media_node.call import actions as a
from media_node.call import events as e
from media_node.call.endings import Ending
from media_node.call.state import (
    TALKING,
    CallState,
    ClosedBy,
    EndingKind,
    HandoffKind,
    Line,
    ModelLink,
    Outcome,
    Reason,
    Timer,
)
from media_node.call.supervised import Supervised
from media_node.call.transcript import Transcript, handoff_summary, resolve_handoff, truncate_point
from media_node.call.watchdog import Deadline, Watchdog
from media_node.context import CallTimeouts
from media_node.metrics import CallMetrics
from media_node.models import base as m
from media_node.playback import Playback

log = logging.getLogger("media_node.call")

NOTHING: tuple[a.Action, ...] = ()
PLAY: tuple[a.Action, ...] = (a.KICK,)

CLEAN_CLOSE_CODES = frozenset({1000, 1001, 1005})
"""Close codes from the peer that mean the caller's side ended the stream on purpose (1005: a
close frame without a code)."""

TIME_WARNING_NOTE = (
    "The call reaches its time limit in one minute; the caller will then be transferred to the "
    "front desk."
)


class CallCore:
    """One call's state machine.

    Args:
        call_id: The call's id (for the log).
        profile: The dialled number's receptionist profile.
        timeouts: Dead-air bounds.
        model_output_rate: Sample rate of the model's audio.
        supports_truncate: Whether the model can be told what the caller heard.
        pacer_lead_ms: How far ahead of real time frames are released.
        lines: The PCM of a pre-rendered line at a rate (default: the packaged WAVs).
        hold: The PCM of one round of the hold loop at a rate (default: the packaged WAV).
    """

    def __init__(
        self,
        *,
        call_id: str,
        profile: Profile,
        timeouts: CallTimeouts,
        model_output_rate: int,
        supports_truncate: bool,
        pacer_lead_ms: float,
        lines: Callable[[str, int], bytes] = load_line,
        hold: Callable[[int], bytes] = load_hold,
    ) -> None:
        self.call_id = call_id
        self.profile = profile
        self.timeouts = timeouts
        self.supports_truncate = supports_truncate
        self.lines = lines
        self.hold = hold
        self.supervised: Supervised | None = None
        self._opening: str | None = None  # the first reply of a reopened model session
        self.messages: list[dict[str, Any]] = []
        self.rate = profile.audio.sample_rate
        self.playback = Playback(model_output_rate, self.rate, pacer_lead_ms)
        self.transcript = Transcript()
        self.metrics = CallMetrics()
        self.watchdog: Watchdog | None = None
        self.state = CallState.GREETING
        self.ending: Ending | None = None
        self.outcome: Outcome | None = None
        self.handoff: dict[str, Any] | None = None
        self.model_link = ModelLink.CONNECTING
        self.response: str | None = None
        self.metadata: dict[str, Any] | None = None
        self.decode_rate = self.rate
        self.close: dict[str, Any] | None = None
        self.started = 0.0
        self._uplink = False  # caller audio goes to the model: talking and the model is open
        self._cancelled: set[str] = set()
        self._caller_speaking = False
        self._speech_at: dict[str, int] = {}
        self._reply_wait_since: float | None = None
        self._latency_item: tuple[str, float] | None = None
        self._barge_in_at: float | None = None
        self._watch_at: float | None = None

    # --- the per-frame paths (no event objects) ---------------------------------------------

    def caller_frame(self) -> bool:
        """A caller frame arrived; True when its audio goes to the model."""
        self.metrics.frames_in += 1
        return self._uplink

    def frame_released(self, item_id: str | None, at: float) -> None:
        """The pacer released a frame of `item_id` (None: a pre-rendered line) at `at`."""
        if self.metrics.time_to_first_audio_ms is None:
            self.metrics.time_to_first_audio_ms = (at - self.started) * 1000
        latency = self._latency_item
        if latency is not None and item_id == latency[0]:
            self.metrics.reply_latency_ms.append((at - latency[1]) * 1000)
            self._latency_item = None

    # --- events ----------------------------------------------------------------------------

    def handle(self, event: e.CallEvent, now: float) -> Sequence[a.Action]:
        """What to do about `event`, which happened at `now`."""
        if type(event) is m.AudioDelta:
            return self._on_audio(event, now)
        if self.state is CallState.ENDED:
            return NOTHING
        out: list[a.Action] = []
        match event:
            case m.AudioDone():
                self.playback.end_item(event.item_id)
                out.append(a.KICK)
                self._watch(now, out)
            case m.TranscriptDelta():
                self.transcript.add_agent_text(event.item_id, event.text)
            case m.TranscriptDone():
                if event.item_id in self.transcript.agent:
                    self.transcript.agent[event.item_id].text = event.text
            case m.SpeechStarted():
                self._on_speech_started(event, now, out)
            case m.SpeechStopped():
                self._caller_speaking = False
                self._reply_wait_since = now
                if self.state in TALKING:
                    self._dog.caller_stopped(now)
                self._watch(now, out)
            case m.CallerTranscript():
                at_ms = self._speech_at.get(event.item_id, self._ms(now))
                self.transcript.add_caller(event.text, at_ms)
                if self.supervised is not None and self.state is CallState.HOLDING:
                    self.supervised.refresh_summary(out)
            case m.ResponseStarted():
                self.response = event.response_id
                self._dog.agent_busy()
                if self.state is CallState.LISTENING:
                    self._enter(CallState.REPLYING)
                if self.ending is not None:
                    self.ending.response_started(event.response_id)
            case m.ResponseDone():
                self._on_response_done(event, now, out)
            case m.FunctionCall():
                self._on_function_call(event, now, out)
            case m.SessionReady():
                if self._opening is not None:
                    out.append(a.CreateResponse(self._opening))
                    self._opening = None
                elif self.state is CallState.GREETING:
                    out.append(a.CreateResponse(prompts.greeting_instructions(self.profile)))
            case m.ModelError():
                level = logging.WARNING if event.fatal else logging.INFO
                log.log(
                    level, "call %s: model error %s: %s", self.call_id, event.code, event.message
                )
                if event.fatal:
                    self._model_lost(f"model error {event.code}", now, out)
            case m.ModelClosed():
                log.info("call %s: model closed %s %s", self.call_id, event.code, event.reason)
                self._model_lost(f"model closed ({event.code})", now, out)
            case e.Connected():
                self._on_connected(now, out)
            case e.StreamStarted():
                self._on_stream_started(event)
            case e.OversizedFrame():
                self.metrics.oversized_frames += 1
                log.warning("call %s: %s", self.call_id, event.detail)
            case e.SocketClosed():
                self._on_socket_closed(event, out)
            case e.ModelConnected():
                self.model_link = ModelLink.OPEN
                self._uplink = self.state in TALKING
            case e.ModelConnectFailed():
                log.warning("call %s: %s", self.call_id, event.detail)
                self._model_lost("model connect failed", now, out)
            case e.TimerFired():
                self._on_timer(event.timer, now, out)
            case e.HandoffWritten():
                if self.ending is not None:
                    self.ending.handoff_written(now, out, event.path)
            case e.HandoffProgress():
                if self.supervised is not None:
                    self.supervised.progress(
                        event.state, event.reason, event.time_to_person_ms, now, out
                    )
            case e.MessageTaken():
                self._on_message_taken(event, out)
            case e.KillAudioSent():
                if self._barge_in_at is not None:
                    self.metrics.barge_in_stop_ms.append((now - self._barge_in_at) * 1000)
                    self._barge_in_at = None
            case e.DrainRequested():
                self._on_drain(event.deadline, now, out)
            case e.InternalError():
                self.fail(f"internal error: {event.detail}", now, out)
        return out

    def _on_connected(self, now: float, out: list[a.Action]) -> None:
        self.started = now
        self.restart_watchdog(now)
        self._watch(now, out)

    def restart_watchdog(self, now: float) -> None:
        """Dead-air deadlines and the length limit counted from `now` (the call connected, or
        the receptionist takes the caller back after the person left)."""
        limits = self.profile.limits
        self.watchdog = Watchdog(
            started=now,
            max_call_seconds=limits.max_call_seconds,
            idle_prompt_seconds=limits.idle_prompt_seconds,
            idle_end_seconds=limits.idle_end_seconds,
            greeting_timeout=self.timeouts.greeting,
            reply_timeout=self.timeouts.reply,
            warning_lead=self.timeouts.time_warning,
        )
        self._watch_at = None  # the next `_watch` arms the new watchdog's first deadline

    @property
    def _dog(self) -> Watchdog:
        if self.watchdog is None:
            raise RuntimeError("the call has not connected")
        return self.watchdog

    def _on_stream_started(self, event: e.StreamStarted) -> None:
        self.metadata = event.metadata
        if event.metadata is not None:
            log.info("call %s: stream metadata %s", self.call_id, event.metadata)
        for problem in event.problems:
            log.warning("call %s: metadata: %s", self.call_id, problem)
        for warning in event.plan.warnings:
            self.metrics.chipmunk_warnings += 1
            log.warning("call %s: chipmunk guard: %s", self.call_id, warning)
        self.decode_rate = event.plan.rate

    def _ms(self, now: float) -> int:
        return round((now - self.started) * 1000)

    def _enter(self, state: CallState) -> None:
        self.state = state
        self._uplink = self.model_open and state in TALKING

    enter = _enter

    @property
    def model_open(self) -> bool:
        """Whether the model session takes caller audio and commands."""
        return self.model_link is ModelLink.OPEN

    # --- model audio and barge-in --------------------------------------------------------

    def _on_audio(self, event: m.AudioDelta, now: float) -> Sequence[a.Action]:
        if event.response_id in self._cancelled or not self._takes_model_audio():
            return NOTHING
        item = self.transcript.agent_item(event.item_id, self._ms(now))
        if item.generated_bytes == 0 and self._reply_wait_since is not None:
            self._latency_item = (event.item_id, self._reply_wait_since)
            self._reply_wait_since = None
        item.generated_bytes += len(event.pcm)
        if self.supervised is not None and self.supervised.bridging:
            cut: list[a.Action] = []
            self.supervised.end_bridging(now, cut)  # the hold loop gives way to the reply
            self._play_model_audio(event, now)
            return (*cut, *PLAY)
        self._play_model_audio(event, now)
        return PLAY

    def _play_model_audio(self, event: m.AudioDelta, now: float) -> None:
        dog = self._dog
        dog.first_audio()
        dog.agent_busy()
        if self.state is CallState.LISTENING:
            self._enter(CallState.REPLYING)
        self.playback.push(event.item_id, event.pcm, now)

    def _takes_model_audio(self) -> bool:
        state = self.state
        if state is CallState.ENDING:
            return self.ending is not None and self.ending.kind is EndingKind.SPOKEN
        if state is CallState.HOLDING or state is CallState.BRIDGED:
            return self.supervised is not None and self.supervised.introducing
        return state is not CallState.ENDED

    def _on_speech_started(self, event: m.SpeechStarted, now: float, out: list[a.Action]) -> None:
        self._caller_speaking = True
        self._reply_wait_since = None
        if event.item_id:
            self._speech_at[event.item_id] = self._ms(now)
        self._dog.caller_spoke()
        if self.supervised is not None and self.supervised.bridging:
            self.supervised.end_bridging(now, out)  # no hold loop over the caller's words
        if self.state not in TALKING or not (self.playback.busy(now) or self.response):
            return
        ledger = self.playback.pacer.ledger
        heard = {
            item.item_id: ledger.heard_ms(item.item_id, now)
            for item in self.transcript.agent.values()
            if item.heard_ms is None
        }
        self.playback.interrupt(now)
        out.append(a.INTERRUPT)
        out.append(a.KILL_AUDIO)
        self._barge_in_at = now
        self.metrics.barge_ins += 1
        if self.response is not None:
            self._cancelled.add(self.response)
            out.append(a.CANCEL_RESPONSE)
        for item_id, heard_ms in heard.items():
            item = self.transcript.agent[item_id]
            point = truncate_point(heard_ms, item.generated_ms)
            if point is None:  # it had finished playing
                item.heard_ms = item.generated_ms
                continue
            item.heard_ms = point
            item.interrupted = True
            if self.supports_truncate:
                self.metrics.truncations += 1
                out.append(a.Truncate(item_id, point))

    def _on_response_done(self, event: m.ResponseDone, now: float, out: list[a.Action]) -> None:
        self.metrics.add_usage(event.usage)
        if self.response == event.response_id:
            self.response = None
        self._dog.reply_answered()
        if event.status == "failed":
            self._model_lost("model response failed", now, out)
        if self.ending is not None:
            self.ending.response_done(event.response_id, now, out)
        elif self.supervised is not None and self.state is CallState.BRIDGED:
            self.supervised.response_done(now, out)
        self._watch(now, out)

    def _model_lost(self, why: str, now: float, out: list[a.Action]) -> None:
        self.model_link = ModelLink.GONE
        self._uplink = False
        self.response = None
        if self.ending is not None:
            self.ending.model_lost(now, out)  # a handoff line that will never come
        self.fail(why, now, out)

    # --- tools ---------------------------------------------------------------------------

    def _on_function_call(self, call: m.FunctionCall, now: float, out: list[a.Action]) -> None:
        if call.name not in (
            prompts.TRANSFER_TOOL,
            prompts.END_CALL_TOOL,
            prompts.TAKE_MESSAGE_TOOL,
        ):
            log.warning("call %s: model called unknown tool %r", self.call_id, call.name)
            return
        if self.state not in TALKING:
            log.info("call %s: tool call %s ignored while %s", self.call_id, call.name, self.state)
            return
        if call.name == prompts.TAKE_MESSAGE_TOOL:
            out.append(a.TakeMessage(call.call_id, dict(call.arguments)))
            return
        kind = HandoffKind.TRANSFER if call.name == prompts.TRANSFER_TOOL else HandoffKind.HANGUP
        reason = str(call.arguments.get("reason") or call.name)
        department = call.arguments.get("department")
        summary = handoff_summary(reason, self.transcript.recent_caller_text())
        handoff = resolve_handoff(
            self.profile, kind, reason, department if isinstance(department, str) else None, summary
        )
        outcome = Outcome.TRANSFER if kind is HandoffKind.TRANSFER else Outcome.HANGUP
        instructions = prompts.handoff_line_instructions(self.profile, kind)
        ending = Ending.spoken(self, handoff, outcome, instructions, call.call_id)
        ending.choose_path = kind is HandoffKind.TRANSFER
        self._start(ending, now, out)

    def _on_message_taken(self, event: e.MessageTaken, out: list[a.Action]) -> None:
        """The message was stored (or not): the model hears the result and speaks about it."""
        if event.output.get("saved"):
            self.messages.append(event.output)
        if not self.model_open or self.state not in TALKING:
            return
        out.append(a.SendFunctionOutput(event.call_id, event.output))
        if self.response is None:
            out.append(a.CreateResponse(None))

    # --- supervised transfers ------------------------------------------------------------

    def hold_for_person(self, handoff: dict[str, Any], now: float, out: list[a.Action]) -> None:
        """The handoff line of a supervised transfer has played: hold while a person is rung."""
        self.supervised = Supervised(self, handoff)
        self.supervised.start(now, out)

    def come_back(self, instructions: str, now: float, out: list[a.Action]) -> None:
        """The receptionist takes the call back (nobody came, or the person left)."""
        self._enter(CallState.LISTENING)
        if not self.model_open:
            self.fail("the model is gone after a supervised transfer", now, out)
            return
        out.append(a.CreateResponse(instructions))
        self._dog.agent_busy()
        self._watch(now, out)

    def reopen_model(
        self, instructions: str, now: float, out: list[a.Action], earlier: str = ""
    ) -> None:
        """A new model session for the caller, told `earlier` (the conversation before); its
        first reply follows `instructions`."""
        self.model_link = ModelLink.CONNECTING
        self._opening = instructions
        self._enter(CallState.LISTENING)
        out.append(a.ReopenModel(earlier))
        self._dog.agent_busy()
        self._watch(now, out)

    # --- deadlines -------------------------------------------------------------------------

    def _on_timer(self, timer: Timer, now: float, out: list[a.Action]) -> None:
        if timer is Timer.WATCHDOG:
            self._watch_at = None
            self._watch(now, out)
        elif timer is Timer.DRAIN_START:
            self.end_with_line(Line.DRAIN, Outcome.DRAINED, Reason.NODE_DRAINING, now, out)
        elif timer is Timer.DRAIN_DEADLINE:
            outcome = self.ending.outcome if self.ending is not None else Outcome.FAILED
            log.warning("call %s: drain deadline reached", self.call_id)
            self.close_call(outcome, now, out)
        elif timer in (Timer.HOLD_REFILL, Timer.INTRODUCTION, Timer.BRIDGED_LIMIT):
            if self.supervised is not None:
                self.supervised.timer_fired(timer, now, out)
        elif self.ending is not None:
            self.ending.timer_fired(timer, now, out)

    def _watch(self, now: float, out: list[a.Action]) -> None:
        """Looks at the deadlines: what fell due, and when to look next.

        Runs when the call connects, when its timer fires, and after events that may arm an
        earlier deadline (the caller stopped, a response ended, a reply's audio ended); other
        events only postpone deadlines, and a timer that finds nothing due is simply re-armed.
        """
        dog = self._dog
        while True:
            quiet_from: float | None = None
            if self.state in TALKING:
                waiting = self.response is not None or self._caller_speaking
                playing = self.playback.busy(now)
                replying = self.response is not None or playing
                if not replying and (self.state is not CallState.GREETING or dog.greeted):
                    self._enter(CallState.LISTENING)
                elif replying and self.state is CallState.LISTENING:
                    self._enter(CallState.REPLYING)
                if not (waiting or playing) and dog.reply_due is None:
                    dog.agent_finished(now)
                else:
                    dog.agent_busy()
                    if playing and not waiting:
                        quiet_from = self.playback.idle_at(now)  # silence starts then
            due = dog.check(now)
            if due is None:
                break
            self._on_deadline(due, now, out)
        wake = dog.next_deadline()
        if quiet_from is not None and (wake is None or quiet_from < wake):
            wake = quiet_from
        if wake != self._watch_at:
            self._watch_at = wake
            out.append(
                a.ClearTimer(Timer.WATCHDOG) if wake is None else a.SetTimer(Timer.WATCHDOG, wake)
            )

    def _on_deadline(self, due: Deadline, now: float, out: list[a.Action]) -> None:
        log.info("call %s: %s", self.call_id, due)
        if due is Deadline.GREETING or due is Deadline.REPLY:
            self.fail(str(due), now, out)
        elif due is Deadline.TIME_LIMIT:
            self.end_with_line(Line.TIME_LIMIT, Outcome.MAX_DURATION, Reason.MAX_DURATION, now, out)
        elif self.state not in TALKING or not self.model_open:
            return
        elif due is Deadline.TIME_WARNING:
            out.append(a.AddSystemMessage(TIME_WARNING_NOTE))
            if self.response is None:
                out.append(a.CreateResponse(prompts.time_warning_instructions(self.profile)))
        elif due is Deadline.IDLE_PROMPT:
            out.append(a.CreateResponse(prompts.idle_prompt_instructions(self.profile)))
        elif due is Deadline.IDLE_END:
            summary = handoff_summary("caller went silent", "")
            handoff = {
                "kind": str(HandoffKind.HANGUP),
                "reason": str(Reason.IDLE),
                "summary": summary,
            }
            goodbye = prompts.idle_goodbye_instructions(self.profile)
            self._start(Ending.spoken(self, handoff, Outcome.IDLE, goodbye, None), now, out)

    # --- endings ---------------------------------------------------------------------------

    def fail(self, why: str, now: float, out: list[a.Action]) -> None:
        """The model cannot serve the caller: apology, front-desk handoff, close."""
        if self.state not in TALKING:
            return
        log.warning("call %s: failing over to the front desk: %s", self.call_id, why)
        self.end_with_line(Line.APOLOGY, Outcome.FAILED, Reason.MODEL_UNAVAILABLE, now, out)

    def end_with_line(
        self, line: Line, outcome: Outcome, reason: Reason, now: float, out: list[a.Action]
    ) -> None:
        """Cuts model audio, plays a pre-rendered line and transfers to the front desk."""
        self._start(Ending.with_line(self, line, outcome, reason), now, out)

    def _start(self, ending: Ending, now: float, out: list[a.Action]) -> None:
        if self.state not in TALKING:
            return  # one ending per call: the first one wins
        if self._uplink:
            out.append(a.FLUSH_CALLER_AUDIO)  # what the caller said so far; nothing after this
        self.ending = ending
        self._enter(CallState.ENDING)
        ending.start(now, out)

    def _on_drain(self, deadline: float, now: float, out: list[a.Action]) -> None:
        line_s = len(self.lines(Line.DRAIN, self.rate)) / (2 * self.rate)
        start_by = deadline - line_s - 1.0
        out.append(a.SetTimer(Timer.DRAIN_DEADLINE, deadline))
        if start_by <= now:
            self.end_with_line(Line.DRAIN, Outcome.DRAINED, Reason.NODE_DRAINING, now, out)
        else:
            out.append(a.SetTimer(Timer.DRAIN_START, start_by))

    def close_call(self, outcome: Outcome, now: float, out: list[a.Action]) -> None:
        """The node ends the call: model closed, then the media socket normally (1000)."""
        if self._uplink:
            out.append(a.FLUSH_CALLER_AUDIO)
        self.close = {"code": 1000, "by": str(ClosedBy.NODE), "reason": ""}
        self._stop_supervision(out)
        out.append(a.CLOSE_MODEL)
        out.append(a.CloseSocket(1000))
        self._end(outcome, out)

    def _on_socket_closed(self, event: e.SocketClosed, out: list[a.Action]) -> None:
        self.close = {"code": event.code, "by": str(event.by), "reason": event.reason}
        clean = event.by is ClosedBy.PEER and event.code in CLEAN_CLOSE_CODES
        outcome = Outcome.CALLER_HANGUP if clean else Outcome.STREAM_LOST
        log.info("call %s: media socket closed (%s)", self.call_id, outcome, extra=self.close)
        if self._uplink:
            out.append(a.FLUSH_CALLER_AUDIO)
        self._stop_supervision(out)
        out.append(a.CLOSE_MODEL)
        self._end(outcome, out)

    def _stop_supervision(self, out: list[a.Action]) -> None:
        if self.supervised is not None and self.supervised.active:
            self.supervised.active = False
            out.append(a.STOP_SUPERVISION)

    def _end(self, outcome: Outcome, out: list[a.Action]) -> None:
        self.outcome = outcome
        self._enter(CallState.ENDED)
        out.append(a.End(outcome))

    # --- the call record ---------------------------------------------------------------------

    def final_record(
        self, now: float
    ) -> tuple[Outcome, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        """Outcome, ``media`` fields, transcript turns and metrics of the call, as of `now`."""
        ledger = self.playback.pacer.ledger
        for item in self.transcript.agent.values():
            if item.heard_ms is None:
                heard = ledger.heard_ms(item.item_id, now)
                item.heard_ms = min(heard, item.generated_ms)
                item.interrupted = heard < item.generated_ms
        outcome = self.outcome or Outcome.FAILED
        media: dict[str, Any] = {
            "outcome": str(outcome),
            "sample_rate": self.rate,
            "decode_rate": self.decode_rate,
            "track": self.profile.audio.track,
        }
        if self.metadata is not None:
            media["metadata"] = self.metadata
        if self.close is not None:
            media["close"] = dict(self.close)
        stats = self.playback.pacer.stats if self.playback else PacerStats()
        return outcome, media, self.transcript.turns(), self.metrics.to_record(stats)
