"""What happened on a call, in one word: the outcome the CLI, the API and the console show.

The call record holds the facts (the first answer, the stream, the media node's outcome, the
handoff and its state changes, any message taken, the CDR); :func:`call_outcome` is the one place
that turns them into an outcome, so a stranded transfer never looks like a good one anywhere.
Pure: a record (as ``store.call_record`` returns it) in, an outcome out.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class CallOutcome(StrEnum):
    """The outcome of a call, most telling first."""

    ACTIVE = "active"
    """The call is still in progress."""
    UNKNOWN_NUMBER = "unknown_number"
    """The dialled number has no receptionist profile: a polite line, then hang-up."""
    AFTER_HOURS = "after_hours"
    """Outside opening hours: the after-hours line (and number, if the profile has one)."""
    STRANDED = "stranded"
    """A transfer was asked for but no person was ever rung (the platform never came back)."""
    RESCUED = "rescued"
    """A transfer whose stream stopped without the platform coming back, saved by a supervision."""
    TRANSFERRED = "transferred"
    """Put through to a person (dialled, or connected by supervision)."""
    MESSAGE_TAKEN = "message_taken"
    """Nobody could take the call (or the caller preferred it): a message was taken."""
    FAILED = "failed"
    """Something broke (model lost, stream lost, a transfer that failed) and nothing saved it."""
    HANDLED = "handled"
    """The receptionist dealt with the call without a person."""


#: Handoff states that mean a person was reached or the platform was told to ring one.
_REACHED = frozenset({"dialled", "connected", "ended"})
#: Handoff states that mean no person was reached.
_NOT_REACHED = frozenset({"failed", "no_answer", "busy", "cancelled"})
#: Media outcomes that mean the call broke rather than ended as designed.
_BROKEN = frozenset({"failed", "stream_lost"})


def call_outcome(record: Mapping[str, Any]) -> CallOutcome:
    """The outcome of the call `record` (a call record with its optional sections)."""
    answer = record.get("answer")
    if answer == CallOutcome.UNKNOWN_NUMBER:
        return CallOutcome.UNKNOWN_NUMBER
    if answer == CallOutcome.AFTER_HOURS:
        return CallOutcome.AFTER_HOURS
    handoff: Mapping[str, Any] = record.get("handoff") or {}
    state = handoff.get("state")
    ended = record.get("status") == "ended"
    if record.get("message"):
        return CallOutcome.MESSAGE_TAKEN
    if handoff and handoff.get("kind", "transfer") == "transfer":
        if state == "stranded" or (state == "pending" and ended):
            return CallOutcome.STRANDED
        if state in _REACHED:
            if handoff.get("path") == "rescue":
                return CallOutcome.RESCUED
            return CallOutcome.TRANSFERRED
        if state in _NOT_REACHED:
            return CallOutcome.FAILED
    if not ended:
        return CallOutcome.ACTIVE
    if answer == "fallback" or (record.get("media") or {}).get("outcome") in _BROKEN:
        return CallOutcome.FAILED
    if record.get("incomplete") and not answer:
        # The first answer could not be recorded (the table was down): the caller got the
        # degraded front-desk answer at best.
        return CallOutcome.FAILED
    return CallOutcome.HANDLED
