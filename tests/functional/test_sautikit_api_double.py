"""The Sautikit REST API double over real HTTP on 127.0.0.1 (urllib, no mocks)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from doubles.sautikit_api import (
    DEFAULT_API_KEY,
    SautikitApiDouble,
    ScriptedResponse,
    call_cost_minor,
)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CDR_FIELDS = {
    "id",
    "workspace_id",
    "session_id",
    "direction",
    "local_e164",
    "remote_e164",
    "country",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "status",
    "cost_minor",
    "cost_currency",
    "rate_per_minute_minor",
    "failure_code",
    "metadata",
    "created_at",
    "updated_at",
    "events",
}


def http(
    method: str,
    url: str,
    body: Any = None,
    key: str | None = DEFAULT_API_KEY,
    raw: bool = False,
) -> tuple[int, Any, dict[str, str]]:
    """One request; returns (status, parsed JSON or raw bytes, lower-cased headers)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, payload, headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        status, payload, headers = err.code, err.read(), err.headers
    lowered = {k.lower(): v for k, v in headers.items()}
    return status, payload if raw else json.loads(payload or b"null"), lowered


@pytest.fixture
def api() -> Iterator[SautikitApiDouble]:
    with SautikitApiDouble() as double:
        yield double


def register(api: SautikitApiDouble, **body: Any) -> dict[str, Any]:
    body = {"direction": "inbound", "from": "+254711222333", "to": "+254700000100", **body}
    status, payload, _ = http("POST", f"{api.url}/_double/calls", body, key=None)
    assert status == 201
    return payload["call"]


def complete(api: SautikitApiDouble, call_id: str, **body: Any) -> dict[str, Any]:
    status, payload, _ = http("POST", f"{api.url}/_double/calls/{call_id}/complete", body)
    assert status == 200, payload
    return payload["call"]


def test_binds_to_loopback_on_an_ephemeral_port(api: SautikitApiDouble) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", api.url)
    assert not api.url.endswith(":0")


