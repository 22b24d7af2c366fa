"""The handoff strategy and the supervision tracker, on an explicit clock (no sockets, no sleep)."""

from __future__ import annotations

import pytest

from mapokezi import handoff as h
from mapokezi.handoff import (
    CancelSupervision,
    NobodyAvailable,
    PersonConnected,
    PersonLeft,
    Poll,
    Record,
    Retry,
    SupervisionPolicy,
    SupervisionTracker,
)

T0 = 1_764_400_000.0  # 2025-11-29T07:06:40Z
POLICY = SupervisionPolicy(
    ring_timeout=30, first_poll=1, poll_backoff=2, max_poll=5, connected_poll=0.75
)


def states(decisions: list[h.Decision]) -> list[str]:
    return [d.change["state"] for d in decisions if isinstance(d, Record) and d.change]


def run_until(tracker: SupervisionTracker, until: float) -> list[h.Decision]:
    """Call tick() at every deadline up to ``until``, answering each Poll with 'ringing'."""
    out: list[h.Decision] = []
    while (deadline := tracker.next_deadline) is not None and deadline <= until:
        for decision in tracker.tick(deadline):
            out.append(decision)
            if isinstance(decision, Poll):
                out += tracker.observed(deadline, "ringing")
    return out


@pytest.mark.parametrize(
    ("strategy", "learned", "path"),
    [
        ("dial", None, "dial"),
        ("dial", "no_repost", "dial"),
        ("supervise", None, "supervise"),
        ("supervise", "reposts", "supervise"),
        ("auto", None, "dial"),
        ("auto", "reposts", "dial"),
        ("auto", "no_repost", "supervise"),
    ],
)
def test_choose_path(strategy: str, learned: str | None, path: str) -> None:
    assert h.choose_path(strategy, learned) == path


def test_unknown_strategy_is_an_error_and_only_auto_rescues() -> None:
    with pytest.raises(ValueError, match="unknown handoff strategy"):
        h.choose_path("conference", None)
    assert [s for s in h.STRATEGIES if h.rescue_allowed(s)] == ["auto"]


def test_idempotency_key_is_stable_per_handoff_and_distinct_across_handoffs() -> None:
    key = h.idempotency_key("call-1", "hand-1")
    assert key == h.idempotency_key("call-1", "hand-1")
    assert key != h.idempotency_key("call-1", "hand-2")
    assert key != h.idempotency_key("call-2", "hand-1")
    assert key.startswith("mapokezi-handoff-") and len(key) <= 64


def test_connected_path_records_each_change_with_time_to_person() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    assert states(tracker.requested()) == ["requested"]
    first = tracker.started(T0 + 0.3, "sup_1", "connecting")
    assert first == [Record({}, {"supervision_id": "sup_1"})]
    assert tracker.next_deadline == T0 + 1.3  # first poll
    assert tracker.tick(T0 + 1.3) == [Poll()]
    ringing = tracker.observed(T0 + 1.4, "ringing")
    assert states(ringing) == ["ringing"]
    assert ringing[0].change["at"] == h.iso_at(T0 + 1.4)
    connected = tracker.observed(T0 + 4.25, "connected")
    assert connected == [
        Record(h.state_change("connected", T0 + 4.25), {"time_to_person_ms": 4250}),
        PersonConnected(4250),
    ]
    assert tracker.state == "connected" and not tracker.finished
    # Connected: no ring timeout any more, only polls to notice the person leaving, often
    # enough that the caller is not left in silence for long when they do.
    assert tracker.next_deadline == T0 + 4.25 + 0.75
    assert tracker.tick(T0 + 31) == [Poll()]
    assert tracker.observed(T0 + 31.1, "connected") == []
    assert not tracker.finished


def test_polls_back_off_up_to_the_maximum() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.started(T0, "sup_1", "connecting")
    deadlines = []
    for _ in range(5):
        deadline = tracker.next_deadline
        assert deadline is not None
        deadlines.append(round(deadline - T0, 3))
        assert tracker.tick(deadline) == [Poll()]
        tracker.observed(deadline, "ringing")
    gaps = [b - a for a, b in zip([0.0, *deadlines], deadlines, strict=False)]
    assert gaps == [1, 2, 4, 5, 5]


def test_ring_timeout_cancels_and_nobody_is_available() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.started(T0 + 0.2, "sup_1", "ringing")
    decisions = run_until(tracker, T0 + 30)
    assert decisions[-3:] == [
        CancelSupervision(),
        Record(h.state_change("no_answer", T0 + 30, "ring_timeout")),
        NobodyAvailable("ring_timeout"),
    ]
    assert tracker.finished and tracker.next_deadline is None
    assert tracker.observed(T0 + 31, "connected") == []  # too late: ignored


@pytest.mark.parametrize(
    ("platform_state", "reason", "state"),
    [
        ("failed", "busy", "busy"),
        ("failed", "user_busy", "busy"),
        ("failed", "no_answer", "no_answer"),
        ("failed", "network_error", "failed"),
        ("failed", None, "failed"),
        ("ended", None, "no_answer"),  # ended without ever connecting
    ],
)
def test_platform_endings_before_connect(
    platform_state: str, reason: str | None, state: str
) -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.started(T0, "sup_1", "ringing")
    decisions = tracker.observed(T0 + 3, platform_state, reason)
    assert states(decisions) == [state]
    assert isinstance(decisions[-1], NobodyAvailable)


