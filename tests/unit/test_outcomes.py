"""The one-word outcome of a call, from the facts on its record."""

from __future__ import annotations

import pytest

from mapokezi.outcomes import CallOutcome, call_outcome

ENDED = {"status": "ended"}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"status": "active"}, CallOutcome.ACTIVE),
        ({"status": "active", "handoff": {"kind": "transfer", "state": "pending"}}, "active"),
        ({**ENDED, "answer": "unknown_number"}, CallOutcome.UNKNOWN_NUMBER),
        ({**ENDED, "answer": "after_hours"}, CallOutcome.AFTER_HOURS),
        ({**ENDED, "answer": "stream", "media": {"outcome": "hangup"}}, CallOutcome.HANDLED),
        ({**ENDED, "media": {"outcome": "caller_hangup"}}, CallOutcome.HANDLED),
        ({**ENDED, "media": {"outcome": "failed"}}, CallOutcome.FAILED),
        ({**ENDED, "media": {"outcome": "stream_lost"}}, CallOutcome.FAILED),
        ({**ENDED, "answer": "fallback"}, CallOutcome.FAILED),
        ({**ENDED, "incomplete": {"missing": ["first_answer"]}}, CallOutcome.FAILED),
        ({"status": "active", "incomplete": {"missing": ["first_answer"]}}, CallOutcome.ACTIVE),
        ({**ENDED, "handoff": {"kind": "transfer", "state": "dialled"}}, "transferred"),
        ({**ENDED, "handoff": {"kind": "transfer", "state": "connected"}}, "transferred"),
        ({**ENDED, "handoff": {"kind": "transfer", "state": "pending"}}, CallOutcome.STRANDED),
        ({**ENDED, "handoff": {"kind": "transfer", "state": "stranded"}}, CallOutcome.STRANDED),
        (
            {**ENDED, "handoff": {"kind": "transfer", "state": "connected", "path": "rescue"}},
            CallOutcome.RESCUED,
        ),
        ({**ENDED, "handoff": {"kind": "transfer", "state": "no_answer"}}, CallOutcome.FAILED),
        (
            {**ENDED, "handoff": {"kind": "transfer", "state": "no_answer"}, "message": {"a": 1}},
            CallOutcome.MESSAGE_TAKEN,
        ),
        ({**ENDED, "handoff": {"kind": "hangup", "state": "dialled"}}, CallOutcome.HANDLED),
    ],
)
def test_outcome_from_the_record(record: dict, expected: str) -> None:
    assert call_outcome(record) == expected


def test_a_transfer_after_a_model_failure_counts_as_transferred() -> None:
    # The apology and the front desk: the caller still reached a person.
    record = {
        **ENDED,
        "media": {"outcome": "failed"},
        "handoff": {"kind": "transfer", "state": "dialled", "reason": "model_unavailable"},
    }
    assert call_outcome(record) == CallOutcome.TRANSFERRED


def test_outcomes_are_their_record_strings() -> None:
    assert {o.value for o in CallOutcome} >= {
        "handled",
        "transferred",
        "rescued",
        "stranded",
        "message_taken",
        "failed",
        "after_hours",
        "unknown_number",
    }