def test_any_call_event_is_posted_to_the_events_url_like_its_own() -> None:
    received: list[tuple[dict[str, Any], dict[str, str]]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events_url = f"http://127.0.0.1:{server.server_address[1]}/events"
    try:
        with SautikitApiDouble(events_url=events_url, webhook_secret="s") as api:
            call = register(api)
            url = f"{api.url}/_double/calls/{call['session_id']}/events"
            body = {"kind": "call.stream.stopped", "data": {"callSessionState": "StreamStopped"}}
            status, reply, _ = http("POST", url, body, key=None)
            assert status == 202
            for _ in range(100):
                if api.event_deliveries and api.event_deliveries[0]["status"] is not None:
                    break
                time.sleep(0.02)
            (delivery,) = api.event_deliveries
            assert delivery["status"] == 204
            # Bad requests are refused and send nothing.
            assert http("POST", url, {"data": {}}, key=None)[0] == 400
            assert http("POST", url, {"kind": "x", "data": [1]}, key=None)[0] == 400
            missing = f"{api.url}/_double/calls/HD_000000000000/events"
            assert http("POST", missing, body, key=None)[0] == 404
            assert len(api.event_deliveries) == 1
    finally:
        server.shutdown()
        server.server_close()
    ((envelope, headers),) = received
    assert envelope["kind"] == "call.stream.stopped"
    assert envelope["event_id"] == reply["event_id"] == headers["x-sautikit-event-id"]
    assert envelope["data"] == {
        "call_id": call["id"],
        "session_id": call["session_id"],
        "callSessionState": "StreamStopped",
    }
    assert headers["x-sautikit-signature"].startswith("t=")


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_key_is_401_with_the_error_envelope(
    api: SautikitApiDouble, key: str | None
) -> None:
    status, body, _ = http("GET", f"{api.url}/v1/calls/anything", key=key)
    assert status == 401
    assert body["error"]["code"] == "api_key.invalid"
    assert body["error"]["message"]
    assert body["error"]["request_id"].startswith("req_")


def test_missing_scope_is_403_scope_denied() -> None:
    with SautikitApiDouble(scopes={"calls.read"}) as api:
        status, body, _ = http("GET", f"{api.url}/v1/numbers")
        assert (status, body["error"]["code"]) == (403, "api_key.scope_denied")
        status, _, _ = http("GET", f"{api.url}/v1/calls")
        assert status == 200


def test_cdr_has_documented_fields_and_resolves_either_id(api: SautikitApiDouble) -> None:
    row = register(api, answered_at="2026-10-01T09:00:02Z")
    assert UUID_RE.match(row["id"])
    assert re.fullmatch(r"HD_[0-9a-f]{12}", row["session_id"])
    for ident in (row["id"], row["session_id"]):
        status, body, headers = http("GET", f"{api.url}/v1/calls/{ident}")
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert set(body) == {"call"}
        call = body["call"]
        assert set(call) == CDR_FIELDS
        assert call["id"] == row["id"]
        assert (call["local_e164"], call["remote_e164"]) == ("+254700000100", "+254711222333")
        assert call["cost_currency"] == "KES"
        assert call["rate_per_minute_minor"] == 0
        assert call["status"] == "answered"
        assert [e["kind"] for e in call["events"]] == ["call.started", "call.answered"]
        assert set(call["events"][0]) == {
            "id",
            "call_id",
            "kind",
            "payload",
            "occurred_at",
            "created_at",
        }


def test_unknown_call_is_404_calls_not_found(api: SautikitApiDouble) -> None:
    status, body, _ = http("GET", f"{api.url}/v1/calls/HD_000000000000")
    assert (status, body["error"]["code"]) == (404, "calls.not_found")


def test_completed_call_is_not_final_for_the_configured_reads(api: SautikitApiDouble) -> None:
    row = register(api)
    complete(api, row["id"], duration_seconds=90, answered_at="2026-10-01T09:00:02Z")
    first = http("GET", f"{api.url}/v1/calls/{row['session_id']}")[1]["call"]
    assert first["status"] == "answered"
    assert first["cost_minor"] is None and first["ended_at"] is None
    final = http("GET", f"{api.url}/v1/calls/{row['id']}")[1]["call"]
    assert final["status"] == "completed"
    assert final["duration_seconds"] == 90
    assert final["cost_minor"] == 0  # inbound is KES 0/min
    assert final["ended_at"] is not None
    assert final["events"][-1]["kind"] == "call.completed"


def test_not_final_window_in_seconds() -> None:
    with SautikitApiDouble(not_final_reads=0, not_final_seconds=0.3) as api:
        row = register(api, answered_at="2026-10-01T09:00:02Z")
        complete(api, row["id"], duration_seconds=5)
        assert http("GET", f"{api.url}/v1/calls/{row['id']}")[1]["call"]["cost_minor"] is None
        time.sleep(0.35)
        assert http("GET", f"{api.url}/v1/calls/{row['id']}")[1]["call"]["cost_minor"] == 0


@pytest.mark.parametrize(
    ("billing", "dialled_seconds", "expected"),
    [("per_minute", 90, 600), ("per_minute", 60, 300), ("per_second", 90, 450)],
)
def test_dialled_leg_billed_at_outbound_rate(
    billing: str, dialled_seconds: int, expected: int
) -> None:
    with SautikitApiDouble(billing=billing, not_final_reads=0) as api:
        row = register(api, answered_at="2026-10-01T09:00:02Z")
        complete(
            api,
            row["id"],
            duration_seconds=130,
            dialled_seconds=dialled_seconds,
            dialled_to="+254722000111",
        )
        call = http("GET", f"{api.url}/v1/calls/{row['id']}")[1]["call"]
        assert call["cost_minor"] == expected
        dial = next(e for e in call["events"] if e["kind"] == "dial.completed")
        assert dial["payload"]["rate_per_minute_minor"] == 300
        child = http("GET", f"{api.url}/v1/calls/{dial['payload']['child_call_id']}")[1]["call"]
        assert child["direction"] == "outbound"
        assert child["remote_e164"] == "+254722000111"
        assert child["cost_minor"] == expected
        assert child["metadata"] == {"parent_call_id": row["id"]}


def test_cost_formula() -> None:
    assert call_cost_minor(1, 300, "per_minute") == 300
    assert call_cost_minor(61, 300, "per_minute") == 600
    assert call_cost_minor(61, 300, "per_second") == 305
    assert call_cost_minor(0, 300, "per_minute") == 0
    with pytest.raises(ValueError, match="billing"):
        call_cost_minor(10, 300, "per_hour")


def test_scripted_faults_in_order_then_normal(api: SautikitApiDouble) -> None:
    row = register(api)
    api.script(
        ScriptedResponse.pending(retry_after_seconds=2),
        ScriptedResponse.rate_limited(retry_after_seconds=3),
        ScriptedResponse.server_error(502),
        ScriptedResponse.server_error(503),
        ScriptedResponse.not_found(),
        call_id=row["session_id"],
    )
    url = f"{api.url}/v1/calls/{row['id']}"  # scripted by session id, fetched by UUID
    status, body, headers = http("GET", url)
    assert (status, body["retry_after_seconds"], headers["retry-after"]) == (202, 2, "2")
    status, body, headers = http("GET", url)
    assert (status, headers["retry-after"], body["error"]["code"]) == (429, "3", "rate_limited")
    assert http("GET", url)[0] == 502
    assert http("GET", url)[0] == 503
    assert http("GET", url)[1]["error"]["code"] == "calls.not_found"
    assert http("GET", url)[0] == 200


def test_malformed_unwrapped_and_slow(api: SautikitApiDouble) -> None:
    row = register(api)
    path = f"/v1/calls/{row['id']}"
    api.script(
        ScriptedResponse.malformed(),
        ScriptedResponse.unwrapped(),
        ScriptedResponse.slow(0.2),
        path=path,
    )
    status, raw, _ = http("GET", api.url + path, raw=True)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    status, body, _ = http("GET", api.url + path)
    assert status == 200 and body["id"] == row["id"] and "call" not in body
    started = time.monotonic()
    status, body, _ = http("GET", api.url + path)
    assert status == 200 and body["call"]["id"] == row["id"]
    assert time.monotonic() - started >= 0.2  # the delay happened (a lower bound, not a goal)


def test_global_script_repeats_forever_when_asked(api: SautikitApiDouble) -> None:
    api.script(ScriptedResponse.server_error(500), times=None)
    for _ in range(3):
        assert http("GET", f"{api.url}/v1/numbers")[0] == 500


def test_numbers_browse_claim_route_list(api: SautikitApiDouble) -> None:
    status, inventory, _ = http("GET", f"{api.url}/v1/numbers/available?country=KE&currency=KES")
    assert status == 200 and isinstance(inventory, list) and inventory
    item = inventory[0]
    assert set(item) == {
        "id",
        "number",
        "country",
        "capabilities",
        "monthly_price_minor",
        "inbound_per_min_minor",
        "outbound_per_min_minor",
        "currency",
    }
    assert (item["inbound_per_min_minor"], item["outbound_per_min_minor"]) == (0, 300)

    status, claimed, _ = http("POST", f"{api.url}/v1/numbers", {"inventory_id": item["id"]})
    assert status == 201
    assert set(claimed) == {
        "id",
        "number",
        "status",
        "currency",
        "monthly_price_minor",
        "created_at",
    }
    assert (claimed["number"], claimed["status"]) == (item["number"], "active")

    second = inventory[1]
    status, other, _ = http("POST", f"{api.url}/v1/numbers/{second['id']}/claim")
    assert status == 201 and other["number"] == second["number"]
    status, body, _ = http("POST", f"{api.url}/v1/numbers/{second['id']}/claim")
    assert status == 409

    status, patched, _ = http(
        "PATCH",
        f"{api.url}/v1/numbers/{claimed['id']}",
        {"routing_url": "https://x.example/voice", "events_url": "https://x.example/events"},
    )
    assert status == 200
    assert patched["voice_callback_url"] == "https://x.example/voice"
    assert patched["events_url"] == "https://x.example/events"
    status, patched, _ = http(
        "PUT",
        f"{api.url}/v1/numbers/{other['id']}/routing",
        {"voice_callback_url": "https://y.example/voice"},
    )
    assert status == 200 and patched["routing_url"] == "https://y.example/voice"

    status, owned, _ = http("GET", f"{api.url}/v1/numbers")
    assert status == 200
    by_id = {n["id"]: n for n in owned["numbers"]}
    assert by_id[claimed["id"]]["e164"] == item["number"]
    assert by_id[claimed["id"]]["voice_callback_url"] == "https://x.example/voice"
    for key in ("country_iso2", "monthly_retail_minor", "claimed_at", "capabilities"):
        assert key in by_id[claimed["id"]]
    assert all(n["number"] != item["number"] for n in http("GET", inventory_url(api))[1])


def inventory_url(api: SautikitApiDouble) -> str:
    return f"{api.url}/v1/numbers/available?country=KE"


def test_patch_unknown_number_and_empty_routing(api: SautikitApiDouble) -> None:
    status, body, _ = http("PATCH", f"{api.url}/v1/numbers/nope", {"routing_url": "https://x"})
    assert (status, body["error"]["code"]) == (404, "numbers.not_found")
    item = http("GET", inventory_url(api))[1][0]
    claimed = http("POST", f"{api.url}/v1/numbers", {"inventory_id": item["id"]})[1]
    status, body, _ = http("PATCH", f"{api.url}/v1/numbers/{claimed['id']}", {"name": "x"})
    assert (status, body["error"]["code"]) == (400, "request.invalid")


@pytest.mark.parametrize("code", ["wallet.insufficient_funds", "wallet_insufficient_funds"])
def test_claim_with_low_wallet_is_402(code: str) -> None:
    with SautikitApiDouble(wallet_balance_minor=15000, insufficient_funds_code=code) as api:
        first, second = http("GET", inventory_url(api))[1][:2]
        assert http("POST", f"{api.url}/v1/numbers", {"inventory_id": first["id"]})[0] == 201
        assert http("GET", f"{api.url}/v1/wallet/balance")[1]["balance_minor"] == 5000
        status, body, _ = http("POST", f"{api.url}/v1/numbers", {"inventory_id": second["id"]})
        assert (status, body["error"]["code"]) == (402, code)
        assert body["error"]["request_id"]


def test_records_every_request(api: SautikitApiDouble) -> None:
    http("PATCH", f"{api.url}/v1/numbers/n1", {"routing_url": "https://x"})
    recorded = api.requests[-1]
    assert (recorded.method, recorded.path) == ("PATCH", "/v1/numbers/n1")
    assert recorded.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert recorded.json() == {"routing_url": "https://x"}
    http("GET", f"{api.url}/v1/numbers/available?country=KE")
    assert api.requests[-1].query == {"country": ["KE"]}


def test_hangup_and_list(api: SautikitApiDouble) -> None:
    row = register(api)
    status, body, _ = http("POST", f"{api.url}/v1/calls/{row['session_id']}/hangup")
    assert (status, body) == (200, {"call_id": row["id"], "status": "hung_up"})
    status, page, _ = http("GET", f"{api.url}/v1/calls?session_id={row['session_id']}")
    assert status == 200 and [c["id"] for c in page["data"]] == [row["id"]]
    assert page["next_cursor"] is None


def test_double_only_endpoints_validate_input(api: SautikitApiDouble) -> None:
    assert http("GET", f"{api.url}/_double/ping", key=None)[1] == {
        "double": "sautikit",
        "version": 1,
    }
    status, body, _ = http("POST", f"{api.url}/_double/calls/unknown/complete", {})
    assert (status, body["error"]["code"]) == (404, "calls.not_found")
    row = register(api)
    status, _, _ = http("POST", f"{api.url}/_double/calls", {"call_id": row["id"]}, key=None)
    assert status == 409
    status, body, _ = http(
        "POST", f"{api.url}/_double/calls/{row['id']}/complete", {"status": "exploded"}
    )
    assert status == 400
