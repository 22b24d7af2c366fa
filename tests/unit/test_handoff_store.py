"""The handoff on the call record, the rescue claim, what numbers taught us, the profile section."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from mapokezi import handoff, store
from mapokezi.profiles import ProfileError, parse_profile
from serverless import rescue

NUMBER = "+254700000100"
PROFILE = {
    "business_name": "Duka",
    "greeting": "Hello",
    "instructions": "Help callers.",
    "front_desk": "+254711000001",
}


@pytest.fixture
def call(calls_table: Any) -> str:
    store.create_call(
        calls_table, call_id="HD_h1", caller="+254722000111", to=NUMBER, retention_days=1
    )
    store.record_handoff(
        calls_table, "HD_h1", {"kind": "transfer", "target": "+254711000001", "reason": "booking"}
    )
    return "HD_h1"


def test_profile_handoff_defaults_and_values() -> None:
    default = parse_profile(PROFILE, number=NUMBER).handoff
    assert (default.strategy, default.rescue_grace_seconds) == ("auto", 2.0)
    assert default.max_bridged_seconds == 3600
    chosen = parse_profile(
        {
            **PROFILE,
            "handoff": {
                "strategy": "supervise",
                "rescue_grace_seconds": 3,
                "max_bridged_seconds": 1800,
            },
        },
        number=NUMBER,
    )
    assert chosen.handoff.strategy == "supervise" and chosen.handoff.rescue_grace_seconds == 3.0
    assert chosen.handoff.max_bridged_seconds == 1800
    assert parse_profile(json.loads(json.dumps(chosen.to_dict())), number=NUMBER) == chosen


def test_profile_handoff_errors_name_the_field() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(
            {
                **PROFILE,
                "handoff": {
                    "strategy": "conference",
                    "rescue_grace_seconds": 0,
                    "max_bridged_seconds": 30,
                    "x": 1,
                },
            },
            number=NUMBER,
        )
    assert caught.value.errors == [
        "handoff.x: unknown field",
        "handoff.strategy: must be one of auto, supervise, dial",
        "handoff.rescue_grace_seconds: must be a number from 0.5 to 30.0",
        "handoff.max_bridged_seconds: must be a whole number from 60 to 14400",
    ]


def test_record_handoff_has_an_id_and_its_first_change(calls_table: Any, call: str) -> None:
    record = store.call_record(calls_table, call)["handoff"]
    assert len(record["handoff_id"]) == 32 and record["state"] == "pending"
    assert record["changes"] == [{"state": "pending", "at": record["requested_at"]}]


def test_changes_append_in_order_with_fields(calls_table: Any, call: str) -> None:
    store.record_handoff(
        calls_table, call, {"kind": "transfer", "reason": "booking"}, state=handoff.REQUESTED
    )
    at = 1_764_400_000.0
    store.record_handoff_change(calls_table, call, handoff.state_change("ringing", at))
    store.record_handoff_change(
        calls_table,
        call,
        handoff.state_change("connected", at + 4),
        {"time_to_person_ms": 4000, "supervision_id": "sup_1"},
    )
    record = store.call_record(calls_table, call)["handoff"]
    assert [c["state"] for c in record["changes"]] == ["requested", "ringing", "connected"]
    assert record["state"] == "connected" and record["time_to_person_ms"] == 4000
    assert record["supervision_id"] == "sup_1" and record["reason"] == "booking"


def test_change_without_a_handoff_is_refused(calls_table: Any) -> None:
    store.create_call(
        calls_table, call_id="HD_none", caller="+254722000111", to=NUMBER, retention_days=1
    )
    assert not store.record_handoff_change(
        calls_table, "HD_none", handoff.state_change("ringing", 1.0)
    )


def test_rescue_and_dial_exclude_each_other(calls_table: Any, call: str) -> None:
    rescued = store.claim_rescue(calls_table, call)
    assert rescued["state"] == "requested" and rescued["path"] == "rescue"
    assert store.take_pending_handoff(calls_table, call) is None  # a late re-POST does not dial
    assert store.claim_rescue(calls_table, call) is None


def test_dial_first_then_no_rescue(calls_table: Any, call: str) -> None:
    dialled = store.take_pending_handoff(calls_table, call)
    assert dialled["path"] == "dial" and [c["state"] for c in dialled["changes"]] == [
        "pending",
        "dialled",
    ]
    assert store.claim_rescue(calls_table, call) is None


def test_hangup_handoff_is_never_rescued(calls_table: Any, call: str) -> None:
    store.record_handoff(calls_table, call, {"kind": "hangup", "reason": "goodbye"})
    assert store.claim_rescue(calls_table, call) is None


def test_concurrent_rescues_claim_once(calls_table: Any, call: str) -> None:
    barrier = threading.Barrier(8)
    wins: list[dict[str, Any]] = []

    def claim() -> None:
        barrier.wait()
        if (taken := store.claim_rescue(calls_table, call)) is not None:
            wins.append(taken)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1


def test_learned_behaviour_latest_wins_and_counts(calls_table: Any) -> None:
    assert store.platform_behaviour(calls_table, NUMBER) is None
    store.learn_platform_behaviour(calls_table, NUMBER, handoff.LEARNED_REPOSTS, call_id="c1")
    store.learn_platform_behaviour(calls_table, NUMBER, handoff.LEARNED_NO_REPOST, call_id="c2")
    store.learn_platform_behaviour(calls_table, NUMBER, handoff.LEARNED_NO_REPOST, call_id="c3")
    learned = store.platform_behaviour(calls_table, NUMBER)
    assert learned["after_stream"] == "no_repost" and learned["from_call"] == "c3"
    assert learned["seen_reposts"] == 1 and learned["seen_no_repost"] == 2
    with pytest.raises(ValueError, match="unknown platform behaviour"):
        store.learn_platform_behaviour(calls_table, NUMBER, "sometimes", call_id="c4")
    # The profile next to it is untouched.
    assert store.get_profile(calls_table, NUMBER) is None


# --- each supervision step recorded once (the node polls; the events function hears it too) ---

AT = 1_764_400_000.0
STEPS = (
    ("ringing", AT + 1, {}),
    ("connected", AT + 4, {"time_to_person_ms": 4000}),
    ("ended", AT + 60, {}),
)


@pytest.fixture
def supervised(calls_table: Any) -> str:
    store.create_call(
        calls_table, call_id="HD_s1", caller="+254722000111", to=NUMBER, retention_days=1
    )
    store.record_handoff(
        calls_table,
        "HD_s1",
        {"kind": "transfer", "target": "+254711000001", "path": "supervise"},
        state=handoff.REQUESTED,
    )
    return "HD_s1"


def handoff_of(table: Any, call_id: str) -> dict[str, Any]:
    return store.call_record(table, call_id)["handoff"]


def node_records(table: Any, call_id: str, state: str, at: float, fields: dict[str, Any]) -> bool:
    """What `media_node.supervision.SupervisedTransfer` writes for a step it polled."""
    reason = "supervision_removed" if state == "ended" else None
    return store.record_handoff_change(
        table,
        call_id,
        handoff.state_change(state, at, reason),
        fields,
        handoff_id=handoff_of(table, call_id)["handoff_id"],
    )


def event_records(table: Any, call_id: str, state: str) -> bool:
    """What the events function does with the platform's supervision event for a step."""
    data = {"state": state, "supervision_id": "sup_1"}
    if state == "ended":
        data["reason"] = "completed"
    return rescue.apply_supervision_event(table, call_id, f"call.supervision.{state}", data)