def test_person_leaving_brings_the_receptionist_back() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.started(T0, "sup_1", "connected")
    decisions = tracker.observed(T0 + 60, "ended", "supervisor_hangup")
    assert states(decisions) == ["ended"] and decisions[-1] == PersonLeft()


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (409, "calls.supervision_in_progress", "supervision_in_progress"),
        (403, "api_key.scope_denied", "scope_denied"),
        (404, "calls.not_found", "call_not_found"),
        (400, "request.invalid", "request.invalid"),
    ],
)
def test_start_errors_end_at_once(status: int, code: str, reason: str) -> None:
    tracker = SupervisionTracker(T0, POLICY)
    decisions = tracker.start_failed(T0 + 0.1, status, code)
    assert decisions == [
        Record(h.state_change("failed", T0 + 0.1, reason)),
        NobodyAvailable(reason),
    ]


def test_transient_start_errors_retry_with_the_same_key_then_give_up() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    assert tracker.start_failed(T0, 503, "internal_error") == []
    assert tracker.next_deadline == T0 + 2
    assert tracker.tick(T0 + 2) == [Retry()]
    assert tracker.start_failed(T0 + 2.5, None, "transport.timeout") == []
    assert tracker.tick(tracker.next_deadline) == [Retry()]
    final = tracker.start_failed(T0 + 6, 500, "internal_error")
    assert states(final) == ["failed"]
    assert final[-1] == NobodyAvailable("platform_error:internal_error")


def test_retry_that_succeeds_carries_on() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.start_failed(T0, None, "transport.timeout")
    assert tracker.tick(T0 + 2) == [Retry()]
    assert states(tracker.started(T0 + 2.1, "sup_1", "ringing")) == ["ringing"]


def test_poll_errors_keep_polling_when_transient_and_end_when_not() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.started(T0, "sup_1", "ringing")
    assert tracker.poll_failed(T0 + 1, 502, "internal_error") == []
    assert tracker.next_deadline is not None and tracker.next_deadline > T0 + 1
    decisions = tracker.poll_failed(T0 + 3, 403, "api_key.scope_denied")
    assert states(decisions) == ["failed"] and "lost:api_key.scope_denied" in str(decisions[0])


def test_supervision_gone_while_connected_means_the_person_left() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.started(T0, "sup_1", "connected")
    assert tracker.gone(T0 + 9)[-1] == PersonLeft()


def test_caller_hanging_up_ends_quietly() -> None:
    ringing = SupervisionTracker(T0, POLICY)
    ringing.started(T0, "sup_1", "ringing")
    assert ringing.caller_left(T0 + 2) == [
        CancelSupervision(),
        Record(h.state_change("failed", T0 + 2, "caller_hangup")),
    ]
    connected = SupervisionTracker(T0, POLICY)
    connected.started(T0, "sup_1", "connected")
    assert connected.caller_left(T0 + 2) == [
        Record(h.state_change("ended", T0 + 2, "caller_hangup"))
    ]


def test_events_and_polls_may_repeat_a_state_without_repeating_records() -> None:
    tracker = SupervisionTracker(T0, POLICY)
    tracker.started(T0, "sup_1", "ringing")
    assert states(tracker.observed(T0 + 1, "ringing")) == []
    assert states(tracker.observed(T0 + 2, "connected")) == ["connected"]
    assert tracker.observed(T0 + 2.1, "connected") == []
    assert tracker.started(T0 + 2.2, "sup_1", "connected") == []  # replayed POST


def test_person_leg_cost_reads_the_cdr_events() -> None:
    cdr = {
        "events": [
            {"kind": "call.started", "payload": {}},
            {
                "kind": "supervision.completed",
                "payload": {"to": "+254711222333", "duration_seconds": 61, "cost_minor": 600},
            },
        ]
    }
    assert h.person_leg_cost(cdr) == {
        "cost_minor": 600,
        "duration_seconds": 61,
        "to": "+254711222333",
    }
    assert h.person_leg_cost({"events": [{"kind": "call.completed", "payload": {}}]}) is None
    assert h.person_leg_cost({}) is None


def test_time_to_person_from_the_last_request() -> None:
    changes = [
        h.state_change("requested", T0),
        h.state_change("no_answer", T0 + 30),
        h.state_change("requested", T0 + 40),
    ]
    assert h.time_to_person_ms(changes, T0 + 42.5) == 2500
    assert h.time_to_person_ms([h.state_change("pending", T0)], T0 + 1) is None


def test_the_fetched_cdr_carries_the_persons_leg() -> None:
    from serverless.cdr_fetch import cdr_from_call

    platform = {
        "id": "c1",
        "status": "completed",
        "cost_minor": 600,
        "events": [
            {
                "kind": "supervision.completed",
                "payload": {"to": "+254711000002", "duration_seconds": 70, "cost_minor": 600},
            }
        ],
    }
    cdr = cdr_from_call(platform, fetch_state="done", attempts=1, fetched_at="t")
    assert cdr["person_leg"] == {"cost_minor": 600, "duration_seconds": 70, "to": "+254711000002"}
    plain = cdr_from_call(
        {**platform, "events": []}, fetch_state="done", attempts=1, fetched_at="t"
    )
    assert "person_leg" not in plain


def test_time_to_person_counts_from_the_ask_and_the_ring_timeout_from_the_post() -> None:
    """The node posts the supervision after the handoff line: the time to a person still counts
    from the handoff's requested change (as the events function counts it from the record),
    while the ring timeout runs from the post."""
    tracker = SupervisionTracker(T0 + 2, POLICY, asked_at=T0)
    tracker.started(T0 + 2.1, "sup_1", "ringing")
    assert tracker.observed(T0 + 5, "connected")[-1] == PersonConnected(5000)
    late = SupervisionTracker(T0 + 2, POLICY, asked_at=T0)
    late.started(T0 + 2.1, "sup_1", "ringing")
    late.tick(T0 + 31)  # 31 s after the ask, 29 s after the post: still ringing
    assert not late.finished
    late.tick(T0 + 32)
    assert late.finished and late.state == "no_answer"
