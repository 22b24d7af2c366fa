"""How a call ends, without I/O: the ENDING state's phases, in order.

Exactly one ending runs per call. Every ending writes its handoff to the call record first and
waits for the write before anything else (a function output, the model's line, the close), lets
its last line play out, rewrites the summary if the caller's last words were transcribed late,
waits for the platform's playout buffer, and closes the model, then the socket (1000)::

    LINE:   cut model audio, queue the line ─▶ WRITING_HANDOFF ─▶ PLAYING_LINE ─▶ FINISHING
    SPOKEN: WRITING_HANDOFF ─▶ function output, ask for the line ─▶ WAITING_LINE ─▶ PLAYING_LINE
    both:   … ─▶ FINISHING ─▶ CLOSING

A transfer written with ``path="supervise"`` does not finish: once its line has played the call
holds while a person is rung (`media_node.call.supervised`).

Without the model (it failed or closed), a spoken ending skips its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mapokezi.handoff import HandoffPath
from media_node.call import actions as a
from media_node.call.state import (
    EndingKind,
    EndingPhase,
    HandoffKind,
    Line,
    Outcome,
    Reason,
    Timer,
)
from media_node.call.transcript import handoff_summary, resolve_handoff

if TYPE_CHECKING:
    from media_node.call.core import CallCore

PLAYOUT_POLL = 0.02
"""While a model line is still arriving its end is unknown: look again this often (seconds)."""


@dataclass(eq=False)
class Ending:
    """The running ending of a call and where it is.

    Attributes:
        core: The call.
        kind: Who speaks the last line.
        outcome: The media outcome once the call closes.
        handoff: The handoff to write first.
        line: The pre-rendered line (LINE endings).
        instructions: What the model is asked to say (SPOKEN endings).
        call_id: The tool call to answer before the line, if a tool call started the ending.
    """

    core: CallCore
    kind: EndingKind
    outcome: Outcome
    handoff: dict[str, Any]
    line: Line | None = None
    instructions: str = ""
    call_id: str | None = None
    phase: EndingPhase = EndingPhase.WRITING_HANDOFF
    line_requested: bool = False
    line_response: str | None = None
    playout_limit: float = 0.0
    choose_path: bool = False
    """A transfer the model asked for: the handoff write chooses dial or supervise."""
    path: HandoffPath | None = None

    @classmethod
    def with_line(cls, core: CallCore, line: Line, outcome: Outcome, reason: Reason) -> Ending:
        """A pre-rendered line, then a transfer to the front desk."""
        summary = handoff_summary(reason, core.transcript.recent_caller_text())
        handoff = resolve_handoff(core.profile, HandoffKind.TRANSFER, reason, None, summary)
        return cls(core, EndingKind.LINE, outcome, handoff, line=line)

    @classmethod
    def spoken(
        cls,
        core: CallCore,
        handoff: dict[str, Any],
        outcome: Outcome,
        instructions: str,
        call_id: str | None,
    ) -> Ending:
        """The model's short line (asked for with `instructions`), then the handoff."""
        return cls(
            core, EndingKind.SPOKEN, outcome, handoff, instructions=instructions, call_id=call_id
        )

    def start(self, now: float, out: list[a.Action]) -> None:
        """The ending begins (the core is in ENDING)."""
        if self.kind is EndingKind.LINE and self.line is not None:
            core = self.core
            playback = core.playback
            if playback.busy(now):
                playback.interrupt(now)
                out.append(a.INTERRUPT)
                out.append(a.KILL_AUDIO)
            playback.play_line(core.lines(self.line, core.rate))
            out.append(a.KICK)
        self._write(self.handoff, out, choose_path=self.choose_path)

    def _write(
        self, handoff: dict[str, Any], out: list[a.Action], *, choose_path: bool = False
    ) -> None:
        self.core.handoff = handoff
        out.append(a.WriteHandoff(handoff, choose_path))

    # --- events, as the core passes them on ------------------------------------------------

    def handoff_written(
        self, now: float, out: list[a.Action], path: HandoffPath | None = None
    ) -> None:
        """The last `WriteHandoff` is done (`path`: how the transfer reaches the person)."""
        core = self.core
        if self.phase is EndingPhase.WRITING_HANDOFF:
            self.path = path
        if self.phase is EndingPhase.FINISHING:
            out.append(a.SetTimer(Timer.CLOSE_MARGIN, now + core.timeouts.close_margin))
            return
        if self.phase is not EndingPhase.WRITING_HANDOFF:
            return
        if self.kind is EndingKind.LINE or not core.model_open:
            self._play_out(now, out)
            return
        if self.call_id is not None:
            status = "connecting" if self.handoff["kind"] == HandoffKind.TRANSFER else "ending"
            out.append(a.SendFunctionOutput(self.call_id, {"ok": True, "status": status}))
        self.phase = EndingPhase.WAITING_LINE
        out.append(a.SetTimer(Timer.HANDOFF_LINE, now + core.timeouts.handoff_line))
        if core.response is None:  # a new response must wait for the current one's end
            self._request_line(out)

    def response_started(self, response_id: str) -> None:
        """The model began a response (the line, once it was asked for)."""
        if self.line_requested and self.line_response is None:
            self.line_response = response_id

    def response_done(self, response_id: str, now: float, out: list[a.Action]) -> None:
        """A response ended: the line was said, or the way is clear to ask for it."""
        if self.phase is not EndingPhase.WAITING_LINE:
            return
        if self.line_requested:
            if response_id == self.line_response:
                self._play_out(now, out)
        elif self.core.response is None and self.core.model_open:
            self._request_line(out)

    def model_lost(self, now: float, out: list[a.Action]) -> None:
        """The model failed or closed: a line still awaited will never come."""
        if self.phase is EndingPhase.WAITING_LINE:
            self._play_out(now, out)

    def timer_fired(self, timer: Timer, now: float, out: list[a.Action]) -> None:
        """One of the ending's timers is due."""
        if timer is Timer.HANDOFF_LINE and self.phase is EndingPhase.WAITING_LINE:
            self._play_out(now, out)
        elif timer is Timer.PLAYOUT and self.phase is EndingPhase.PLAYING_LINE:
            self._check_playout(now, out)
        elif timer is Timer.CLOSE_MARGIN and self.phase is EndingPhase.FINISHING:
            self.phase = EndingPhase.CLOSING
            self.core.close_call(self.outcome, now, out)

    # --- steps -------------------------------------------------------------------------------

    def _request_line(self, out: list[a.Action]) -> None:
        self.line_requested = True
        out.append(a.CreateResponse(self.instructions))

    def _play_out(self, now: float, out: list[a.Action]) -> None:
        if self.phase is EndingPhase.WAITING_LINE:
            out.append(a.ClearTimer(Timer.HANDOFF_LINE))
        self.phase = EndingPhase.PLAYING_LINE
        self.playout_limit = now + self.core.timeouts.playout
        self._check_playout(now, out)

    def _check_playout(self, now: float, out: list[a.Action]) -> None:
        playback = self.core.playback
        if self.path is HandoffPath.SUPERVISE and playback.idle_at(now) is not None:
            # The whole line is queued: the hold loop goes right behind it, without a gap.
            self.core.hold_for_person(self.handoff, now, out)
            return
        if playback.busy(now) and now < self.playout_limit:
            idle_at = playback.idle_at(now)
            at = now + PLAYOUT_POLL if idle_at is None else idle_at
            out.append(a.SetTimer(Timer.PLAYOUT, min(at, self.playout_limit)))
            return
        if self.path is HandoffPath.SUPERVISE:
            self.core.hold_for_person(self.handoff, now, out)  # the line never ended: hold now
            return
        self._finish(now, out)

    def _finish(self, now: float, out: list[a.Action]) -> None:
        """The caller's last words are transcribed asynchronously and often arrive after the
        tool call: the summary is rewritten if they did (the webhook reads the handoff only
        once the socket has closed). Then the platform's own playout buffer (mod_audio_fork
        prebuffers ~80 ms) gets time to play the last frames, which the pacer counts as heard."""
        self.phase = EndingPhase.FINISHING
        core = self.core
        handoff = core.handoff
        if handoff is not None and handoff.get("reason") != Reason.IDLE:
            summary = handoff_summary(handoff["reason"], core.transcript.recent_caller_text())
            if summary != handoff.get("summary"):
                self._write({**handoff, "summary": summary}, out)
                return
        out.append(a.SetTimer(Timer.CLOSE_MARGIN, now + core.timeouts.close_margin))
