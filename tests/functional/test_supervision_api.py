"""Live-call supervision: the real client against the Sautikit double over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from doubles.sautikit_api import DEFAULT_API_KEY, SautikitApiDouble, ScriptedResponse
from mapokezi.sautikit_api import (
    ConflictError,
    NotFoundError,
    SautikitClient,
    ScopeDeniedError,
    ServerError,
    Supervision,
    SupervisionInProgressError,
    TransportError,
    phone_supervisor,
)

PERSON = "+254711222333"
SECRET = "whsec_test"


class EventSink:
    """Collects the double's event POSTs (body and headers) on a real socket."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, Any], dict[str, str]]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                sink.events.append(
                    (json.loads(raw), {k.lower(): v for k, v in self.headers.items()})
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def kinds(self) -> list[str]:
        return [body["kind"] for body, _ in self.events]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sink() -> Iterator[EventSink]:
    events = EventSink()
    yield events
    events.server.shutdown()
    events.server.server_close()


@pytest.fixture
def api(sink: EventSink) -> Iterator[SautikitApiDouble]:
    with SautikitApiDouble(events_url=sink.url, webhook_secret=SECRET) as double:
        double.supervision.set_person(ring_after=0.05, answer_after=0.1, ring_timeout=0.5)
        yield double


@pytest.fixture
def client(api: SautikitApiDouble) -> SautikitClient:
    return SautikitClient(api.url, DEFAULT_API_KEY, timeout=5)


@pytest.fixture
def call(api: SautikitApiDouble) -> dict[str, Any]:
    return api.register_call(answered_at="2026-11-29T10:00:00Z")


def start(client: SautikitClient, call: dict[str, Any], key: str = "k1") -> Supervision:
    return client.start_supervision(
        call["id"], phone_supervisor(PERSON, "Front desk"), idempotency_key=key
    )


def test_barge_rings_then_connects_and_events_follow(
    client: SautikitClient, api: SautikitApiDouble, call: dict[str, Any], sink: EventSink
) -> None:
    sup = start(client, call)
    assert sup.state == "connecting" and sup.mode == "barge"
    assert sup.supervisor == {"type": "phone", "number": PERSON, "label": "Front desk"}
    post = next(r for r in api.requests if r.method == "POST" and r.path.endswith("/supervision"))
    assert post.headers["idempotency-key"] == "k1"
    assert post.json() == {"mode": "barge", "supervisor": phone_supervisor(PERSON, "Front desk")}
    connected = wait_for(
        lambda: (s := client.get_supervision(call["session_id"])) and s.state == "connected" and s,
        "connected",
    )
    assert connected.supervision_id == sup.supervision_id and connected.connected_at
    wait_for(lambda: "call.supervision.connected" in sink.kinds(), "connected event")
    body, headers = sink.events[sink.kinds().index("call.supervision.connected")]
    assert set(body) == {"kind", "event_id", "workspace_id", "occurred_at", "data"}
    assert body["data"]["call_id"] == call["id"]
    assert body["data"]["supervision_id"] == sup.supervision_id
    assert headers["x-sautikit-event"] == "call.supervision.connected"
    assert (
        headers["x-sautikit-signature"].startswith("t=")
        and ",v1=" in headers["x-sautikit-signature"]
    )
    assert sink.kinds()[0] == "call.supervision.ringing"


def test_same_idempotency_key_replays_and_a_second_supervision_is_409(
    client: SautikitClient, call: dict[str, Any]
) -> None:
    first = start(client, call, "same")
    again = start(client, call, "same")
    assert again.supervision_id == first.supervision_id
    with pytest.raises(SupervisionInProgressError) as caught:
        start(client, call, "other")
    assert caught.value.status == 409 and caught.value.code == "calls.supervision_in_progress"
    assert isinstance(caught.value, ConflictError)


def test_busy_no_answer_and_failure_end_in_failed_with_reason(
    client: SautikitClient, api: SautikitApiDouble
) -> None:
    for behaviour, reason in (
        ("busy", "busy"),
        ("no_answer", "no_answer"),
        ("fail", "network_error"),
    ):
        api.supervision.set_person(behaviour=behaviour)
        row = api.register_call(answered_at="2026-11-29T10:00:00Z")
        start(client, row, f"key-{behaviour}")
        done = wait_for(
            lambda row=row: (s := client.get_supervision(row["id"])) and s.state == "failed" and s,
            f"{behaviour} to fail",
        )
        assert done.failure_reason == reason, behaviour


def test_person_hangs_up_first_and_leg_is_billed(
    client: SautikitClient, api: SautikitApiDouble, call: dict[str, Any], sink: EventSink
) -> None:
    api.supervision.set_person(behaviour="manual", ring_after=0.01)
    start(client, call)
    wait_for(lambda: client.get_supervision(call["id"]).state == "ringing", "ringing")
    with pytest.raises(ConflictError):
        client.set_supervision_mode(call["id"], "listen")  # 409 while ringing
    api.supervision.person_acts(call["id"], "answer")
    assert client.set_supervision_mode(call["id"], "listen").mode == "listen"
    api.supervision.person_acts(call["id"], "hangup")
    ended = client.get_supervision(call["id"])
    assert ended.state == "ended" and ended.failure_reason == "supervisor_hangup"
    final = api.complete_call(call["id"], duration_seconds=70)
    legs = [e for e in final["events"] if e["kind"] == "supervision.completed"]
    assert len(legs) == 1 and legs[0]["payload"]["to"] == PERSON
    assert legs[0]["payload"]["cost_minor"] == 300  # a started minute at KES 3.00
    wait_for(lambda: "call.supervision.ended" in sink.kinds(), "ended event")


def test_delete_is_idempotent_and_get_without_supervision_is_none(
    client: SautikitClient, call: dict[str, Any]
) -> None:
    assert client.get_supervision(call["id"]) is None
    client.stop_supervision(call["id"])  # nothing to remove: no error
    start(client, call)
    client.stop_supervision(call["id"])
    client.stop_supervision(call["id"])
    assert client.get_supervision(call["id"]).state == "ended"


def test_missing_scope_unknown_call_and_server_errors_are_typed(
    api: SautikitApiDouble, call: dict[str, Any]
) -> None:
    api.scopes = {"calls.read"}
    client = SautikitClient(api.url, DEFAULT_API_KEY)
    with pytest.raises(ScopeDeniedError) as caught:
        start(client, call)
    assert caught.value.code == "api_key.scope_denied"
    api.scopes = None
    with pytest.raises(NotFoundError):
        client.start_supervision("no-such-call", phone_supervisor(PERSON), idempotency_key="x")
    api.script(ScriptedResponse.server_error(503), call_id=call["id"])
    with pytest.raises(ServerError) as server:
        start(client, call)
    assert server.value.transient


def test_timeout_is_a_transport_error(api: SautikitApiDouble, call: dict[str, Any]) -> None:
    api.script(ScriptedResponse.slow(1.0), call_id=call["id"])
    client = SautikitClient(api.url, DEFAULT_API_KEY, timeout=0.2)
    with pytest.raises(TransportError) as caught:
        client.get_supervision(call["id"])
    assert caught.value.code == "transport.timeout" and caught.value.status is None


def test_ended_call_refuses_supervision(client: SautikitClient, api: SautikitApiDouble) -> None:
    row = api.register_call(answered_at="2026-11-29T10:00:00Z")
    api.complete_call(row["id"], duration_seconds=5)
    with pytest.raises(ConflictError) as caught:
        start(client, row)
    assert caught.value.code == "calls.not_in_progress"
