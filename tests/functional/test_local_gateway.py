"""Contract under test: the local gateway turns real HTTP requests into HTTP API v2 events,
routes them like API Gateway (path parameters, 404/405), and relays the handler's response."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from local.gateway import Gateway, Route, routes_from_template


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    routes = [
        Route(
            "POST", "/voice", "EchoFunction", "tests.functional.echo_handler.lambda_handler", False
        ),
        Route(
            "GET",
            "/calls/{call_id}",
            "EchoFunction",
            "tests.functional.echo_handler.lambda_handler",
            True,
        ),
        Route("GET", "/broken", "Broken", "tests.functional.echo_handler.failing_handler", False),
    ]
    gw = Gateway(port=0, routes=routes, status_page=lambda: "parts: gateway\n").start()
    yield gw
    gw.stop()


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_form_post_becomes_base64_v2_event(gateway: Gateway) -> None:
    body = b"CallId=abc&From=%2B254722000111&To=%2B254700000100"
    status, headers, raw = request(
        gateway.url + "/voice?x=1",
        body,
        {"Content-Type": "application/x-www-form-urlencoded", "X-Sautikit-Signature": "t=1,v1=ab"},
    )
    assert status == 200
    assert headers["X-Function"] == "EchoFunction"
    event = json.loads(raw)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /voice"
    assert event["rawPath"] == "/voice" and event["rawQueryString"] == "x=1"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["stage"] == "$default"
    assert event["headers"]["x-sautikit-signature"] == "t=1,v1=ab"  # lower-cased like HTTP API
    assert event["isBase64Encoded"] is True
    decoded = base64.b64decode(event["body"])
    assert decoded == body
    assert parse_qs(decoded.decode())["From"] == ["+254722000111"]


def test_json_body_passes_as_text(gateway: Gateway) -> None:
    status, _, raw = request(
        gateway.url + "/voice", b'{"CallId": "x"}', {"Content-Type": "application/json"}
    )
    event = json.loads(raw)
    assert status == 200
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"CallId": "x"}


def test_path_parameters_and_status_codes(gateway: Gateway) -> None:
    status, _, raw = request(gateway.url + "/calls/c-123?status=404")
    assert status == 404
    assert json.loads(raw)["pathParameters"] == {"call_id": "c-123"}
    assert request(gateway.url + "/nope")[0] == 404
    assert request(gateway.url + "/calls/c-1", b"x")[0] == 405  # POST on a GET-only route


def test_handler_crash_is_a_500_and_the_gateway_survives(gateway: Gateway) -> None:
    assert request(gateway.url + "/broken")[0] == 500
    assert request(gateway.url + "/calls/c-9")[0] == 200


def test_status_page(gateway: Gateway) -> None:
    status, _, raw = request(gateway.url + "/")
    assert status == 200 and b"parts: gateway" in raw


def test_root_redirects_to_the_console_when_it_runs(gateway: Gateway) -> None:
    gateway.home_url = "http://127.0.0.1:8099"

    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.build_opener(Keep).open(gateway.url + "/", timeout=5)
    assert answer.value.code == 302
    assert answer.value.headers["Location"] == "http://127.0.0.1:8099"


def test_template_routes_are_the_design_routes() -> None:
    routes = {(r.method, r.path) for r in routes_from_template()}
    assert {
        ("POST", "/voice"),
        ("POST", "/stream-status"),
        ("POST", "/events"),
        ("GET", "/calls"),
        ("GET", "/calls/{call_id}"),
    } <= routes
