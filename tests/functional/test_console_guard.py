"""The console refuses what another web page could make the operator's browser do: DNS-rebound
reads, cross-site uploads and cross-site talk sockets (a real server on 127.0.0.1, moto)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from mapokezi_cli.console import ConsoleServer, ConsoleSettings
from mapokezi_cli.console.sources import TableSource


@pytest.fixture
def console(calls_table: Any) -> Iterator[str]:
    server = ConsoleServer(ConsoleSettings(TableSource(calls_table, "test")), port=0).start()
    yield server.url
    server.stop()


def _status(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    data = b"--x--\r\n" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_pages_answer_under_loopback_names_only(console: str) -> None:
    assert _status(console + "/calls") == 200
    port = console.rsplit(":", 1)[1]
    assert _status(console + "/calls", headers={"Host": f"localhost:{port}"}) == 200
    assert _status(console + "/calls", headers={"Host": f"attacker.example:{port}"}) == 403


def test_uploads_must_come_from_the_console_itself(console: str) -> None:
    form = {"Content-Type": "multipart/form-data; boundary=x"}
    foreign = _status(console + "/numbers", "POST", {**form, "Origin": "http://evil.example"})
    assert foreign == 403
    assert _status(console + "/numbers", "POST", form) == 403  # no Origin at all
    own = _status(console + "/numbers", "POST", {**form, "Origin": console})
    assert own == 400  # let through, and the empty form is refused with its reason


def test_talk_socket_must_come_from_the_console_itself(console: str) -> None:
    ws_url = console.replace("http", "ws") + "/talk/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, origin="http://evil.example", open_timeout=5)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    with connect(ws_url, origin=console, open_timeout=5) as ws:  # type: ignore[arg-type]
        assert '"ended"' in str(ws.recv(timeout=5))  # no voice webhook configured: says so


def test_a_missing_table_is_explained_not_a_bare_500(aws: None) -> None:
    from mapokezi import config

    missing = TableSource(config.dynamodb_table("no-such-table"), "table no-such-table")
    server = ConsoleServer(ConsoleSettings(missing), port=0).start()
    try:
        request = urllib.request.Request(server.url + "/calls")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == 502
        text = answer.value.read().decode()
        assert "could not read table no-such-table" in text and "CALLS_TABLE" in text
    finally:
        server.stop()
