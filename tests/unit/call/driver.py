"""Drives a `CallCore` on an explicit clock, the way `CallSession` does over real I/O.

No sockets and no sleeping: time moves only when a test says so. Frames are released from the
core's real pacer as `PacedSender` would (honouring the start cushion), timers fire in time
order, and every action the core returns is kept for the test to inspect.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mapokezi.profiles import Limits, Profile, load_profile_file, parse_profile
from media_node.call import actions as a
from media_node.call import events as e
from media_node.call.core import CallCore
from media_node.call.state import Timer
from media_node.context import CallTimeouts
from media_node.inbound import decode_plan
from media_node.models import base as m

ROOT = Path(__file__).resolve().parents[3]
START = 1000.0
TIMEOUTS = CallTimeouts(
    greeting=8.0, reply=10.0, handoff_line=8.0, playout=15.0, time_warning=60.0, close_margin=0.25
)
MODEL_BYTES_PER_MS = 48  # 24 kHz 16-bit mono


def make_profile(**changes: Any) -> Profile:
    profile = parse_profile(
        load_profile_file(ROOT / "profiles" / "example.yaml"), number="+254700000100"
    )
    changes.setdefault("limits", Limits(900, idle_prompt_seconds=15, idle_end_seconds=30))
    return dataclasses.replace(profile, **changes)


class Driver:
    """One call's core with a clock, a simulated pacer and timers."""

    def __init__(
        self,
        profile: Profile | None = None,
        *,
        timeouts: CallTimeouts = TIMEOUTS,
        supports_truncate: bool = True,
        lead_ms: float = 60.0,
    ) -> None:
        self.profile = profile or make_profile()
        self.core = CallCore(
            call_id="CA-unit",
            profile=self.profile,
            timeouts=timeouts,
            model_output_rate=24000,
            supports_truncate=supports_truncate,
            pacer_lead_ms=lead_ms,
        )
        self.now = START
        self.timers: dict[Timer, float] = {}
        self.log: list[a.Action] = []
        self.frames: list[tuple[str | None, float]] = []

    # --- feeding -----------------------------------------------------------------------------

    def feed(self, event: e.CallEvent) -> list[a.Action]:
        """Hands `event` to the core now; returns the actions (timers are kept pending)."""
        out = list(self.core.handle(event, self.now))
        self.log.extend(out)
        for action in out:
            if isinstance(action, a.SetTimer):
                self.timers[action.timer] = action.at
            elif isinstance(action, a.ClearTimer):
                self.timers.pop(action.timer, None)
        self._release()
        return out

    def advance(self, seconds: float) -> list[a.Action]:
        """Moves the clock on, releasing frames and firing timers as they fall due."""
        return self.advance_to(self.now + seconds)

    def advance_to(self, until: float) -> list[a.Action]:
        start = len(self.log)
        while True:
            wake = self._release()
            due = list(self.timers.values())
            if wake is not None:
                due.append(wake)
            next_at = min(due, default=None)
            if next_at is None or next_at > until:
                self.now = until
                self._release()
                return self.log[start:]
            self.now = max(self.now, next_at)
            self._release()
            for timer, at in sorted(self.timers.items(), key=lambda kv: kv[1]):
                if at <= self.now and self.timers.get(timer) == at:
                    del self.timers[timer]
                    self.feed(e.TimerFired(timer))

    def _release(self) -> float | None:
        """What `PacedSender` does when kicked or woken: release the due frames."""
        playback = self.core.playback
        hold = playback.hold_until(self.now)
        if hold is not None:
            return hold
        for frame in playback.pacer.release(self.now):
            self.frames.append((frame.item_id, frame.released_at))
            self.core.frame_released(frame.item_id, frame.released_at)
        return playback.pacer.next_wakeup(self.now)

    # --- common steps ------------------------------------------------------------------------

    def connect(self) -> list[a.Action]:
        """Socket accepted, metadata frame read, model connected and configured."""
        out = self.feed(e.Connected())
        plan = decode_plan(None, self.profile.audio)
        out += self.feed(e.StreamStarted(plan, {"callSid": "CA-unit", "sampleRate": 16000}))
        out += self.feed(e.ModelConnected())
        out += self.feed(m.SessionReady())
        return out

    def say(self, response_id: str, item_id: str, ms: int, *, done: bool = True) -> list[a.Action]:
        """The model streams `ms` of audio for one item at once (and ends it when `done`)."""
        out = self.feed(m.ResponseStarted(response_id))
        out += self.feed(m.AudioDelta(response_id, item_id, bytes(ms * MODEL_BYTES_PER_MS)))
        if done:
            out += self.feed(m.AudioDone(response_id, item_id))
            out += self.feed(m.ResponseDone(response_id, "completed"))
        return out

    def greeted(self, ms: int = 2000) -> None:
        """The call is connected and its greeting has been said and heard in full."""
        self.connect()
        self.say("resp-greeting", "item-greeting", ms)
        self.feed(m.TranscriptDone("resp-greeting", "item-greeting", "Karibu, how can I help?"))
        self.advance(ms / 1000 + 0.5)

    def caller_turn(self, text: str, speech_s: float = 1.0, item_id: str = "item-caller") -> None:
        """The caller speaks for `speech_s` and stops; the transcript arrives at once."""
        self.feed(m.SpeechStarted(item_id))
        self.advance(speech_s)
        self.feed(m.SpeechStopped(item_id))
        self.feed(m.CallerTranscript(item_id, text))

    def written(self) -> list[a.Action]:
        """The pending handoff write finished."""
        return self.feed(e.HandoffWritten(True))

    def of(self, kind: type[Any], actions: list[a.Action] | None = None) -> list[Any]:
        """The actions of one type, from `actions` or everything so far."""
        return [x for x in (self.log if actions is None else actions) if isinstance(x, kind)]
