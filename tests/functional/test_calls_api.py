"""GET /calls and GET /calls/{call_id} through the Lambda handler with HTTP API v2 events (moto)."""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from mapokezi import store
from tests.events_factory import FakeLambdaContext

BASE = 1_795_000_000.0  # 2026-11-18T…Z; one call per minute from here
NUMBER = "+254700000100"
OTHER_NUMBER = "+254700000200"
CALLER_A = "+254711111111"
CALLER_B = "+254722222222"


def http_event(path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    """A minimal API Gateway HTTP API (payload 2.0) GET event."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(params or {}),
        "queryStringParameters": params or None,
        "headers": {"host": "api.example.test"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.test",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": "rid",
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:09:00:00 +0000",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


@pytest.fixture
def api(calls_table: Any) -> Any:
    """The handler module, imported once the fake environment and moto are up."""
    return importlib.import_module("calls_api.app")


def call(api: Any, path: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
    response = api.lambda_handler(http_event(path, params), FakeLambdaContext("calls_api"))
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return response["statusCode"], json.loads(body)


@pytest.fixture
def seeded(calls_table: Any) -> list[str]:
    """Seven calls one minute apart: five to NUMBER (alternating callers), two to OTHER_NUMBER."""
    ids = []
    for i in range(7):
        to = NUMBER if i < 5 else OTHER_NUMBER
        caller = CALLER_A if i % 2 == 0 else CALLER_B
        call_id = f"call-{i}"
        store.create_call(
            calls_table, call_id=call_id, caller=caller, to=to, retention_days=1, at=BASE + 60 * i
        )
        ids.append(call_id)
    store.mark_ended(calls_table, "call-1", reason="Completed")
    store.mark_ended(calls_table, "call-3", reason="Completed")
    store.record_handoff(
        calls_table,
        "call-3",
        {"kind": "transfer", "target": "+254711000001", "reason": "asked", "summary": "booking"},
    )
    return ids


def test_lists_newest_first_with_default_limit(api: Any, seeded: list[str]) -> None:
    status, body = call(api, "/calls")
    assert status == 200
    assert [c["call_id"] for c in body["calls"]] == [f"call-{i}" for i in range(6, -1, -1)]
    assert body["next_cursor"] is None
    first = body["calls"][0]
    assert "pk" not in first and "stream_token" not in first and "number_pk" not in first
    assert first["handoff"] is None and first["cdr"] is None


def test_filters_by_number_caller_status_and_handoffs(api: Any, seeded: list[str]) -> None:
    _, by_number = call(api, "/calls", {"number": NUMBER})
    assert [c["call_id"] for c in by_number["calls"]] == [
        "call-4",
        "call-3",
        "call-2",
        "call-1",
        "call-0",
    ]
    _, by_caller = call(api, "/calls", {"caller": CALLER_B})
    assert [c["call_id"] for c in by_caller["calls"]] == ["call-5", "call-3", "call-1"]
    _, both = call(api, "/calls", {"number": NUMBER, "caller": CALLER_B})
    assert [c["call_id"] for c in both["calls"]] == ["call-3", "call-1"]
    _, ended = call(api, "/calls", {"status": "ended"})
    assert [c["call_id"] for c in ended["calls"]] == ["call-3", "call-1"]
    _, handoffs = call(api, "/calls", {"handoffs": "true"})
    assert [c["call_id"] for c in handoffs["calls"]] == ["call-3"]
    assert handoffs["calls"][0]["handoff"]["summary"] == "booking"


def test_number_without_plus_is_accepted(api: Any, seeded: list[str]) -> None:
    # A "+" in a query string decodes to a space when the client did not percent-encode it.
    status, body = call(api, "/calls", {"number": " 254700000200"})
    assert status == 200
    assert [c["call_id"] for c in body["calls"]] == ["call-6", "call-5"]


def test_since_until_window_with_offsets(api: Any, seeded: list[str]) -> None:
    since = store.now_iso(BASE + 60 * 2)
    until = store.now_iso(BASE + 60 * 4)
    status, body = call(api, "/calls", {"since": since, "until": until})
    assert status == 200
    assert [c["call_id"] for c in body["calls"]] == ["call-4", "call-3", "call-2"]
    # The same instant written in Nairobi time (+03:00) selects the same calls.
    local_since = since.replace("Z", "")
    hour = int(local_since[11:13]) + 3
    local_since = f"{local_since[:11]}{hour:02d}{local_since[13:]}+03:00"
    _, same = call(api, "/calls", {"since": local_since, "until": until})
    assert [c["call_id"] for c in same["calls"]] == ["call-4", "call-3", "call-2"]
    _, only_since = call(api, "/calls", {"since": store.now_iso(BASE + 60 * 5)})
    assert [c["call_id"] for c in only_since["calls"]] == ["call-6", "call-5"]
    _, only_until = call(api, "/calls", {"until": store.now_iso(BASE + 60)})
    assert [c["call_id"] for c in only_until["calls"]] == ["call-1", "call-0"]


def test_paginates_across_pages_with_cursor(api: Any, seeded: list[str]) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3"}
        if cursor:
            params["cursor"] = cursor
        status, body = call(api, "/calls", params)
        assert status == 200
        assert len(body["calls"]) <= 3
        seen += [c["call_id"] for c in body["calls"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert seen == [f"call-{i}" for i in range(6, -1, -1)]
    assert pages == 3


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"since": "yesterday"}, "since: 'yesterday' is not an ISO-8601 time"),
        ({"until": "2026-13-01"}, "until: '2026-13-01' is not an ISO-8601 time"),
        (
            {"since": "2026-11-21T10:00:00Z", "until": "2026-11-21T09:00:00Z"},
            "since: must not be later than until",
        ),
        ({"limit": "0"}, "limit: must be from 1 to 100, got 0"),
        ({"limit": "101"}, "limit: must be from 1 to 100, got 101"),
        ({"limit": "ten"}, "limit: 'ten' is not a whole number from 1 to 100"),
        ({"cursor": "not-a-cursor"}, "cursor: invalid cursor"),
        ({"status": "ringing"}, "status: must be one of active, ended, got 'ringing'"),
        ({"handoffs": "maybe"}, "handoffs: must be true or false, got 'maybe'"),
        ({"number": "0700000100"}, "number: '0700000100' is not an E.164 number"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
    ],
)
def test_bad_filters_are_400_with_reason(
    api: Any, seeded: list[str], params: dict[str, str], reason: str
) -> None:
    status, body = call(api, "/calls", params)
    assert status == 400
    assert body["error"].startswith(reason)


def test_cursor_from_another_listing_is_400(api: Any, seeded: list[str]) -> None:
    _, page = call(api, "/calls", {"number": NUMBER, "limit": "2"})
    assert page["next_cursor"]
    status, body = call(api, "/calls", {"caller": CALLER_A, "cursor": page["next_cursor"]})
    assert status == 400
    assert body["error"] == "cursor: does not belong to this listing"


def test_show_returns_full_record(api: Any, calls_table: Any, seeded: list[str]) -> None:
    store.add_turns(
        calls_table,
        "call-3",
        [
            {"role": "agent", "text": "Karibu!", "at_ms": 300},
            {"role": "caller", "text": "I want to book", "at_ms": 2100},
        ],
        retention_days=1,
    )
    store.put_metrics(calls_table, "call-3", {"time_to_first_audio_ms": 420, "barge_ins": 1})
    store.record_cdr(calls_table, "call-3", {"status": "completed", "cost_minor": 0})
    status, body = call(api, "/calls/call-3")
    assert status == 200
    assert body["call_id"] == "call-3" and body["from"] == CALLER_B and body["to"] == NUMBER
    assert body["status"] == "ended" and body["ended_at"]
    assert [t["text"] for t in body["transcript"]] == ["Karibu!", "I want to book"]
    assert body["handoff"]["target"] == "+254711000001"
    assert body["metrics"]["time_to_first_audio_ms"] == 420
    assert body["cdr"] == {"status": "completed", "cost_minor": 0}
    assert "stream_token" not in body


def test_show_unknown_call_is_404_json(api: Any, seeded: list[str]) -> None:
    status, body = call(api, "/calls/nope")
    assert status == 404
    assert body == {"error": "call 'nope' not found"}


def test_unknown_route_is_404_json(api: Any, seeded: list[str]) -> None:
    status, body = call(api, "/nothing-here")
    assert status == 404
    assert body == {"error": "no such route"}
