"""How a call ends: handoffs after a tool call, pre-rendered lines, failures and deadlines.

`CallEndings` is the ending half of `media_node.call.CallSession`, kept apart so each module
stays readable; it uses the session's state and is not meant to be used on its own. Exactly one
ending runs per call (`_start_ending`): a handoff is always written before the socket closes,
and every path ends with the model session closed, then the media socket closed normally (1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from websockets.exceptions import ConnectionClosed

from mapokezi.profiles import Profile
from media_node import call_logic as logic
from media_node import prompts
from media_node.assets import APOLOGY, TIME_LIMIT, load_line
from media_node.call_logic import Transcript, Watchdog
from media_node.context import CallTimeouts
from media_node.inbound import InboundAudio
from media_node.models import base as m
from media_node.paced_sender import PacedSender
from media_node.playback import Playback
from media_node.records import CallRecords
from media_node.sautikit_protocol import kill_audio

log = logging.getLogger("media_node.call")


class CallEndings:
    """Endings of a call (mixed into `CallSession`, which sets all of these)."""

    ws: Any
    call_id: str
    profile: Profile
    timeouts: CallTimeouts
    clock: Any
    records: CallRecords
    transcript: Transcript
    watchdog: Watchdog
    model: m.ModelSession | None
    playback: Playback | None
    sender: PacedSender | None
    inbound: InboundAudio | None
    outcome: str | None
    handoff: dict[str, Any] | None
    _ending: asyncio.Task[None] | None
    _ended: asyncio.Event
    _line_done: asyncio.Event
    _no_response: asyncio.Event
    _talking: bool
    _accept_model_audio: bool
    _model_alive: bool
    _closing_socket: bool
    _line_requested: bool
    _response: str | None

    def _start_ending(self, ending: Coroutine[Any, Any, None]) -> bool:
        if self._ending is not None or self._ended.is_set():
            ending.close()
            return False
        # Caller audio gathered while talking still reaches the model; none after this.
        tail = self._take_uplink_tail()
        self._talking = False
        self._ending = asyncio.create_task(self._run_ending(ending, tail))
        return True

    def _take_uplink_tail(self) -> bytes:
        """Caller audio still gathering into a block, while caller audio goes to the model."""
        if self.inbound is None or not self._talking:
            return b""
        return self.inbound.flush()

    async def _send_uplink_tail(self, tail: bytes) -> None:
        if tail and self._model_alive:
            await self.model.send_audio(tail)

    async def _run_ending(self, ending: Coroutine[Any, Any, None], uplink_tail: bytes) -> None:
        try:
            await self._send_uplink_tail(uplink_tail)
            await ending
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: ending failed", self.call_id)
            self.outcome = self.outcome or logic.OUTCOME_FAILED
        self._ended.set()

    def _fail(self, why: str) -> None:
        """The model cannot serve the caller: apology, front-desk handoff, close."""
        if self._ending is not None or self._ended.is_set():
            return
        log.warning("call %s: failing over to the front desk: %s", self.call_id, why)
        self._start_ending(
            self._line_ending(APOLOGY, logic.OUTCOME_FAILED, logic.REASON_MODEL_UNAVAILABLE)
        )

    async def _line_ending(self, line: str, outcome: str, reason: str) -> None:
        """Cuts any model audio, plays a pre-rendered line and transfers to the front desk."""
        self._accept_model_audio = False
        now = self.clock()
        if self.playback.busy(now):
            self.playback.interrupt(now)
            self.sender.interrupt()
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(kill_audio())
        self.playback.play_line(load_line(line, self.profile.audio.sample_rate))
        self.sender.kick()
        summary = logic.handoff_summary(reason, self.transcript.recent_caller_text())
        await self._write_handoff(
            logic.resolve_handoff(self.profile, "transfer", reason, None, summary)
        )
        await self._wait_played(self.timeouts.playout)
        await self._finish_handoff()
        await self._close(outcome)

    def _on_function_call(self, call: m.FunctionCall) -> None:
        if call.name not in (prompts.TRANSFER_TOOL, prompts.END_CALL_TOOL):
            log.warning("call %s: model called unknown tool %r", self.call_id, call.name)
            return
        kind = "transfer" if call.name == prompts.TRANSFER_TOOL else "hangup"
        reason = str(call.arguments.get("reason") or call.name)
        department = call.arguments.get("department")
        summary = logic.handoff_summary(reason, self.transcript.recent_caller_text())
        handoff = logic.resolve_handoff(
            self.profile, kind, reason, department if isinstance(department, str) else None, summary
        )
        outcome = logic.OUTCOME_TRANSFER if kind == "transfer" else logic.OUTCOME_HANGUP
        self._start_ending(self._spoken_ending(handoff, outcome, call.call_id))

    async def _spoken_ending(
        self, handoff: dict[str, Any], outcome: str, call_id: str | None
    ) -> None:
        """Writes the handoff, lets the model say a short line, then closes."""
        await self._write_handoff(handoff)
        if self._model_alive:
            if call_id is not None:
                status = "connecting" if handoff["kind"] == "transfer" else "ending"
                await self.model.send_function_output(call_id, {"ok": True, "status": status})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeouts.handoff_line):
                    await self._no_response.wait()  # response.create must follow response.done
                    self._line_requested = True
                    if self._model_alive:
                        if handoff["reason"] == logic.REASON_IDLE:
                            instructions = prompts.idle_goodbye_instructions(self.profile)
                        else:
                            instructions = prompts.handoff_line_instructions(
                                self.profile, handoff["kind"]
                            )
                        await self.model.create_response(instructions)
                        await self._line_done.wait()
        await self._wait_played(self.timeouts.playout)
        await self._finish_handoff()
        await self._close(outcome)

    async def _write_handoff(self, handoff: dict[str, Any]) -> None:
        self.handoff = handoff
        await self.records.handoff(handoff)

    async def _finish_handoff(self) -> None:
        """Last steps before the socket closes on a handoff.

        The caller's last words are transcribed asynchronously and often arrive after the tool
        call: rewrite the summary if they did (the webhook reads the handoff only once the socket
        has closed). Then give the platform's own playout buffer (mod_audio_fork prebuffers
        ~80 ms) time to play the line's last frames, which the pacer counts as heard already.
        """
        handoff = self.handoff
        if handoff is not None and handoff.get("reason") != logic.REASON_IDLE:
            summary = logic.handoff_summary(handoff["reason"], self.transcript.recent_caller_text())
            if summary != handoff.get("summary"):
                await self._write_handoff({**handoff, "summary": summary})
        await asyncio.sleep(self.timeouts.close_margin)

    async def _wait_played(self, limit: float) -> None:
        # Playout is clock-driven (no event marks "the caller heard the last frame"): poll.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while self.playback.busy(self.clock()):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)

    async def _close(self, outcome: str) -> None:
        """Closes the model session, then the media socket normally (1000)."""
        self.outcome = outcome
        self._closing_socket = True
        if self.model is not None:
            await self.model.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(1000), 2.0)

    async def _on_deadline(self, due: str) -> None:
        log.info("call %s: %s", self.call_id, due)
        if due in (logic.WATCH_GREETING, logic.WATCH_REPLY):
            self._fail(due)
        elif due == logic.WATCH_TIME_LIMIT:
            self._start_ending(
                self._line_ending(TIME_LIMIT, logic.OUTCOME_MAX_DURATION, logic.REASON_MAX_DURATION)
            )
        elif not self._talking or not self._model_alive:
            return
        elif due == logic.WATCH_TIME_WARNING:
            await self.model.add_system_message(
                "The call reaches its time limit in one minute; the caller will then be "
                "transferred to the front desk."
            )
            if self._response is None:
                await self.model.create_response(prompts.time_warning_instructions(self.profile))
        elif due == logic.WATCH_IDLE_PROMPT:
            await self.model.create_response(prompts.idle_prompt_instructions(self.profile))
        elif due == logic.WATCH_IDLE_END:
            summary = logic.handoff_summary("caller went silent", "")
            handoff = {"kind": "hangup", "reason": logic.REASON_IDLE, "summary": summary}
            self._start_ending(self._spoken_ending(handoff, logic.OUTCOME_IDLE, None))
