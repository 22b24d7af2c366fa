"""The media node's server shell on real sockets: probes, admission, calls, drain, heartbeats.

Call sessions here are a small echo session injected through the server's session factory, so
the shell is tested on its own; the real CallSession is exercised in test_media_server_call.py.
Tokens are real (minted with the shared secret) and the call records live in moto's table.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from doubles.openai_realtime import RealtimeDouble
from local.template import create_tables
from mapokezi import keys, store, tokens
from mapokezi.profiles import Profile, load_profile_file, parse_profile
from media_node.heartbeat import Heartbeat
from media_node.logging_setup import JsonFormatter, configure_logging
from media_node.node_settings import NodeSettings
from media_node.protection import TaskProtection
from media_node.server import MediaServer, default_session_factory

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-stream-token-secret"
NUMBER = "+254700000100"
WAIT = 10.0  # upper bound on any single wait in these tests


class EchoSession:
    """Echoes binary audio back until the caller closes; drain says so and closes."""

    instances: list[EchoSession] = []

    def __init__(self, websocket: ServerConnection, call_id: str, profile: Profile) -> None:
        self.websocket = websocket
        self.call_id = call_id
        self.profile = profile
        self.drained_with: float | None = None
        EchoSession.instances.append(self)

    async def run(self) -> str:
        try:
            async for message in self.websocket:
                if isinstance(message, bytes):
                    await self.websocket.send(message)
        except ConnectionClosed:
            pass
        return "drained" if self.drained_with is not None else "caller_hangup"

    async def drain(self, deadline: float) -> None:
        self.drained_with = deadline
        await self.websocket.send(json.dumps({"type": "draining", "call_id": self.call_id}))
        await self.websocket.close()


class ExplodingSession(EchoSession):
    async def run(self) -> str:
        await self.websocket.recv()
        raise RuntimeError("boom")


def node_settings(**env_changes: str) -> NodeSettings:
    env = {
        "STREAM_TOKEN_SECRET": SECRET,
        "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/v1/realtime",
        "MEDIA_NODE_PORT": "0",
        "NODE_ID": "node-test",
        "MAX_CALLS": "2",
        "HEARTBEAT_INTERVAL_SECONDS": "0.1",
        "METRIC_INTERVAL_SECONDS": "0.1",
        "DRAIN_SECONDS": "5",
        "CALLS_TABLE": "test-calls",
        **env_changes,
    }
    return NodeSettings.from_env(env)


@contextlib.asynccontextmanager
async def running(
    table: Any,
    factory: Callable[..., Any] = EchoSession,
    *,
    protection: TaskProtection | None = None,
    **env_changes: str,
) -> AsyncIterator[MediaServer]:
    metrics: list[dict[str, Any]] = []
    server = MediaServer(
        node_settings(**env_changes),
        table,
        factory,
        protection=protection,
        emit_metric=metrics.append,
    )
    server.emitted = metrics  # type: ignore[attr-defined]
    await server.start()
    try:
        yield server
    finally:
        async with asyncio.timeout(WAIT):
            await server.shutdown(drain_seconds=0)


@contextlib.asynccontextmanager
async def real_node(table: Any) -> AsyncIterator[tuple[MediaServer, RealtimeDouble]]:
    """A started server with the production session factory, against a Realtime double."""
    async with RealtimeDouble() as double:
        node = node_settings(OPENAI_REALTIME_URL=double.url, OPENAI_API_KEY="sk-test")
        server = MediaServer(node, table, default_session_factory(node, table), emit_metric=list)
        await server.start()
        try:
            yield server, double
        finally:
            await server.shutdown(drain_seconds=0)


def new_call(table: Any, call_id: str, *, ttl_seconds: int = 120, now: float | None = None) -> str:
    """A call record with a freshly minted stream token; returns the token."""
    store.create_call(table, call_id=call_id, caller="+254711000001", to=NUMBER, retention_days=1)
    token, claims = tokens.mint_stream_token(
        SECRET, call_id, NUMBER, ttl_seconds=ttl_seconds, now=now
    )
    store.set_stream_token(table, call_id, claims.nonce)
    return token


def with_example_profile(table: Any) -> Any:
    """`table`, with the example profile stored for `NUMBER`."""
    profile = parse_profile(load_profile_file(ROOT / "profiles" / "example.yaml"), number=NUMBER)
    store.put_profile(table, profile)
    return table


@pytest.fixture
def table(calls_table: Any) -> Any:
    with_example_profile(calls_table)
    EchoSession.instances.clear()
    return calls_table


def audio_url(server: MediaServer, token: str | None) -> str:
    base = f"ws://127.0.0.1:{server.port}/audio"
    return base if token is None else f"{base}?token={token}"


def media_socket(
    server: MediaServer, token: str | None, subprotocols: list[str] | None = None
) -> Any:
    offered = ["audio.drachtio.org"] if subprotocols is None else subprotocols
    return connect(audio_url(server, token), subprotocols=offered or None, open_timeout=WAIT)


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def refused(server: MediaServer, token: str | None, **kw: Any) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as caught:
        async with media_socket(server, token, **kw):
            pass
    response = caught.value.response
    return response.status_code, response.body.decode()


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (table items and server counters have no event to wait on)."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


# --- probes -------------------------------------------------------------------------------


async def test_healthz_ready_and_unknown_paths(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        assert await http_get(server.port, "/healthz") == (200, "OK\n")
        assert await http_get(server.port, "/ready") == (200, "ready\n")
        assert (await http_get(server.port, "/nope"))[0] == 404


async def test_ready_is_503_at_max_calls(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table, MAX_CALLS="1") as server:
        async with media_socket(server, new_call(table, "call-full-1")) as first:
            await until(lambda: server.active_calls == 1)
            assert await http_get(server.port, "/ready") == (503, "full\n")
            status, body = await refused(server, new_call(table, "call-full-2"))
            assert (status, body) == (503, "node is at capacity\n")
            await first.send(b"\x01\x00")
            assert await first.recv() == b"\x01\x00"
        await until(lambda: server.active_calls == 0)
        assert (await http_get(server.port, "/ready"))[0] == 200
        assert server.refusals["full"] == 1


# --- admission ----------------------------------------------------------------------------


async def test_accepts_drachtio_and_echoes_audio(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        async with media_socket(server, new_call(table, "call-ok")) as ws:
            assert ws.subprotocol == "audio.drachtio.org"
            await ws.send(json.dumps({"callSid": "call-ok"}))
            await ws.send(b"\x00\x01" * 160)
            assert await ws.recv() == b"\x00\x01" * 160
        await until(lambda: server.active_calls == 0)
        record = store.get_call(table, "call-ok")
        assert record["stream_token"]["node_id"] == "node-test"
        assert EchoSession.instances[0].profile.number == NUMBER
        assert server.outcomes["caller_hangup"] == 1


async def test_accepts_jambonz_subprotocol(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        token = new_call(table, "call-jambonz")
        async with media_socket(server, token, subprotocols=["audio.jambonz.org"]) as ws:
            assert ws.subprotocol == "audio.jambonz.org"


@pytest.mark.parametrize("offered", [[], ["chat"]])
async def test_refuses_without_our_subprotocol(table: Any, offered: list[str]) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        token = new_call(table, "call-proto")
        status, body = await refused(server, token, subprotocols=offered)
        assert status == 400
        assert "audio.drachtio.org" in body
        assert server.refusals["subprotocol"] == 1
        # The token was not spent: the right subprotocol still gets in.
        async with media_socket(server, token) as ws:
            assert ws.subprotocol == "audio.drachtio.org"


async def test_refuses_bad_tokens_with_401(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        good = new_call(table, "call-tokens")
        expired = new_call(table, "call-expired", ttl_seconds=10, now=time.time() - 600)
        forged, _ = tokens.mint_stream_token("another-secret", "call-tokens", NUMBER)
        cases = {
            "token_missing": None,
            "token_malformed": "not-a-token",
            "token_expired": expired,
            "token_bad_signature": forged,
        }
        for reason, token in cases.items():
            status, body = await refused(server, token)
            assert status == 401, reason
            assert body.startswith(reason.removeprefix("token_")), body
            assert server.refusals[reason] == 1
        async with media_socket(server, good) as ws:
            assert ws.subprotocol == "audio.drachtio.org"


async def test_decisions_are_logged_as_json_without_the_token(
    table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(WAIT), running(table) as server:
        token = new_call(table, "call-logged")
        async with media_socket(server, token):
            pass
        await refused(server, token)
        await until(lambda: server.active_calls == 0)
    formatter = JsonFormatter("test")
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    assert token not in json.dumps(lines)
    assert token.split(".")[2] not in json.dumps(lines)  # not even the signature
    decisions = [line for line in lines if line["message"].startswith("media socket")]
    assert [(d["message"], d["call_id"]) for d in decisions] == [
        ("media socket admitted", "call-logged"),
        ("media socket refused", "call-logged"),
    ]
    assert decisions[1]["reason"] == "token_not_claimable"


def test_log_setup_writes_json_lines_and_emf_verbatim() -> None:
    root, websockets_logger = logging.getLogger(), logging.getLogger("websockets")
    saved = (root.handlers[:], root.level, websockets_logger.level)
    stream = io.StringIO()
    try:
        configure_logging(logging.DEBUG, service="svc", stream=stream)
        # At DEBUG websockets prints request lines, which carry the token: kept at INFO.
        assert logging.getLogger("websockets.server").getEffectiveLevel() == logging.INFO
        logging.getLogger("media_node.metrics").info('{"_aws":{},"ActiveCalls":0}')
        logging.getLogger("media_node.server").info("hello", extra={"call_id": "c-1"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        websockets_logger.setLevel(saved[2])
    emf, line = stream.getvalue().splitlines()
    assert emf == '{"_aws":{},"ActiveCalls":0}'
    document = json.loads(line)
    assert (document["message"], document["call_id"], document["level"]) == ("hello", "c-1", "INFO")
    assert document["service"] == "svc"


async def test_reused_token_is_refused_403(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        token = new_call(table, "call-reuse")
        async with media_socket(server, token) as ws:
            await ws.send(b"\x00\x00")
            await ws.recv()
        assert (await refused(server, token))[0] == 403
        assert server.refusals["token_not_claimable"] == 1


async def test_unknown_call_is_refused_403(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        token, _ = tokens.mint_stream_token(SECRET, "call-never-created", NUMBER)
        assert (await refused(server, token))[0] == 403
        assert store.get_call(table, "call-never-created") is None


async def test_missing_profile_is_refused_403(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        store.create_call(
            table, call_id="call-np", caller="+254711000001", to="+254799999999", retention_days=1
        )
        token, claims = tokens.mint_stream_token(SECRET, "call-np", "+254799999999")
        store.set_stream_token(table, "call-np", claims.nonce)
        assert await refused(server, token) == (403, "no receptionist profile for this number\n")


async def test_plain_get_on_audio_is_426(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        assert (await http_get(server.port, "/audio?token=x"))[0] == 426


# --- calls and failures -------------------------------------------------------------------


async def test_session_exception_does_not_kill_the_server(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table, ExplodingSession) as server:
        async with media_socket(server, new_call(table, "call-boom")) as ws:
            await ws.send(b"\x00\x00")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1011
        await until(lambda: server.active_calls == 0)
        assert server.outcomes["failed"] == 1
        assert await http_get(server.port, "/healthz") == (200, "OK\n")
        server.session_factory = EchoSession
        async with media_socket(server, new_call(table, "call-after-boom")) as ws:
            await ws.send(b"\x02\x00")
            assert await ws.recv() == b"\x02\x00"


async def test_shutdown_refuses_new_calls_then_drains_live_ones(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        live = await media_socket(server, new_call(table, "call-live"))
        await until(lambda: server.active_calls == 1)
        stopping = asyncio.create_task(server.shutdown(drain_seconds=2))
        await until(lambda: server.draining)
        assert await http_get(server.port, "/ready") == (503, "draining\n")
        assert (await refused(server, new_call(table, "call-late")))[0] == 503
        assert server.refusals["draining"] == 1
        # The live call keeps flowing during the drain window.
        await live.send(b"\x03\x00")
        assert await live.recv() == b"\x03\x00"
        # After the window the session is asked to drain: it tells the caller and closes.
        notice = json.loads(await live.recv())
        assert notice == {"type": "draining", "call_id": "call-live"}
        with pytest.raises(ConnectionClosed):
            await live.recv()
        await stopping
        assert server.outcomes["drained"] == 1
        assert EchoSession.instances[0].drained_with is not None
        beat = table.get_item(Key=keys.node_key("node-test"))["Item"]
        assert beat["draining"] is True
        assert beat["active_calls"] == 0


async def test_calls_ending_during_the_drain_window_are_not_drained(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        client: ClientConnection = await media_socket(server, new_call(table, "call-ends"))
        await until(lambda: server.active_calls == 1)
        stopping = asyncio.create_task(server.shutdown(drain_seconds=WAIT * 2))
        await until(lambda: server.draining)
        await client.close()
        await stopping  # returns once the last call ended, long before the window closes
        assert server.outcomes == {"caller_hangup": 1}
        assert EchoSession.instances[0].drained_with is None


async def test_hurry_cuts_the_drain_window_short(table: Any) -> None:
    async with asyncio.timeout(WAIT), running(table) as server:
        client = await media_socket(server, new_call(table, "call-hurry"))
        await until(lambda: server.active_calls == 1)
        server.request_stop()
        await until(lambda: server.draining)
        server.request_stop()  # a second signal
        assert json.loads(await client.recv())["type"] == "draining"
        await server.wait_stopped()
        assert server.outcomes["drained"] == 1


# --- heartbeats and metric ----------------------------------------------------------------


async def test_heartbeats_carry_active_calls(table: Any) -> None:
    def beat() -> dict[str, Any] | None:
        item = table.get_item(Key=keys.node_key("node-test")).get("Item")
        return store.from_dynamo(item) if item else None

    async with asyncio.timeout(WAIT), running(table) as server:
        await until(lambda: (beat() or {}).get("active_calls") == 0)
        async with media_socket(server, new_call(table, "call-beat")):
            await until(lambda: (beat() or {}).get("active_calls") == 1)
            item = beat()
            assert item["capacity"] == 2
            assert item["draining"] is False
            healthy = store.healthy_nodes(table, 30)
            assert [n["node_id"] for n in healthy] == ["node-test"]
        await until(lambda: (beat() or {}).get("active_calls") == 0)
        metrics = [m for m in server.emitted if m["ActiveCalls"] == 1]  # type: ignore[attr-defined]
        assert metrics, "an ActiveCalls sample of 1 is published while the call is live"
        directive = metrics[0]["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Mapokezi"
        assert directive["Dimensions"] == [["ServiceName"]]
        assert directive["Metrics"] == [{"Name": "ActiveCalls", "Unit": "Count"}]
        assert metrics[0]["ServiceName"] == "mapokezi-media-node"
    assert beat()["draining"] is True


async def test_heartbeat_failures_are_logged_not_raised(aws: None) -> None:
    missing = boto3.resource("dynamodb").Table("no-such-table")
    heartbeat = Heartbeat(
        missing, "node-x", capacity=1, active_calls=lambda: 0, draining=lambda: False
    )
    async with asyncio.timeout(WAIT):
        assert await heartbeat.beat() is False
        assert await heartbeat.beat(draining=True) is False
    assert (heartbeat.written, heartbeat.failures) == (0, 2)


# --- task protection against a local stand-in for the ECS agent ---------------------------


class AgentEndpoint:
    """A tiny HTTP server answering the ECS agent's task-protection PUT like the agent does."""

    def __init__(self, failures: int = 0) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.failures_left = failures
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 (http.server naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(("PUT", self.path, body))
                if outer.failures_left > 0:  # how the agent reports an ECS API failure
                    outer.failures_left -= 1
                    self._reply(
                        400,
                        {"error": {"Code": "ServerException", "Message": "try again"}},
                    )
                    return
                reply = {
                    "protection": {
                        "ExpirationDate": None,
                        "ProtectionEnabled": body["ProtectionEnabled"],
                        "TaskArn": "arn:aws:ecs:af-south-1:123456789012:task/c/abc",
                    }
                }
                self._reply(200, reply)

            def _reply(self, status: int, reply: dict[str, Any]) -> None:
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api/task-1"

    def __enter__(self) -> AgentEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_task_protection_follows_live_calls(table: Any) -> None:
    with AgentEndpoint() as agent:
        protection = TaskProtection(agent.uri, 30)
        async with asyncio.timeout(WAIT), running(table, protection=protection) as server:
            assert agent.requests == []  # no calls yet, nothing to protect
            first = await media_socket(server, new_call(table, "call-p1"))
            second = await media_socket(server, new_call(table, "call-p2"))
            await until(lambda: protection.protected)
            await first.close()
            await until(lambda: server.active_calls == 1)
            assert protection.protected
            await second.close()
            await until(lambda: not protection.protected)
    bodies = [body for _, _, body in agent.requests]
    assert bodies == [
        {"ProtectionEnabled": True, "ExpiresInMinutes": 30},
        {"ProtectionEnabled": False},
    ]
    assert {path for _, path, _ in agent.requests} == {"/api/task-1/task-protection/v1/state"}


async def test_task_protection_retries_failures_and_renews_while_busy() -> None:
    with AgentEndpoint(failures=1) as agent:
        protection = TaskProtection(agent.uri, 10, renew_after_seconds=0.2, retry_seconds=0.05)
        loop = asyncio.create_task(protection.run())
        try:
            async with asyncio.timeout(WAIT):
                protection.set_active_calls(1)
                # A failed enable, its retry, then at least one renewal while the call lasts.
                await until(lambda: len(agent.requests) >= 3)
                protection.set_active_calls(0)
                await until(lambda: agent.requests[-1][2] == {"ProtectionEnabled": False})
        finally:
            loop.cancel()
    bodies = [body for _, _, body in agent.requests]
    assert bodies[:3] == [{"ProtectionEnabled": True, "ExpiresInMinutes": 10}] * 3
    assert protection.failures == 1
    assert not protection.protected


async def test_task_protection_without_agent_uri_does_nothing() -> None:
    protection = TaskProtection(None)
    protection.set_active_calls(2)
    async with asyncio.timeout(WAIT):
        await protection.run()  # returns at once
        await protection.release()
    assert (protection.updates, protection.protected) == (0, False)


# --- the process: python -m media_node ----------------------------------------------------


def _process_env(**changes: str) -> dict[str, str]:
    """The test's environment plus the import path the container sets (PYTHONPATH=/app)."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "functions"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), **changes}


def _line_reader(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for raw in stream:
            lines.put(raw.decode(errors="replace"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_json(lines: queue.Queue[str], predicate: Callable[[dict[str, Any]], bool]) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        with contextlib.suppress(ValueError):
            document = json.loads(line)
            if isinstance(document, dict) and predicate(document):
                return document


def test_python_m_media_node_drains_on_sigterm_and_exits_0() -> None:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    process: subprocess.Popen[bytes] | None = None
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        create_tables(boto3.client("dynamodb", endpoint_url=endpoint), {"CallsTable": "sub-calls"})
        env = _process_env(
            AWS_ENDPOINT_URL=endpoint,
            CALLS_TABLE="sub-calls",
            STREAM_TOKEN_SECRET=SECRET,
            OPENAI_REALTIME_URL="ws://127.0.0.1:9/v1/realtime",
            MEDIA_NODE_PORT="0",
            NODE_ID="node-sub",
            DRAIN_SECONDS="5",
            HEARTBEAT_INTERVAL_SECONDS="0.2",
            PYTHONUNBUFFERED="1",
        )
        env.pop("OPENAI_API_KEY", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "media_node"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        lines = _line_reader(process.stdout)
        starting = _next_json(lines, lambda d: d.get("message") == "starting")
        assert starting["event_loop"] == "uvloop"  # the default whenever uvloop is installed
        listening = _next_json(lines, lambda d: d.get("message") == "media node listening")
        base = f"http://127.0.0.1:{listening['port']}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=WAIT) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{base}/ready", timeout=WAIT) as response:
            assert response.status == 200
        sample = _next_json(lines, lambda d: "_aws" in d)
        assert (sample["ServiceName"], sample["ActiveCalls"]) == ("mapokezi-media-node", 0)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
        stopped = _next_json(lines, lambda d: d.get("message") == "stop signal received")
        assert stopped["signal"] == "SIGTERM"
        table = boto3.resource("dynamodb", endpoint_url=endpoint).Table("sub-calls")
        beat = table.get_item(Key=keys.node_key("node-sub"))["Item"]
        assert beat["draining"] is True
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
        moto.stop()


def test_python_m_media_node_refuses_to_start_without_token_secret() -> None:
    env = _process_env(OPENAI_REALTIME_URL="ws://127.0.0.1:9/v1/realtime")
    env.pop("STREAM_TOKEN_SECRET", None)
    env.pop("STREAM_TOKEN_SECRET_ARN", None)
    result = subprocess.run(
        [sys.executable, "-m", "media_node"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=WAIT * 3,
        check=False,
    )
    assert result.returncode == 2
    message = result.stderr.decode().strip()
    assert message.startswith("media_node: STREAM_TOKEN_SECRET is not configured")
    assert "\n" not in message


# --- the production session factory: the real CallSession against the Realtime double -----


async def test_default_factory_runs_the_real_call_session(table: Any) -> None:
    async with asyncio.timeout(WAIT * 2):
        async with real_node(table) as (server, double):
            async with media_socket(server, new_call(table, "call-real")) as ws:
                await ws.send(json.dumps({"callSid": "call-real", "sampleRate": 16000}))
                await ws.send(bytes(640))  # 20 ms of 16 kHz silence
                greeting = await ws.recv()  # the model speaks first, paced to the caller
                assert isinstance(greeting, bytes)
                assert len(greeting) == 640  # exact 20 ms frames at the profile's 16 kHz
                session = await double.wait_for_session()
                assert "Karibu Dental Clinic" in session.config["instructions"]
            await until(lambda: server.active_calls == 0)
        assert server.outcomes == {"caller_hangup": 1}
        media = store.get_call(table, "call-real")["media"]
        assert (media["node_id"], media["outcome"]) == ("node-test", "caller_hangup")
