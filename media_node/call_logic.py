"""Pure decisions of one call: truncation points, heard text, transcript, handoff, watchdog.

Nothing here does I/O or reads a clock; times are monotonic seconds passed in. `CallSession`
(media_node/call.py) feeds events in and carries out what these return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mapokezi.profiles import Profile

OUTCOME_TRANSFER = "transfer"
OUTCOME_HANGUP = "hangup"
OUTCOME_CALLER_HANGUP = "caller_hangup"
OUTCOME_FAILED = "failed"
OUTCOME_DRAINED = "drained"
OUTCOME_MAX_DURATION = "max_duration"
OUTCOME_IDLE = "idle"

REASON_MODEL_UNAVAILABLE = "model_unavailable"
REASON_NODE_DRAINING = "node_draining"
REASON_MAX_DURATION = "max_duration"
REASON_IDLE = "idle"

SUMMARY_MAX_CHARS = 500


def truncate_point(heard_ms: float, generated_ms: float) -> int | None:
    """Where to truncate an interrupted item, or None when it had finished playing.

    Args:
        heard_ms: Milliseconds of the item the caller heard (from the playout ledger).
        generated_ms: Milliseconds of audio the model generated for the item.

    Returns:
        ``floor(min(heard, generated))``: the server rejects a point past its audio, and the
        last frame of a reply is padded with silence, so heard may exceed generated.
    """
    if generated_ms <= 0 or heard_ms >= generated_ms:
        return None
    return max(0, math.floor(min(heard_ms, generated_ms)))


def heard_text(text: str, heard_ms: float, generated_ms: float) -> str:
    """The part of `text` the caller heard: cut in proportion to heard/generated, on a word."""
    if generated_ms <= 0 or heard_ms >= generated_ms:
        return text
    if heard_ms <= 0:
        return ""
    cut = round(len(text) * heard_ms / generated_ms)
    words = text[:cut]
    if cut < len(text) and not text[cut].isspace() and " " in words:
        words = words[: words.rfind(" ")]  # a half-heard word counts as unheard
    return words.strip()


@dataclass
class AgentItem:
    """One assistant audio item: what was generated and what the caller heard."""

    item_id: str
    at_ms: int
    generated_bytes: int = 0
    text: str = ""
    heard_ms: float | None = None
    interrupted: bool = False
    done: bool = False

    @property
    def generated_ms(self) -> float:
        """Audio generated at 24 kHz PCM16: 48 bytes per millisecond."""
        return self.generated_bytes / 48


@dataclass
class Transcript:
    """Caller and agent turns of a call, in the shape of the call record's transcript."""

    caller: list[dict[str, Any]] = field(default_factory=list)
    agent: dict[str, AgentItem] = field(default_factory=dict)
    #: Transcript deltas per item until the full text arrives (a call may end before it does).
    partial: dict[str, str] = field(default_factory=dict)

    def add_agent_text(self, item_id: str, delta: str) -> None:
        """Records more generated text of an agent item."""
        self.partial[item_id] = self.partial.get(item_id, "") + delta

    def agent_item(self, item_id: str, at_ms: int) -> AgentItem:
        """The item with this id, created on first sight at `at_ms`."""
        item = self.agent.get(item_id)
        if item is None:
            item = self.agent[item_id] = AgentItem(item_id, at_ms)
        return item

    def add_caller(self, text: str, at_ms: int) -> None:
        """Records a transcribed caller turn."""
        self.caller.append({"role": "caller", "text": text, "at_ms": at_ms})

    def recent_caller_text(self, turns: int = 3) -> str:
        """The caller's last few turns, oldest first."""
        ordered = sorted(self.caller, key=lambda t: t["at_ms"])
        return " ".join(t["text"] for t in ordered[-turns:])

    def turns(self) -> list[dict[str, Any]]:
        """All turns ordered by time; agent text is what the caller heard."""
        out = list(self.caller)
        for item in self.agent.values():
            heard = item.generated_ms if item.heard_ms is None else item.heard_ms
            generated = item.text or self.partial.get(item.item_id, "")
            spoken = heard_text(generated, heard, item.generated_ms)
            out.append(
                {
                    "role": "agent",
                    "text": spoken,
                    "at_ms": item.at_ms,
                    "generated_text": generated,
                    "heard_text": spoken,
                    "interrupted": item.interrupted,
                    "generated_ms": round(item.generated_ms),
                    "heard_ms": round(min(heard, item.generated_ms)),
                }
            )
        return sorted(out, key=lambda t: t["at_ms"])


def handoff_summary(reason: str, recent_caller_text: str) -> str:
    """A short note for the human who takes the call: the model's reason, then the caller."""
    parts = [reason.strip().rstrip(".") + "." if reason.strip() else ""]
    if recent_caller_text.strip():
        parts.append(f'Caller said: "{recent_caller_text.strip()}"')
    summary = " ".join(p for p in parts if p)
    if len(summary) > SUMMARY_MAX_CHARS:
        summary = summary[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
    return summary


def resolve_handoff(
    profile: Profile, kind: str, reason: str, department: str | None, summary: str
) -> dict[str, Any]:
    """The handoff to write to the call record (transfer to a department or the front desk)."""
    handoff: dict[str, Any] = {"kind": kind, "reason": reason or kind, "summary": summary}
    if kind == "transfer":
        found = profile.department(department)
        handoff["target"] = profile.transfer_target(department)
        if found is not None:
            handoff["department"] = found.name
    return handoff


# --- watchdog --------------------------------------------------------------------------

WATCH_GREETING = "greeting_timeout"
WATCH_REPLY = "reply_timeout"
WATCH_TIME_WARNING = "time_warning"
WATCH_TIME_LIMIT = "time_limit"
WATCH_IDLE_PROMPT = "idle_prompt"
WATCH_IDLE_END = "idle_end"


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

    def check(self, now: float) -> str | None:
        """The deadline that fell due at `now`, if any (at most one per call)."""
        elapsed = now - self.started
        if not self.limit_reached and elapsed >= self.max_call_seconds:
            self.limit_reached = True
            return WATCH_TIME_LIMIT
        if not self.greeted and not self.greeting_missed and elapsed >= self.greeting_timeout:
            self.greeting_missed = True
            return WATCH_GREETING
        if self.reply_due is not None and now >= self.reply_due:
            self.reply_due = None
            return WATCH_REPLY
        if not self.warned and elapsed >= self.max_call_seconds - self.warning_lead:
            self.warned = True
            return WATCH_TIME_WARNING
        if self.quiet_since is not None:
            quiet = now - self.quiet_since
            if not self.idle_prompted and quiet >= self.idle_prompt_seconds:
                self.idle_prompted = True
                self.quiet_since = now
                return WATCH_IDLE_PROMPT
            if self.idle_prompted and quiet >= self.idle_end_seconds:
                self.quiet_since = None
                return WATCH_IDLE_END
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
