"""A supervised transfer, without I/O: the HOLDING and BRIDGED states of a call.

After the model's handoff line has played (the handoff was written with ``path="supervise"``),
the caller hears the hold loop — queued a round ahead through the pacer, so never silence —
while the shell runs `media_node.supervision.SupervisedTransfer` and reports its progress as
`HandoffProgress` events:

- ``connected``: the hold loop is cut; with the model still open, the receptionist says a
  one-sentence introduction both hear (from the handoff summary); once it has played out the
  model session is closed and the node stays on the media socket, silent (BRIDGED).
- ``nobody`` (ring timeout, busy, no answer, refusal, error): the receptionist comes back —
  the model, kept open while holding, is asked to say nobody is free and to offer to take a
  message. Without the model the caller hears the apology line and goes to the front desk (the
  dial path).
- ``person_left`` (the caller stayed): a new model session is opened and its first reply says
  the colleague left and offers more help or a message. It is told the conversation before the
  transfer as the caller heard it, and the note the colleague was given
  (``prompts.earlier_in_call``), so it does not ask again; what the caller and the person said
  to each other is not known (no model listened then). The receptionist's length limit starts
  over from there.

While the receptionist comes back (a reply being prepared, a new session opening) the hold loop
goes on, or starts again, until the reply's first audio or the caller's own words.

The bridged leg lasts at most the profile's ``handoff.max_bridged_seconds`` (from the person's
answer): then the call is hung up on the platform and the socket closed (reason
``bridged_limit``, outcome ``max_duration``).

While holding, caller audio is not sent to the model: nothing said over the hold loop gets an
answer, and the model's context stays as it was at the handoff. If the caller hangs up while the
person is rung, the core asks the shell to stop the supervision (a DELETE: nothing is left ringing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from media_node import prompts
from media_node.call import actions as a
from media_node.call.state import TALKING, CallState, ModelLink, Outcome, Reason, Timer
from media_node.call.transcript import handoff_summary

if TYPE_CHECKING:
    from media_node.call.core import CallCore

log = logging.getLogger("media_node.call")

HOLD_LEAD = 1.0
"""Seconds before a round of the hold loop runs out when the next one is queued."""
INTRODUCTION_POLL = 0.02
"""While the introduction is still arriving its end is unknown: look again this often."""

CONNECTED = "connected"
PERSON_LEFT = "person_left"
NOBODY = "nobody"


@dataclass(eq=False)
class Supervised:
    """The supervised transfer of one call, once its handoff line has played.

    Attributes:
        core: The call.
        handoff: The written handoff (its summary feeds the introduction).
        active: The supervision is still followed (holding or bridged).
        introducing: The model's introduction is awaited or playing.
        bridging: The receptionist is coming back and the hold loop fills the wait for its
            reply's first audio.
    """

    core: CallCore
    handoff: dict[str, Any]
    active: bool = False
    introducing: bool = False
    bridging: bool = False
    hold_pcm: bytes = b""
    next_refill: float = 0.0
    introduction_limit: float = 0.0

    def start(self, now: float, out: list[a.Action]) -> None:
        """The handoff line has played: hold audio, and ring the person."""
        core = self.core
        core.ending = None
        core.enter(CallState.HOLDING)
        self.active = True
        self.hold_pcm = core.hold(core.rate)
        self.next_refill = now
        self._refill(now, out)
        self.refresh_summary(out)
        out.append(a.StartSupervision(self.handoff))

    def refresh_summary(self, out: list[a.Action]) -> None:
        """Fold the caller's words transcribed after the handoff was written into its summary.

        The last turn before ``transfer_to_human`` is often transcribed only after the tool
        call; while holding no caller audio reaches the model, so nothing newer can arrive.
        The introduction and the record then use the summary with those words.
        """
        reason = str(self.handoff.get("reason") or "")
        summary = handoff_summary(reason, self.core.transcript.recent_caller_text())
        if summary != self.handoff.get("summary"):
            self.handoff = {**self.handoff, "summary": summary}
            self.core.handoff = self.handoff
            out.append(a.UpdateHandoffSummary(summary))

    def _refill(self, now: float, out: list[a.Action]) -> None:
        self.core.playback.play_line(self.hold_pcm)
        out.append(a.KICK)
        loop_s = len(self.hold_pcm) / (2 * self.core.rate)
        self.next_refill = max(now, self.next_refill + loop_s - HOLD_LEAD)
        out.append(a.SetTimer(Timer.HOLD_REFILL, self.next_refill))
        self.next_refill += HOLD_LEAD

    def _stop_hold(self, now: float, out: list[a.Action], *, keep_reply: bool = False) -> None:
        """Stops the hold loop; with `keep_reply`, a reply still queued ahead of it (the
        handoff line, when the person answers that fast) plays to its end first."""
        out.append(a.ClearTimer(Timer.HOLD_REFILL))
        playback = self.core.playback
        if keep_reply and playback.pacer.drop_unnamed_tail() is not None:
            return
        if playback.busy(now):
            playback.interrupt(now)
            out.append(a.INTERRUPT)
            out.append(a.KILL_AUDIO)

    # --- events, as the core passes them on ----------------------------------------------

    def progress(
        self, state: str, reason: str, ms: int | None, now: float, out: list[a.Action]
    ) -> None:
        """The supervision reached `state` (see the module docstring)."""
        core = self.core
        log.info("call %s: supervised transfer %s %s", core.call_id, state, reason)
        if state == CONNECTED and core.state is CallState.HOLDING:
            core.metrics.handoffs_connected += 1
            core.metrics.time_to_person_ms = ms
            self._stop_hold(now, out, keep_reply=True)
            core.enter(CallState.BRIDGED)
            bridged_limit = now + core.profile.handoff.max_bridged_seconds
            out.append(a.SetTimer(Timer.BRIDGED_LIMIT, bridged_limit))
            if core.model_open:
                self.introducing = True
                self.introduction_limit = now + core.timeouts.handoff_line + core.timeouts.playout
                summary = str(self.handoff.get("summary") or self.handoff.get("reason") or "")
                out.append(
                    a.CreateResponse(prompts.introduction_instructions(core.profile, summary))
                )
                out.append(a.SetTimer(Timer.INTRODUCTION, now + core.timeouts.handoff_line))
            else:
                self._close_model(out)
        elif state == NOBODY and core.state is CallState.HOLDING:
            core.metrics.handoffs_failed += 1
            self.active = False
            core.come_back(prompts.nobody_available_instructions(core.profile), now, out)
            self._hold_until_reply(now, out)
        elif state == PERSON_LEFT and core.state is CallState.BRIDGED:
            self.active = False
            self._stop_hold(now, out)
            out.append(a.ClearTimer(Timer.BRIDGED_LIMIT))
            if self.introducing:
                self.introducing = False
                out.append(a.ClearTimer(Timer.INTRODUCTION))
            # The receptionist's length limit (swallowed while bridged) starts over from here.
            core.restart_watchdog(now)
            summary = str(self.handoff.get("summary") or self.handoff.get("reason") or "")
            earlier = prompts.earlier_in_call(core.transcript.turns(), summary)
            instructions = prompts.person_left_instructions(core.profile, earlier)
            if core.model_open:
                core.come_back(instructions, now, out)
            else:
                core.reopen_model(instructions, now, out, earlier)
            self._hold_until_reply(now, out)

    def _hold_until_reply(self, now: float, out: list[a.Action]) -> None:
        """The receptionist is coming back: the hold loop goes on (or starts again) until the
        reply has audio, so the seconds a model takes to answer — or a new session to open —
        are never silence."""
        core = self.core
        if core.state not in TALKING:
            self._stop_hold(now, out)  # the comeback failed over to an ending of its own
            return
        self.bridging = True
        if not core.playback.busy(now):
            self.next_refill = now
            self._refill(now, out)

    def end_bridging(self, now: float, out: list[a.Action]) -> None:
        """The receptionist's reply has audio, or the caller speaks: the hold loop stops."""
        if self.bridging:
            self.bridging = False
            self._stop_hold(now, out)

    def response_done(self, now: float, out: list[a.Action]) -> None:
        """A response ended: the introduction, while it is awaited."""
        if self.introducing:
            self._check_introduction(now, out)

    def timer_fired(self, timer: Timer, now: float, out: list[a.Action]) -> None:
        """One of the transfer's timers is due."""
        core = self.core
        if timer is Timer.HOLD_REFILL and (
            core.state is CallState.HOLDING or (self.bridging and core.state in TALKING)
        ):
            self._refill(now, out)
        elif timer is Timer.BRIDGED_LIMIT and core.state is CallState.BRIDGED:
            self._end_bridged(now, out)
        elif timer is Timer.INTRODUCTION and self.introducing:
            if core.response is not None and now < self.introduction_limit:
                out.append(a.SetTimer(Timer.INTRODUCTION, self.introduction_limit))
                return
            self._check_introduction(now, out)

    def _end_bridged(self, now: float, out: list[a.Action]) -> None:
        """The bridged leg reached its limit: the call is hung up on the platform first (closing
        only the socket could strand the caller or send them to the front desk), then closed."""
        core = self.core
        log.info("call %s: the caller and the person reached the bridged limit", core.call_id)
        self.active = False  # the hang-up ends the supervision; nothing is left to remove
        self.introducing = False
        out.append(a.ClearTimer(Timer.INTRODUCTION))
        out.append(a.HangUpCall(str(Reason.BRIDGED_LIMIT)))
        core.close_call(Outcome.MAX_DURATION, now, out)

    def _check_introduction(self, now: float, out: list[a.Action]) -> None:
        playback = self.core.playback
        if playback.busy(now) and now < self.introduction_limit:
            idle_at = playback.idle_at(now)
            at = now + INTRODUCTION_POLL if idle_at is None else idle_at
            out.append(a.SetTimer(Timer.INTRODUCTION, min(at, self.introduction_limit)))
            return
        self.introducing = False
        self._close_model(out)

    def _close_model(self, out: list[a.Action]) -> None:
        core = self.core
        out.append(a.ClearTimer(Timer.INTRODUCTION))
        if core.model_link is not ModelLink.GONE:
            out.append(a.CLOSE_MODEL)
        core.model_link = ModelLink.GONE
        core.response = None
