"""What the caller heard and said, and the handoff note: truncation points, transcript, summary.

Pure: no I/O, no clock. `media_node.call.core.CallCore` fills these in as a call runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mapokezi.profiles import Profile
from media_node.call.state import HandoffKind

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
    profile: Profile, kind: HandoffKind, reason: str, department: str | None, summary: str
) -> dict[str, Any]:
    """The handoff to write to the call record (transfer to a department or the front desk)."""
    kind = HandoffKind(kind)
    handoff: dict[str, Any] = {"kind": str(kind), "reason": reason or str(kind), "summary": summary}
    if kind is HandoffKind.TRANSFER:
        found = profile.department(department)
        handoff["target"] = profile.transfer_target(department)
        if found is not None:
            handoff["department"] = found.name
    return handoff