def test_node_then_event_records_each_step_once(calls_table: Any, supervised: str) -> None:
    for state, at, fields in STEPS:
        assert node_records(calls_table, supervised, state, at, fields)
        assert not event_records(calls_table, supervised, state)
    record = handoff_of(calls_table, supervised)
    assert [c["state"] for c in record["changes"]] == ["requested", "ringing", "connected", "ended"]
    assert record["changes"][-1]["reason"] == "supervision_removed"  # the node's, first
    assert record["time_to_person_ms"] == 4000 and record["state"] == "ended"


def test_event_then_node_records_each_step_once(calls_table: Any, supervised: str) -> None:
    for state, at, fields in STEPS:
        assert event_records(calls_table, supervised, state)
        assert not node_records(calls_table, supervised, state, at, fields)
    record = handoff_of(calls_table, supervised)
    assert [c["state"] for c in record["changes"]] == ["requested", "ringing", "connected", "ended"]
    assert record["changes"][-1]["reason"] == "completed"  # the event's, first
    # The node's fields came with a step already taken: not written over the event's.
    assert record["time_to_person_ms"] != 4000


def race(table: Any, call_id: str, state: str, at: float, fields: dict[str, Any]) -> list[bool]:
    """Three node writes and three event deliveries of one step, released at once."""
    barrier = threading.Barrier(6)
    wins: list[bool] = []

    def node() -> None:
        barrier.wait()
        wins.append(node_records(table, call_id, state, at, fields))

    def event() -> None:
        barrier.wait()
        wins.append(event_records(table, call_id, state))

    threads = [threading.Thread(target=w) for w in (node, event) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wins


def test_concurrent_writers_record_each_step_once(calls_table: Any, supervised: str) -> None:
    for state, at, fields in STEPS:
        wins = race(calls_table, supervised, state, at, fields)
        assert len(wins) == 6 and wins.count(True) == 1, (state, wins)
    record = handoff_of(calls_table, supervised)
    assert [c["state"] for c in record["changes"]] == ["requested", "ringing", "connected", "ended"]


def test_a_late_step_never_moves_the_handoff_back(calls_table: Any, supervised: str) -> None:
    assert event_records(calls_table, supervised, "connected")  # no ringing seen first
    assert not node_records(calls_table, supervised, "ringing", AT + 1, {})
    assert node_records(calls_table, supervised, "no_answer", AT + 30, {})
    assert not event_records(calls_table, supervised, "ended")  # one end per supervision
    record = handoff_of(calls_table, supervised)
    assert [c["state"] for c in record["changes"]] == ["requested", "connected", "no_answer"]


def test_a_new_handoff_records_its_steps_again(calls_table: Any, supervised: str) -> None:
    first_id = handoff_of(calls_table, supervised)["handoff_id"]
    for state, at, fields in STEPS:
        node_records(calls_table, supervised, state, at, fields)
    # The person left; the caller asked again: a second supervision rings once more.
    store.record_handoff(
        calls_table,
        supervised,
        {"kind": "transfer", "target": "+254711000002", "path": "supervise"},
        state=handoff.REQUESTED,
    )
    stale = store.record_handoff_change(
        calls_table, supervised, handoff.state_change("ringing", AT + 70), handoff_id=first_id
    )
    assert not stale  # a late report of the first handoff does not land on the second
    assert event_records(calls_table, supervised, "ringing")
    assert node_records(calls_table, supervised, "connected", AT + 75, {})
    record = handoff_of(calls_table, supervised)
    assert record["handoff_id"] != first_id
    assert [c["state"] for c in record["changes"]] == ["requested", "ringing", "connected"]
