"""The calls-table store and its keys, against DynamoDB in moto (the table from template.yaml)."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from mapokezi import keys, store
from mapokezi.profiles import parse_profile

BASE = 1_795_000_000.0  # 2026-11-18T11:06:40Z
NUMBER = "+254700000100"


def make_call(
    table: Any, call_id: str, minute: int, *, to: str = NUMBER, caller: str = "+254711111111"
) -> None:
    store.create_call(
        table, call_id=call_id, caller=caller, to=to, retention_days=1, at=BASE + 60 * minute
    )


# -- keys ------------------------------------------------------------------------------------


def test_key_layout() -> None:
    assert keys.call_key("HD_1") == {"pk": "CALL#HD_1", "sk": "CALL"}
    assert keys.event_key("HD_1", "voice", "Completed") == {
        "pk": "CALL#HD_1",
        "sk": "EVENT#voice#Completed",
    }
    assert keys.profile_key(NUMBER) == {"pk": f"PROFILE#{NUMBER}", "sk": "PROFILE"}
    assert keys.node_key("n1") == {"pk": "NODES", "sk": "NODE#n1"}
    assert keys.call_id_from_partition(keys.call_partition("HD_1")) == "HD_1"
    with pytest.raises(ValueError, match="not a call partition"):
        keys.call_id_from_partition("PROFILE#+254")
    with pytest.raises(ValueError, match="unknown index 'by_colour'"):
        keys.index_partition("by_colour")


def test_turn_keys_sort_by_time() -> None:
    sks = [keys.turn_key("c", at, seq)["sk"] for at, seq in [(10_000, 0), (900, 1), (900, 0)]]
    assert sorted(sks) == [
        keys.turn_key("c", 900, 0)["sk"],
        keys.turn_key("c", 900, 1)["sk"],
        keys.turn_key("c", 10_000, 0)["sk"],
    ]
    assert [keys.item_kind(s) for s in ("CALL", "EVENT#x#y", sks[0], "OTHER")] == [
        "call",
        "event",
        "turn",
        "other",
    ]


# -- conversions -----------------------------------------------------------------------------


def test_dynamo_number_round_trip() -> None:
    value = {"a": 1.5, "b": [2.25, {"c": 3}], "d": "x"}
    stored = store.to_dynamo(value)
    assert stored == {"a": Decimal("1.5"), "b": [Decimal("2.25"), {"c": 3}], "d": "x"}
    back = store.from_dynamo({"n": Decimal("4"), "f": Decimal("0.5"), "l": [Decimal("1")]})
    assert back == {"n": 4, "f": 0.5, "l": [1]} and isinstance(back["n"], int)


def test_now_iso_format() -> None:
    assert store.now_iso(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"


# -- call records and conditional writes -----------------------------------------------------


def test_create_call_is_conditional(calls_table: Any) -> None:
    assert store.create_call(
        calls_table, call_id="c1", caller="+254711111111", to=NUMBER, retention_days=1, at=BASE
    )
    again = store.create_call(
        calls_table, call_id="c1", caller="+254799999999", to=NUMBER, retention_days=1, at=BASE + 99
    )
    assert again is False
    call = store.get_call(calls_table, "c1")
    assert call["from"] == "+254711111111" and call["status"] == "active"
    assert call["started_at"] == store.now_iso(BASE)
    assert call["stream"]["state"] == "pending"
    assert call["expires_at"] == int(BASE) + 86400


def test_updates_of_unknown_calls_do_nothing(calls_table: Any) -> None:
    assert store.record_cdr(calls_table, "ghost", {"status": "completed"}) is False
    assert store.mark_ended(calls_table, "ghost", reason="Completed") is False
    assert store.set_stream_state(calls_table, "ghost", "started") is False
    assert store.get_call(calls_table, "ghost") is None


def test_mark_ended_only_once(calls_table: Any) -> None:
    make_call(calls_table, "c1", 0)
    assert store.mark_ended(calls_table, "c1", reason="Completed", duration_seconds=42)
    first = store.get_call(calls_table, "c1")
    assert store.mark_ended(calls_table, "c1", reason="call.completed") is False
    second = store.get_call(calls_table, "c1")
    assert second["ended_at"] == first["ended_at"] and second["end_reason"] == "Completed"
    assert second["status"] == "ended" and second["platform_duration_seconds"] == 42


def test_stream_token_is_claimed_once(calls_table: Any) -> None:
    make_call(calls_table, "c1", 0)
    assert store.set_stream_token(calls_table, "c1", "nonce-1")
    assert store.claim_stream_token(calls_table, "c1", "other", "node-a") is False
    assert store.claim_stream_token(calls_table, "c1", "nonce-1", "node-a")
    assert store.claim_stream_token(calls_table, "c1", "nonce-1", "node-b") is False
    assert store.get_call(calls_table, "c1")["stream_token"]["node_id"] == "node-a"
    assert store.claim_stream_token(calls_table, "ghost", "nonce-1", "node-a") is False


def test_stream_state_keeps_error_and_sid(calls_table: Any) -> None:
    make_call(calls_table, "c1", 0)
    store.set_stream_state(calls_table, "c1", "error", error="x" * 2000, sid="MZ1")
    stream = store.get_call(calls_table, "c1")["stream"]
    assert stream["state"] == "error" and len(stream["error"]) == 1000 and stream["sid"] == "MZ1"


def test_pending_handoff_is_taken_once(calls_table: Any) -> None:
    make_call(calls_table, "c1", 0)
    assert store.take_pending_handoff(calls_table, "c1") is None
    store.record_handoff(
        calls_table,
        "c1",
        {"kind": "transfer", "target": "+254711000001", "reason": "asked", "summary": "s"},
    )
    taken = store.take_pending_handoff(calls_table, "c1")
    assert taken["state"] == "dialled" and taken["target"] == "+254711000001"
    assert taken["dialled_at"] >= taken["requested_at"]
    assert store.take_pending_handoff(calls_table, "c1") is None


def test_events_are_recorded_once(calls_table: Any) -> None:
    make_call(calls_table, "c1", 0)
    payload = {"callSessionState": "Completed", "durationInSeconds": 12}
    assert store.record_event(
        calls_table, "c1", source="voice", dedupe_key="Completed", payload=payload, retention_days=1
    )
    assert (
        store.record_event(
            calls_table,
            "c1",
            source="voice",
            dedupe_key="Completed",
            payload={"other": 1},
            retention_days=1,
        )
        is False
    )
    events = store.call_record(calls_table, "c1")["events"]
    assert len(events) == 1 and events[0]["durationInSeconds"] == 12
    assert events[0]["source"] == "voice"


def test_call_record_shape(calls_table: Any) -> None:
    make_call(calls_table, "c1", 0)
    store.set_stream_token(calls_table, "c1", "n")
    store.add_turns(
        calls_table,
        "c1",
        [
            {"role": "caller", "text": "later", "at_ms": 5000},
            {"role": "agent", "text": "first", "at_ms": 120, "interrupted": False},
        ],
        retention_days=1,
    )
    store.put_metrics(calls_table, "c1", {"reply_latency_ms": [640.5], "barge_ins": 0})
    record = store.call_record(calls_table, "c1")
    assert [t["text"] for t in record["transcript"]] == ["first", "later"]
    assert record["transcript"][0] == {
        "role": "agent",
        "text": "first",
        "at_ms": 120,
        "interrupted": False,
    }
    assert record["metrics"] == {"reply_latency_ms": [640.5], "barge_ins": 0}
    assert record["handoff"] is None and record["cdr"] is None and record["ended_at"] is None
    hidden = {
        "pk",
        "sk",
        "expires_at",
        "stream_token",
        "number_pk",
        "caller_pk",
        "all_pk",
        "started_sk",
    }
    assert not hidden & set(record)
    assert store.call_record(calls_table, "ghost") is None


# -- listing ---------------------------------------------------------------------------------


@pytest.fixture
def listed(calls_table: Any) -> Any:
    """Calls c0..c5 one minute apart; c0-c3 to NUMBER, c4-c5 elsewhere; odd ones from B."""
    for i in range(6):
        caller = "+254722222222" if i % 2 else "+254711111111"
        make_call(calls_table, f"c{i}", i, to=NUMBER if i < 4 else "+254700000200", caller=caller)
    store.mark_ended(calls_table, "c2", reason="Completed")
    store.record_handoff(calls_table, "c3", {"kind": "hangup", "reason": "bye", "summary": ""})
    return calls_table


def ids(result: tuple[list[dict[str, Any]], str | None]) -> list[str]:
    return [c["call_id"] for c in result[0]]


def test_query_filters(listed: Any) -> None:
    assert ids(store.query_calls(listed)) == ["c5", "c4", "c3", "c2", "c1", "c0"]
    assert ids(store.query_calls(listed, number=NUMBER)) == ["c3", "c2", "c1", "c0"]
    assert ids(store.query_calls(listed, caller="+254722222222")) == ["c5", "c3", "c1"]
    assert ids(store.query_calls(listed, number=NUMBER, caller="+254722222222")) == ["c3", "c1"]
    assert ids(store.query_calls(listed, status="ended")) == ["c2"]
    assert ids(store.query_calls(listed, handoffs_only=True)) == ["c3"]
    assert ids(store.query_calls(listed, number="+254799999999")) == []


def test_query_time_window_is_inclusive(listed: Any) -> None:
    since, until = store.now_iso(BASE + 60), store.now_iso(BASE + 180)
    assert ids(store.query_calls(listed, since=since, until=until)) == ["c3", "c2", "c1"]
    assert ids(store.query_calls(listed, since=since, number=NUMBER)) == ["c3", "c2", "c1"]
    assert ids(store.query_calls(listed, until=since)) == ["c1", "c0"]


def test_query_pages_follow_the_cursor(listed: Any) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        calls, cursor = store.query_calls(listed, limit=4, cursor=cursor)
        seen += [c["call_id"] for c in calls]
        pages += 1
        if cursor is None or pages > 5:
            break
    assert seen == ["c5", "c4", "c3", "c2", "c1", "c0"] and pages == 2


def test_filtered_pages_may_be_short_but_complete(listed: Any) -> None:
    first, cursor = store.query_calls(listed, status="ended", limit=2)
    assert first == [] and cursor  # c5, c4 were read and filtered out
    rest: list[str] = []
    while cursor:
        calls, cursor = store.query_calls(listed, status="ended", limit=2, cursor=cursor)
        rest += [c["call_id"] for c in calls]
    assert rest == ["c2"]


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"pk": 5}).encode()).decode(),
        base64.urlsafe_b64encode(b"{not json").decode(),
    ],
)
def test_bad_cursors_are_rejected(cursor: str) -> None:
    with pytest.raises(store.CursorError, match="invalid cursor"):
        store.decode_cursor(cursor)


def test_cursor_round_trip() -> None:
    position = {"pk": "CALL#c1", "sk": "CALL", "all_pk": "CALLS", "started_sk": "2026#c1"}
    assert store.decode_cursor(store.encode_cursor(position)) == position


# -- profiles and heartbeats -----------------------------------------------------------------


def test_profile_round_trip(calls_table: Any) -> None:
    profile = parse_profile(
        {
            "business_name": "Duka",
            "greeting": "Habari",
            "instructions": "Be kind.",
            "front_desk": "+254711000001",
            "facts": ["Open daily"],
            "hours": {"weekly": {"mon": ["08:00-17:00"]}},
        },
        number=NUMBER,
    )
    assert store.get_profile(calls_table, NUMBER) is None
    store.put_profile(calls_table, profile)
    assert store.get_profile(calls_table, NUMBER) == profile


def test_healthy_nodes(calls_table: Any) -> None:
    store.put_heartbeat(calls_table, "fresh", active_calls=1, capacity=10, draining=False)
    store.put_heartbeat(calls_table, "full", active_calls=10, capacity=10, draining=False)
    store.put_heartbeat(calls_table, "leaving", active_calls=0, capacity=10, draining=True)
    nodes = store.healthy_nodes(calls_table, 30)
    assert [n["node_id"] for n in nodes] == ["fresh"]
    assert nodes[0]["active_calls"] == 1 and isinstance(nodes[0]["seen_at"], float)
    assert store.healthy_nodes(calls_table, 30, now=time.time() + 60) == []
