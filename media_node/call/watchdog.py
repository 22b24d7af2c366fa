"""Dead-air deadlines of a call: greeting, reply, length limit (and its warning), idle caller.

Pure: times are monotonic seconds passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Deadline(StrEnum):
    """A deadline that fell due."""

    GREETING = "greeting_timeout"
    REPLY = "reply_timeout"
    TIME_WARNING = "time_warning"
    TIME_LIMIT = "time_limit"
    IDLE_PROMPT = "idle_prompt"
    IDLE_END = "idle_end"


@dataclass
class Watchdog:
    """Deadlines of a call; `check` says which one fell due (each fires once per arming).

    Between events nothing changes but the time, so the caller need not poll: it calls
    `check` when `next_deadline` comes and again after any event that arms a deadline.

    Args:
        started: When the media socket connected.
        max_call_seconds: The profile's length limit (warned 60 s before).
        idle_prompt_seconds: Caller silence, after the agent finished, before "still there?".
        idle_end_seconds: Further silence after the prompt before the goodbye.
        greeting_timeout: Bound on the first reply audio from connect.
        reply_timeout: Bound on a reply after the caller stops speaking.
        warning_lead: How long before the length limit the caller is warned.
    """

    started: float
    max_call_seconds: float
    idle_prompt_seconds: float
    idle_end_seconds: float
    greeting_timeout: float
    reply_timeout: float
    warning_lead: float = 60.0
    greeted: bool = False
    reply_due: float | None = None
    quiet_since: float | None = None
    idle_prompted: bool = False
    warned: bool = False
    greeting_missed: bool = False
    limit_reached: bool = False

    def first_audio(self) -> None:
        """The model produced audio (greeting or reply): no reply is overdue."""
        self.greeted = True
        self.reply_due = None

    def caller_spoke(self) -> None:
        """Caller speech started: idle timing restarts after the next reply."""
        self.quiet_since = None
        self.idle_prompted = False

    def caller_stopped(self, now: float) -> None:
        """Caller speech stopped: a reply is due within the bound."""
        self.reply_due = now + self.reply_timeout

    def reply_answered(self) -> None:
        """The model answered without audio (a tool call or an empty response)."""
        self.reply_due = None

    def agent_finished(self, now: float) -> None:
        """The agent's audio finished playing and nothing is pending: silence starts now."""
        if self.quiet_since is None:
            self.quiet_since = now

    def agent_busy(self) -> None:
        """The agent is speaking or generating: the caller is not idle."""
        self.quiet_since = None

    def check(self, now: float) -> Deadline | None:
        """The deadline that fell due at `now`, if any (at most one per call)."""
        # Each deadline is compared as the same sum `next_deadline` reports, so a timer set for
        # that moment always finds it due (``now - started >= x`` may differ in the last bit).
        started = self.started
        if not self.limit_reached and now >= started + self.max_call_seconds:
            self.limit_reached = True
            return Deadline.TIME_LIMIT
        greeting_due = not self.greeted and not self.greeting_missed
        if greeting_due and now >= started + self.greeting_timeout:
            self.greeting_missed = True
            return Deadline.GREETING
        if self.reply_due is not None and now >= self.reply_due:
            self.reply_due = None
            return Deadline.REPLY
        if not self.warned and now >= started + self.max_call_seconds - self.warning_lead:
            self.warned = True
            return Deadline.TIME_WARNING
        if self.quiet_since is not None:
            if not self.idle_prompted and now >= self.quiet_since + self.idle_prompt_seconds:
                self.idle_prompted = True
                self.quiet_since = now
                return Deadline.IDLE_PROMPT
            if self.idle_prompted and now >= self.quiet_since + self.idle_end_seconds:
                self.quiet_since = None
                return Deadline.IDLE_END
        return None

    def next_deadline(self) -> float | None:
        """When `check` next reports a deadline unless an event comes first; None: never."""
        due: list[float] = []
        if not self.limit_reached:
            due.append(self.started + self.max_call_seconds)
        if not self.greeted and not self.greeting_missed:
            due.append(self.started + self.greeting_timeout)
        if self.reply_due is not None:
            due.append(self.reply_due)
        if not self.warned:
            due.append(self.started + self.max_call_seconds - self.warning_lead)
        if self.quiet_since is not None:
            wait = self.idle_end_seconds if self.idle_prompted else self.idle_prompt_seconds
            due.append(self.quiet_since + wait)
        return min(due, default=None)
